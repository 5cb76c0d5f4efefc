"""Access-token verification (RFC 9068 profile) with a bounded cache of verified tokens."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from gatehouse_common.tokens.jwks import JWKSClient

ALLOWED_ALGORITHMS = ("RS256", "EdDSA")
_SIGNATURE_ALGORITHMS = JWSRegistry.algorithms
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# Our tokens are about 900 characters; anything longer is refused before it is hashed or parsed.
MAX_TOKEN_LENGTH = 8192


class InvalidTokenError(Exception):
    """The presented token must not be accepted. ``str(exc)`` is safe to show the client."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified access token speaks for."""

    subject: str
    email: str | None
    scopes: frozenset[str]
    token_id: str
    expires_at: int
    issued_at: int
    # The login (refresh-token family) the token was issued for; None for a token without
    # ``sid`` (issued before the claim existed).
    session_id: str | None

    def has_scopes(self, required: Collection[str]) -> bool:
        return self.scopes.issuperset(required)


@dataclass(frozen=True, slots=True)
class _Lifetime:
    """The checked ``exp`` and ``iat`` of a token."""

    expires_at: float
    issued_at: float


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    kid: str


def _decode_segment(segment: str) -> bytes:
    # The whole token is known to be ASCII here (checked first in ``verify``).
    try:
        return urlsafe_b64decode(segment.encode("ascii"))
    except ValueError as exc:  # binascii.Error is one
        raise InvalidTokenError("malformed token") from exc


def _json_object(segment: str) -> dict[str, Any]:
    try:
        # UTF-8 only (RFC 7515 §5.2), never json's guess of UTF-16 or UTF-32.
        value = json.loads(_decode_segment(segment).decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError: bad UTF-8, bad JSON, or an integer beyond Python's digit limit.
        # RecursionError: how the parser refuses arrays or objects nested too deeply.
        raise InvalidTokenError("malformed token") from exc
    if not isinstance(value, dict):
        raise InvalidTokenError("malformed token")
    return value


def _numeric_date(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidTokenError(f"missing {name} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError(f"invalid {name} claim")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise InvalidTokenError(f"invalid {name} claim") from None
    if not math.isfinite(number):  # 1e999 parses as infinity, NaN as NaN
        raise InvalidTokenError(f"invalid {name} claim")
    return number


class AccessTokenVerifier:
    """Verifies signature, header and claims of an access token; caches what it verified.

    Checks, in order: shape and size; ``alg`` in an explicit allow-list (never ``none`` or
    HS*); ``typ`` is ``at+jwt``; ``kid`` names a key of the issuer's JWKS (embedded ``jwk``,
    ``jku`` and ``x5u`` headers are ignored, never fetched); the signature; ``iss``, ``aud``,
    ``exp``, ``iat``, ``nbf`` with a small leeway; ``sub`` and ``jti`` present.

    A verified token is remembered under the SHA-256 of its text until its ``exp`` (as Envoy's
    jwt_authn does), provided its ``kid`` is still published: every request is verified at the
    gateway and again at the service, and a hash lookup costs a fraction of an RSA verify.
    """

    def __init__(  # noqa: PLR0913 - keyword-only claim rules and cache size
        self,
        jwks: JWKSClient,
        *,
        issuer: str,
        audience: str,
        algorithms: Collection[str] = ("RS256",),
        leeway_seconds: int = 30,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = set(algorithms) - set(ALLOWED_ALGORITHMS)
        if unknown:
            raise ValueError(f"algorithms not allowed for access tokens: {sorted(unknown)}")
        self.jwks = jwks
        self._algorithms = frozenset(algorithms)
        self._leeway = leeway_seconds
        self._clock = clock
        self._issuer = issuer
        self._audience = audience
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str) -> Principal:
        """The principal of ``token``; raises ``InvalidTokenError``, and nothing else, for any
        token that is not a valid access token, whatever its shape, bytes or size."""
        # First, before anything that costs in proportion to the input: a token is base64url
        # segments and dots, so a long or non-ASCII one is refused without being hashed.
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise InvalidTokenError("malformed token")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            if cached.principal.expires_at > self._clock() and self.jwks.knows(cached.kid):
                self._cache.move_to_end(digest)
                return cached.principal
            del self._cache[digest]

        verified = await self._verify_uncached(token)
        if self._cache_size:
            self._cache[digest] = verified
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verified.principal

    async def _verify_uncached(self, token: str) -> _Verified:
        # Parsed and checked here rather than through joserfc's generic JWT decoder, which
        # measured three times the cost of the RSA operation itself (docs/performance.md);
        # the signature is still checked by joserfc's algorithm implementation.
        # Every member is type-checked before it is used: any JSON type can arrive in any of
        # them, and a list or object would break a set lookup or a string method.
        if token.count(".") != 2:
            raise InvalidTokenError("malformed token")
        header_segment, claims_segment, signature_segment = token.split(".")
        header = _json_object(header_segment)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise InvalidTokenError("algorithm not allowed")
        token_type = header.get("typ")
        if not isinstance(token_type, str) or token_type.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidTokenError("not an access token")
        if "crit" in header:
            # No JWS extension is understood here, so none may be critical (RFC 7515 §4.1.11).
            raise InvalidTokenError("unsupported critical header")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("no key id")
        key = await self.jwks.key(kid)
        if key is None:
            raise InvalidTokenError("unknown key id")
        if key.alg != algorithm:
            # A key is used only with the algorithm it is published for.
            raise InvalidTokenError("algorithm not allowed for this key")
        signature = _decode_segment(signature_segment)
        signing_input = f"{header_segment}.{claims_segment}".encode("ascii")
        try:
            valid = _SIGNATURE_ALGORITHMS[algorithm].verify(signing_input, signature, key)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidTokenError("bad signature") from exc
        if not valid:
            raise InvalidTokenError("bad signature")
        claims = _json_object(claims_segment)
        times = self._check_claims(claims)
        return _Verified(principal=_principal(claims, times), kid=kid)

    def _check_claims(self, claims: dict[str, Any]) -> _Lifetime:
        """Check the registered claims; returns ``exp`` and ``iat``."""
        now = self._clock()
        if claims.get("iss") != self._issuer:
            raise InvalidTokenError("invalid iss claim")
        audience = claims.get("aud")
        if not (
            audience == self._audience
            or (isinstance(audience, list) and self._audience in audience)
        ):
            raise InvalidTokenError("invalid aud claim")
        expires_at = _numeric_date(claims, "exp", required=True)
        issued_at = _numeric_date(claims, "iat", required=True)
        not_before = _numeric_date(claims, "nbf", required=False)
        if expires_at is None or now > expires_at + self._leeway:
            raise InvalidTokenError("the token has expired")
        if issued_at is None or issued_at > now + self._leeway:
            raise InvalidTokenError("the token was issued in the future")
        if not_before is not None and not_before > now + self._leeway:
            raise InvalidTokenError("the token is not yet valid")
        for name in ("sub", "jti"):
            value = claims.get(name)
            if not isinstance(value, str) or not value:
                raise InvalidTokenError(f"missing {name} claim")
        return _Lifetime(expires_at=expires_at, issued_at=issued_at)


def _principal(claims: dict[str, Any], times: _Lifetime) -> Principal:
    scope = claims.get("scope", "")
    email = claims.get("email")
    session_id = claims.get("sid")
    if not isinstance(scope, str):
        raise InvalidTokenError("invalid scope claim")
    if email is not None and not isinstance(email, str):
        raise InvalidTokenError("invalid email claim")
    if session_id is not None and not (isinstance(session_id, str) and session_id):
        raise InvalidTokenError("invalid sid claim")
    return Principal(
        subject=claims["sub"],
        email=email,
        scopes=frozenset(scope.split()),
        token_id=claims["jti"],
        expires_at=int(times.expires_at),
        issued_at=int(times.issued_at),
        session_id=session_id,
    )
