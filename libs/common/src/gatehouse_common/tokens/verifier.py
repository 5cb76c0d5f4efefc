"""Access-token verification (RFC 9068 profile) with a bounded cache of verified tokens."""

from __future__ import annotations

import binascii
import hashlib
import json
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
class _Verified:
    principal: Principal
    kid: str


def _decode_segment(segment: str) -> bytes:
    try:
        return urlsafe_b64decode(segment.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise InvalidTokenError("malformed token") from exc


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_decode_segment(segment))
    except ValueError as exc:
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
    return float(value)


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
        digest = hashlib.sha256(token.encode()).digest()
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
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidTokenError("malformed token")
        header_segment, claims_segment, signature_segment = token.split(".")
        header = _json_object(header_segment)
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise InvalidTokenError("algorithm not allowed")
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
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
            valid = _SIGNATURE_ALGORITHMS[str(algorithm)].verify(signing_input, signature, key)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidTokenError("bad signature") from exc
        if not valid:
            raise InvalidTokenError("bad signature")
        claims = _json_object(claims_segment)
        self._check_claims(claims)
        return _Verified(principal=_principal(claims), kid=kid)

    def _check_claims(self, claims: dict[str, Any]) -> None:
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
        if expires_at is not None and now > expires_at + self._leeway:
            raise InvalidTokenError("the token has expired")
        if issued_at is not None and issued_at > now + self._leeway:
            raise InvalidTokenError("the token was issued in the future")
        if not_before is not None and not_before > now + self._leeway:
            raise InvalidTokenError("the token is not yet valid")
        for name in ("sub", "jti"):
            value = claims.get(name)
            if not isinstance(value, str) or not value:
                raise InvalidTokenError(f"missing {name} claim")


def _principal(claims: dict[str, Any]) -> Principal:
    scope = claims.get("scope", "")
    email = claims.get("email")
    session_id = claims.get("sid")
    exp = claims["exp"]
    iat = claims["iat"]
    if (
        not isinstance(scope, str)
        or not isinstance(exp, int | float)
        or not isinstance(iat, int | float)
        or not (session_id is None or (isinstance(session_id, str) and session_id))
    ):
        raise InvalidTokenError("malformed claims")
    return Principal(
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) else None,
        scopes=frozenset(scope.split()),
        token_id=str(claims["jti"]),
        expires_at=int(exp),
        issued_at=int(iat),
        session_id=session_id,
    )
