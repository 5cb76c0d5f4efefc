"""Access-token verification (RFC 9068 profile) with a bounded cache of verified tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from gatehouse_common.tokens.jwks import JWKSClient

ALLOWED_ALGORITHMS = ("RS256", "EdDSA")
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

    def has_scopes(self, required: Collection[str]) -> bool:
        return self.scopes.issuperset(required)


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    kid: str


def _header(token: str) -> dict[str, Any]:
    segment = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except ValueError as exc:
        raise InvalidTokenError("malformed token") from exc
    if not isinstance(header, dict):
        raise InvalidTokenError("malformed token")
    return header


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

    def __init__(
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
        self._claims = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=leeway_seconds,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
        )
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
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidTokenError("malformed token")
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise InvalidTokenError("algorithm not allowed")
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidTokenError("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("no key id")
        key = await self.jwks.key(kid)
        if key is None:
            raise InvalidTokenError("unknown key id")
        try:
            decoded = jwt.decode(token, key, algorithms=[str(algorithm)])
            self._claims.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidTokenError(_describe(exc)) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidTokenError("malformed token") from exc
        return _Verified(principal=_principal(decoded.claims), kid=kid)


def _describe(exc: JoseError) -> str:
    description = getattr(exc, "description", None) or exc.error
    return str(description)


def _principal(claims: dict[str, Any]) -> Principal:
    scope = claims.get("scope", "")
    email = claims.get("email")
    exp = claims["exp"]
    if not isinstance(scope, str) or not isinstance(exp, int | float):
        raise InvalidTokenError("malformed claims")
    return Principal(
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) else None,
        scopes=frozenset(scope.split()),
        token_id=str(claims["jti"]),
        expires_at=int(exp),
    )
