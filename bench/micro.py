"""In-process micro-benchmarks: access-token verification, the revocation check and the Argon2
cost of a login.

Run alone with ``uv run --frozen python bench/micro.py``; ``bench/run.py`` imports it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import tracemalloc
import uuid
from typing import Any

import httpx2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from joserfc.util import urlsafe_b64decode
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from gatehouse_auth.settings import IdentityStoreSettings
from gatehouse_common.revocation import RevocationSet
from gatehouse_common.tokens import AccessTokenVerifier
from gatehouse_common.tokens.jwks import JWKSClient
from gatehouse_testing.issuer import AUDIENCE, ISSUER, JWKS_URL, TestIssuer

_BATCHES = 5


async def _per_call_us(verifier: AccessTokenVerifier, tokens: list[str], calls: int) -> float:
    """Microseconds one ``verify`` takes, over one batch of ``calls``."""
    started = time.perf_counter()
    for index in range(calls):
        await verifier.verify(tokens[index % len(tokens)])
    return (time.perf_counter() - started) / calls * 1e6


def _raw_rs256_us(parts: list[tuple[bytes, bytes]], public_key: RSAPublicKey, calls: int) -> float:
    """Microseconds of the bare RS256 signature check (``cryptography``) over one batch: the
    floor under which no verifier written in Python can go."""
    started = time.perf_counter()
    for index in range(calls):
        message, signature = parts[index % len(parts)]
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    return (time.perf_counter() - started) / calls * 1e6


async def token_verification() -> dict[str, Any]:
    """µs per verification with a warm JWKS: every token checked in full, a repeated one, and
    the raw RS256 signature check of the same tokens as the floor of the first."""
    issuer = TestIssuer()
    tokens = [issuer.mint() for _ in range(50)]
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=("RS256",))
        await jwks.refresh()
        uncached = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, cache_size=0)
        cached = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
        for token in tokens:
            await cached.verify(token)
        public_key = issuer.keys[issuer.active_kid].get_op_key("verify")
        if not isinstance(public_key, RSAPublicKey):
            raise TypeError("the test issuer signs with RSA keys")
        parts = []
        for token in tokens:
            signing_input, _, encoded_signature = token.rpartition(".")
            parts.append((signing_input.encode(), urlsafe_b64decode(encoded_signature.encode())))
        # Alternating batches, the first pair a warm-up: this machine's speed changes by 2x
        # within minutes, so the ratio is taken batch by batch, each pair at one speed.
        uncached_batches, raw_batches = [], []
        for _ in range(_BATCHES + 1):
            uncached_batches.append(await _per_call_us(uncached, tokens, 500))
            raw_batches.append(_raw_rs256_us(parts, public_key, 500))
        uncached_us = statistics.median(uncached_batches[1:])
        raw_us = statistics.median(raw_batches[1:])
        ratio = statistics.median(
            u / r for u, r in zip(uncached_batches[1:], raw_batches[1:], strict=True)
        )
        await _per_call_us(cached, tokens, 50_000)  # warm-up
        cached_us = statistics.median(
            [await _per_call_us(cached, tokens, 50_000) for _ in range(_BATCHES)]
        )
        return {
            "uncached_us": round(uncached_us, 2),
            "cached_us": round(cached_us, 3),
            "raw_rs256_us": round(raw_us, 2),
            "uncached_x_raw_rs256": round(ratio, 2),
            "algorithm": "RS256, 2048-bit key",
            "target_uncached_x_raw_rs256": 2.5,
            "target_cached_us": 5,
        }


def revocation_check() -> dict[str, Any]:
    """µs per ``RevocationSet.is_revoked`` with 100,000 revoked logins, and their memory."""
    logins = 100_000
    now = time.time()
    revocations = RevocationSet(retention_seconds=930)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(logins):
        # The sid strings live as long as the set holds them: counted.
        revocations.revoke_session(str(uuid.uuid4()), revoked_at=now)
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    for _ in range(1000):
        revocations.revoke_subject(str(uuid.uuid4()), issued_at_or_before=now, revoked_at=now)

    def per_check_us(subject: str, session_id: str, calls: int = 200_000) -> float:
        is_revoked = revocations.is_revoked
        is_revoked(subject, session_id, now)  # warm-up
        samples = []
        for _ in range(_BATCHES):
            started = time.perf_counter()
            for _ in range(calls):
                is_revoked(subject, session_id, now)
            samples.append((time.perf_counter() - started) / calls * 1e6)
        return statistics.median(samples)

    live_subject, live_sid, revoked_sid = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    revocations.revoke_session(revoked_sid, revoked_at=now)
    return {
        "check_us_valid_token": round(per_check_us(live_subject, live_sid), 3),
        "check_us_revoked_login": round(per_check_us(live_subject, revoked_sid), 3),
        "revoked_logins": logins,
        "memory_mib_100k_logins": round(memory / 2**20, 1),
        "bytes_per_revoked_login": round(memory / logins),
        "target_us": 5,
    }


def password_hashing() -> dict[str, Any]:
    """Milliseconds per Argon2id hash with the service's default parameters."""
    fields = IdentityStoreSettings.model_fields
    time_cost = fields["argon2_time_cost"].default
    memory_kib = fields["argon2_memory_cost_kib"].default
    parallelism = fields["argon2_parallelism"].default
    hasher = PasswordHash(
        (Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),)
    )
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        hasher.hash("correct horse battery staple")
        samples.append((time.perf_counter() - started) * 1e3)
    return {
        "time_cost": time_cost,
        "memory_cost_kib": memory_kib,
        "parallelism": parallelism,
        "hash_ms": round(statistics.median(samples), 1),
    }


if __name__ == "__main__":
    print(
        json.dumps(
            {
                "token_verification": asyncio.run(token_verification()),
                "revocation": revocation_check(),
                "argon2": password_hashing(),
            },
            indent=2,
        )
    )
