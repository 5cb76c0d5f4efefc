"""In-process micro-benchmarks: access-token verification and the Argon2 cost of a login.

Run alone with ``uv run --frozen python bench/micro.py``; ``bench/run.py`` imports it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import httpx2
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from gatehouse_auth.settings import IdentityStoreSettings
from gatehouse_common.tokens import AccessTokenVerifier
from gatehouse_common.tokens.jwks import JWKSClient
from gatehouse_testing.issuer import AUDIENCE, ISSUER, JWKS_URL, TestIssuer

_BATCHES = 5


async def _per_call_us(verifier: AccessTokenVerifier, tokens: list[str], calls: int) -> float:
    """Median over batches of the microseconds one ``verify`` takes.

    One untimed batch first, so that one-off costs (lazy imports, first use of each key) are
    not counted as the steady per-token cost.
    """
    for index in range(calls):
        await verifier.verify(tokens[index % len(tokens)])
    samples = []
    for _ in range(_BATCHES):
        started = time.perf_counter()
        for index in range(calls):
            await verifier.verify(tokens[index % len(tokens)])
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


async def token_verification() -> dict[str, Any]:
    """µs per verification with a warm JWKS: every token checked in full, and a repeated one."""
    issuer = TestIssuer()
    tokens = [issuer.mint() for _ in range(50)]
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=("RS256",))
        await jwks.refresh()
        uncached = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, cache_size=0)
        cached = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
        for token in tokens:
            await cached.verify(token)
        return {
            "uncached_us": round(await _per_call_us(uncached, tokens, 500), 2),
            "cached_us": round(await _per_call_us(cached, tokens, 50_000), 3),
            "algorithm": "RS256, 2048-bit key",
            "target_uncached_us": 100,
            "target_cached_us": 5,
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
            {"token_verification": asyncio.run(token_verification()), "argon2": password_hashing()},
            indent=2,
        )
    )
