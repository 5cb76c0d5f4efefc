"""Property tests: no token, whatever its shape, makes verification raise anything but
``InvalidTokenError`` (the contract's "Hostile input and abuse": any token is a 401).

Two families of input: whole tokens of arbitrary text and bytes, and well-formed tokens whose
base64url segments carry arbitrary bytes or JSON (any type in any member, deep nesting, huge
numbers), validly signed with the issuer's key so that the claim checks are reached as well.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatehouse_common.tokens import AccessTokenVerifier, InvalidTokenError, JWKSClient
from gatehouse_testing.hostile_tokens import hostile_tokens
from gatehouse_testing.issuer import AUDIENCE, ISSUER, JWKS_URL, TestIssuer

EXAMPLES = settings(
    max_examples=2000,
    deadline=None,
    # The verifier is built once per test function and is meant to be reused across calls.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The issuer is module-wide: strategies that sign need its key when they are defined.
ISSUER_FOR_TOKENS = TestIssuer()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


def _deeply_nested(depth: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    element = "[" if opener == "[" else '{"a":'
    return element * depth + "1" + closer * depth


# JSON text, not values: Python cannot dump some of what an attacker can write by hand.
json_texts = st.one_of(
    json_values.map(json.dumps),
    st.builds(_deeply_nested, st.integers(1, 6000), st.sampled_from(["[", "{"])),
    st.integers(300, 6000).map(lambda digits: "9" * digits),  # beyond float and str limits
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "[]", '""', "null"]),
)

segment_bytes = st.one_of(
    json_texts.map(str.encode),
    json_texts.map(lambda text: text.encode("utf-16")),
    st.binary(max_size=300),
    st.text().map(lambda text: text.encode("utf-8", "surrogatepass")),
)


def _claims(now: int) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "3d1f5c4e-6c1a-4f6e-9a1b-0f2d8c7e5a90",
        "email": "ada@example.com",
        "iat": now,
        "exp": now + 600,
        "jti": "jti-1",
        "scope": "users:read users:write",
    }


HEADER = {"alg": "RS256", "typ": "at+jwt", "kid": ISSUER_FOR_TOKENS.active_kid}
CLAIM_NAMES = [*_claims(0), "nbf"]


@st.composite
def members_replaced(draw: st.DrawFn, base: dict[str, Any], names: list[str]) -> bytes:
    """``base`` with some members set to arbitrary JSON (or removed), as JSON bytes."""
    document = dict(base)
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        if draw(st.booleans()):
            document[name] = draw(json_values)
        else:
            document.pop(name, None)
    return json.dumps(document).encode()


header_bytes = st.one_of(
    members_replaced(HEADER, ["alg", "typ", "kid", "crit", "jku", "jwk"]),
    segment_bytes,
    st.just(json.dumps(HEADER).encode()),
)
claims_bytes = st.one_of(
    members_replaced(_claims(int(time.time())), CLAIM_NAMES),
    segment_bytes,
)


@st.composite
def signed_tokens(draw: st.DrawFn) -> str:
    """Tokens with arbitrary segments, validly signed: every check after the signature runs."""
    return ISSUER_FOR_TOKENS.sign_segments(draw(header_bytes), draw(claims_bytes))


@st.composite
def structured_tokens(draw: st.DrawFn) -> str:
    """Three segments, each well-formed base64url (or not), with arbitrary content."""
    segments = [draw(st.one_of(segment_bytes.map(_b64), st.text(max_size=50))) for _ in range(3)]
    return ".".join(segments)


whole_tokens = st.one_of(
    st.text(),
    st.binary().map(lambda data: data.decode("latin-1")),  # header bytes as ASGI servers give them
    st.builds(
        lambda piece, count: piece * count, st.text(min_size=1, max_size=3), st.integers(0, 20_000)
    ),
    st.lists(st.text(max_size=20), max_size=6).map(".".join),
)


@pytest.fixture
async def verifier() -> AsyncIterator[AccessTokenVerifier]:
    async with httpx2.AsyncClient(transport=ISSUER_FOR_TOKENS.transport()) as http:
        jwks = JWKSClient(JWKS_URL, http, algorithms=["RS256"], min_refetch_interval=3600)
        await jwks.refresh()
        yield AccessTokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, cache_size=64)


async def _verify_refuses_or_accepts(verifier: AccessTokenVerifier, token: str) -> None:
    try:
        principal = await verifier.verify(token)
    except InvalidTokenError:
        return
    # Only a token with every member right gets through, and it says who it is for.
    assert principal.subject
    assert principal.token_id


@EXAMPLES
@given(token=whole_tokens)
async def test_any_text_or_bytes_as_a_token_is_only_ever_invalid(
    verifier: AccessTokenVerifier, token: str
) -> None:
    await _verify_refuses_or_accepts(verifier, token)


@EXAMPLES
@given(token=structured_tokens())
async def test_any_content_in_base64url_segments_is_only_ever_invalid(
    verifier: AccessTokenVerifier, token: str
) -> None:
    await _verify_refuses_or_accepts(verifier, token)


@EXAMPLES
@given(token=signed_tokens())
async def test_any_header_and_claims_validly_signed_are_only_ever_invalid(
    verifier: AccessTokenVerifier, token: str
) -> None:
    await _verify_refuses_or_accepts(verifier, token)


@pytest.mark.parametrize("shape", list(hostile_tokens(ISSUER_FOR_TOKENS)))
async def test_each_formerly_crashing_shape_is_invalid(
    verifier: AccessTokenVerifier, shape: str
) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier.verify(hostile_tokens(ISSUER_FOR_TOKENS)[shape])


async def test_infinite_and_nan_dates_are_invalid(verifier: AccessTokenVerifier) -> None:
    claims = json.dumps(_claims(int(time.time())))
    for number in ("1e999", "NaN", "-Infinity"):
        token = ISSUER_FOR_TOKENS.sign_segments(
            json.dumps(HEADER).encode(),
            claims.replace('"exp": ', f'"exp": {number}, "x": ').encode(),
        )
        with pytest.raises(InvalidTokenError, match="exp"):
            await verifier.verify(token)


async def test_a_lone_surrogate_is_invalid(verifier: AccessTokenVerifier) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier.verify("\udc80.e30.")


async def test_an_oversized_token_is_refused_before_it_is_hashed(
    verifier: AccessTokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[int] = []
    real_sha256 = hashlib.sha256

    def counting_sha256(data: bytes) -> Any:
        hashed.append(len(data))
        return real_sha256(data)

    monkeypatch.setattr("gatehouse_common.tokens.verifier.hashlib.sha256", counting_sha256)
    with pytest.raises(InvalidTokenError, match="malformed"):
        await verifier.verify("e30." * 1_000_000)
    assert hashed == []
