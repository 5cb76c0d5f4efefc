"""Access-token verification, including the attacks the issue lists."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc.jwk import RSAKey
from prometheus_client import REGISTRY

from gatehouse_common.tokens import AccessTokenVerifier, InvalidTokenError, JWKSClient
from gatehouse_testing.issuer import AUDIENCE, ISSUER, JWKS_URL, TestIssuer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, object], claims: dict[str, object]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


@pytest.fixture
async def verifier(issuer: TestIssuer) -> AsyncIterator[AccessTokenVerifier]:
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=["RS256"], min_refetch_interval=60)
        yield AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=30)


async def test_valid_token_yields_principal(
    issuer: TestIssuer, verifier: AccessTokenVerifier
) -> None:
    issued_at = int(time.time()) - 60
    token = issuer.mint(
        "0b7e9c6c-3f0a-4c55-9a64-2f1d4b8f2e11",
        scopes="users:read admin",
        claims={"sid": "login-1", "iat": issued_at},
    )

    principal = await verifier.verify(token)

    assert principal.subject == "0b7e9c6c-3f0a-4c55-9a64-2f1d4b8f2e11"
    assert principal.session_id == "login-1"
    assert principal.issued_at == issued_at
    assert principal.scopes == frozenset({"users:read", "admin"})
    assert principal.has_scopes({"admin"})
    assert not principal.has_scopes({"users:write"})


async def test_alg_none_is_rejected(issuer: TestIssuer, verifier: AccessTokenVerifier) -> None:
    claims = json.loads(base64.urlsafe_b64decode(issuer.mint().split(".")[1] + "=="))
    forged = _unsigned({"alg": "none", "typ": "at+jwt", "kid": issuer.active_kid}, claims)

    with pytest.raises(InvalidTokenError, match="algorithm"):
        await verifier.verify(forged)


async def test_hs256_signed_with_the_public_key_is_rejected(
    issuer: TestIssuer, verifier: AccessTokenVerifier
) -> None:
    # Built by hand: joserfc itself refuses to use a public key as an HMAC secret.
    public_pem = issuer.keys[issuer.active_kid].as_pem(private=False)
    claims = json.loads(base64.urlsafe_b64decode(issuer.mint().split(".")[1] + "=="))
    header = {"alg": "HS256", "typ": "at+jwt", "kid": issuer.active_kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{_b64(signature)}"

    with pytest.raises(InvalidTokenError, match="algorithm"):
        await verifier.verify(forged)


async def test_unknown_kid_is_rejected_and_refetches_at_most_once_per_interval(
    issuer: TestIssuer,
) -> None:
    now = [1000.0]
    stranger = RSAKey.generate_key(2048, parameters={"kid": "stranger", "alg": "RS256"})
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(
            JWKS_URL, http, algorithms=["RS256"], min_refetch_interval=10, clock=lambda: now[0]
        )
        verifier = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
        await verifier.verify(issuer.mint())
        assert issuer.jwks_requests == 1
        now[0] += 11

        for _ in range(5):
            with pytest.raises(InvalidTokenError, match="unknown key"):
                await verifier.verify(issuer.mint(kid="stranger", key=stranger))

    assert issuer.jwks_requests == 2


async def test_attacker_key_with_a_known_kid_is_rejected(
    issuer: TestIssuer, verifier: AccessTokenVerifier
) -> None:
    attacker = RSAKey.generate_key(2048, parameters={"kid": issuer.active_kid, "alg": "RS256"})

    with pytest.raises(InvalidTokenError):
        await verifier.verify(issuer.mint(key=attacker))


async def test_embedded_jwk_and_jku_headers_are_ignored(
    issuer: TestIssuer, verifier: AccessTokenVerifier
) -> None:
    attacker = RSAKey.generate_key(2048, parameters={"kid": issuer.active_kid, "alg": "RS256"})
    embedded = issuer.mint(key=attacker, header={"jwk": attacker.as_dict(private=False)})
    remote = issuer.mint(key=attacker, header={"jku": "https://attacker.example/jwks.json"})

    for token in (embedded, remote):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(token)
    # Only the configured JWKS URL was ever asked (the transport would have served any URL).
    assert issuer.jwks_requests == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.example"}, "iss"),
        ({"aud": "someone-else"}, "aud"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"iat": int(time.time()) + 3600}, "issued in the future"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ],
)
async def test_bad_claims_are_rejected(
    issuer: TestIssuer, verifier: AccessTokenVerifier, claims: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidTokenError, match=reason):
        await verifier.verify(issuer.mint(claims=claims))


async def test_expiry_within_leeway_is_accepted(
    issuer: TestIssuer, verifier: AccessTokenVerifier
) -> None:
    token = issuer.mint(claims={"exp": int(time.time()) - 5})

    assert (await verifier.verify(token)).subject


async def test_wrong_typ_is_rejected(issuer: TestIssuer, verifier: AccessTokenVerifier) -> None:
    with pytest.raises(InvalidTokenError, match="access token"):
        await verifier.verify(issuer.mint(header={"typ": "JWT"}))


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30." + "x" * 9000]
)
async def test_malformed_tokens_are_rejected(verifier: AccessTokenVerifier, token: str) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


async def test_jwks_down_after_first_fetch_keeps_verifying(issuer: TestIssuer) -> None:
    now = [1000.0]
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(
            JWKS_URL,
            http,
            algorithms=["RS256"],
            ttl=60,
            min_refetch_interval=0,
            clock=lambda: now[0],
        )
        verifier = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, cache_size=0)
        await verifier.verify(issuer.mint())
        issuer.jwks_available = False
        now[0] += 3600  # far past the TTL: a refresh is attempted and fails

        principal = await verifier.verify(issuer.mint("still-valid"))
        await jwks.refresh()

    assert principal.subject == "still-valid"
    assert jwks.loaded
    assert issuer.jwks_requests >= 2


async def test_jwks_fetches_are_counted_for_the_refresh_alert(issuer: TestIssuer) -> None:
    def failures() -> float:
        return REGISTRY.get_sample_value("jwks_refresh_failures_total") or 0.0

    def last_success() -> float:
        return REGISTRY.get_sample_value("jwks_last_success_timestamp_seconds") or 0.0

    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=["RS256"], min_refetch_interval=0)
        failures_before = failures()
        started = time.time()
        assert await jwks.refresh()
        succeeded_at = last_success()
        issuer.jwks_available = False
        assert not await jwks.refresh()

    assert succeeded_at >= started
    assert last_success() == succeeded_at
    assert failures() == failures_before + 1


async def test_rotated_key_is_picked_up_on_unknown_kid(issuer: TestIssuer) -> None:
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=["RS256"], min_refetch_interval=0)
        verifier = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
        await verifier.verify(issuer.mint())
        new_kid = issuer.add_key()

        principal = await verifier.verify(issuer.mint("rotated", kid=new_kid))

    assert principal.subject == "rotated"


async def test_cached_verification_ends_when_the_key_is_withdrawn(issuer: TestIssuer) -> None:
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=["RS256"], ttl=3600, min_refetch_interval=0)
        verifier = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
        old_kid = issuer.active_kid
        token = issuer.mint(kid=old_kid)
        await verifier.verify(token)
        issuer.active_kid = issuer.add_key()
        del issuer.keys[old_kid]
        await jwks.refresh()

        with pytest.raises(InvalidTokenError, match="unknown key"):
            await verifier.verify(token)


async def test_verified_token_is_served_from_cache(issuer: TestIssuer) -> None:
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=["RS256"], min_refetch_interval=60)
        verifier = AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, cache_size=2)
        token = issuer.mint()
        first = await verifier.verify(token)
        issuer.jwks_available = False
        # Even with every other path failing, the cached result answers.
        assert await verifier.verify(token) is first


def test_symmetric_algorithms_cannot_be_configured(issuer: TestIssuer) -> None:
    jwks = JWKSClient(JWKS_URL, httpx2.AsyncClient(), algorithms=["RS256"])
    with pytest.raises(ValueError, match="HS256"):
        AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, algorithms=["HS256"])


async def test_jwks_private_members_and_foreign_keys_are_dropped() -> None:
    private = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
    symmetric = {"kty": "oct", "k": "c2VjcmV0", "kid": "k2", "alg": "HS256"}
    encryption = {**private.as_dict(private=False), "kid": "k3", "use": "enc"}

    def handle(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, json={"keys": [private.as_dict(private=True), symmetric, encryption]}
        )

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handle)) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=["RS256"])
        key = await jwks.key("k1")
        assert await jwks.key("k2") is None
        assert await jwks.key("k3") is None

    assert key is not None
    assert not key.is_private


async def test_critical_header_extensions_are_rejected(
    issuer: TestIssuer, verifier: AccessTokenVerifier
) -> None:
    # Signed by hand: joserfc will not even produce a token with an unknown critical header.
    claims = issuer.mint().split(".")[1]
    header = _b64(
        json.dumps(
            {"alg": "RS256", "typ": "at+jwt", "kid": issuer.active_kid, "crit": ["x"], "x": 1}
        ).encode()
    )
    private_key = issuer.keys[issuer.active_kid].get_op_key("sign")
    signature = private_key.sign(f"{header}.{claims}".encode(), PKCS1v15(), SHA256())
    token = f"{header}.{claims}.{_b64(signature)}"

    with pytest.raises(InvalidTokenError, match="critical"):
        await verifier.verify(token)


async def test_tampered_claims_fail_the_signature(
    issuer: TestIssuer, verifier: AccessTokenVerifier
) -> None:
    header, _, signature = issuer.mint(scopes="users:read").split(".")
    elevated = issuer.mint(scopes="users:read admin").split(".")[1]

    with pytest.raises(InvalidTokenError, match="signature"):
        await verifier.verify(f"{header}.{elevated}.{signature}")


async def test_audience_list_containing_ours_is_accepted(
    issuer: TestIssuer, verifier: AccessTokenVerifier
) -> None:
    token = issuer.mint(claims={"aud": ["other", AUDIENCE]})

    assert (await verifier.verify(token)).subject


async def test_a_key_is_used_only_with_its_own_algorithm(issuer: TestIssuer) -> None:
    async with httpx2.AsyncClient(transport=issuer.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=["RS256", "EdDSA"])
        verifier = AccessTokenVerifier(
            jwks, issuer=ISSUER, audience=AUDIENCE, algorithms=["RS256", "EdDSA"]
        )
        _, claims, signature = issuer.mint().split(".")
        forged_header = _b64(
            json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": issuer.active_kid}).encode()
        )

        with pytest.raises(InvalidTokenError, match="algorithm"):
            await verifier.verify(f"{forged_header}.{claims}.{signature}")
