"""FastAPI dependencies that turn a bearer token into a typed principal (RFC 6750 errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx2
from fastapi import Depends, Request
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowPassword
from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
from fastapi.security.base import SecurityBase
from starlette.types import Scope

from gatehouse_common.logging import bind_log_context, get_logger, scope_state
from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError
from gatehouse_common.resources import lifespan_resources
from gatehouse_common.revocation import RevocationSet
from gatehouse_common.scopes import AccessScope, scope_descriptions
from gatehouse_common.settings import TokenVerificationSettings
from gatehouse_common.tokens import AccessTokenVerifier, InvalidTokenError, JWKSClient, Principal

# The public token endpoint's password flow, as OpenAPI documents it.
_PASSWORD_FLOW = OAuth2Model(
    flows=OAuthFlowsModel(
        password=OAuthFlowPassword(tokenUrl="/auth/token", scopes=scope_descriptions())
    )
)

_log = get_logger(__name__)

REVOKED_LOGIN = "the token's login has been revoked"


def www_authenticate(
    error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """An RFC 6750 §3 ``WWW-Authenticate`` challenge."""
    params = [
        f'{name}="{value}"'
        for name, value in (
            ("error", error),
            ("error_description", description),
            ("scope", scope),
        )
        if value
    ]
    return "Bearer" + (" " + ", ".join(params) if params else "")


class NotAuthenticated(ProblemError):
    status = 401
    problem_type = f"{PROBLEM_TYPE_BASE}unauthenticated"

    def __init__(self) -> None:
        super().__init__(
            "An access token is required.",
            headers={"WWW-Authenticate": www_authenticate()},
        )


class InvalidAccessToken(ProblemError):
    status = 401
    problem_type = f"{PROBLEM_TYPE_BASE}invalid-token"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The access token is not valid: {reason}.",
            headers={"WWW-Authenticate": www_authenticate("invalid_token", reason)},
        )


class InsufficientScope(ProblemError):
    status = 403
    problem_type = f"{PROBLEM_TYPE_BASE}insufficient-scope"

    def __init__(self, required: str) -> None:
        super().__init__(
            f"This request needs the scope '{required}'.",
            headers={"WWW-Authenticate": www_authenticate("insufficient_scope", scope=required)},
        )


@asynccontextmanager
async def token_verifier(
    settings: TokenVerificationSettings, *, transport: httpx2.AsyncBaseTransport | None = None
) -> AsyncIterator[AccessTokenVerifier]:
    """A verifier with its own JWKS HTTP client, for a service's lifespan.

    ``transport`` lets tests serve the JWKS in-process.
    """
    async with httpx2.AsyncClient(
        transport=transport,
        timeout=httpx2.Timeout(2.0),
        limits=httpx2.Limits(max_connections=4),
    ) as http:
        jwks = JWKSClient(
            str(settings.jwks_url),
            http,
            algorithms=("RS256",),
            ttl=settings.jwks_cache_ttl_seconds,
            min_refetch_interval=settings.jwks_min_refetch_interval_seconds,
        )
        try:
            yield AccessTokenVerifier(
                jwks,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                leeway_seconds=settings.jwt_leeway_seconds,
                cache_size=settings.verified_token_cache_size,
            )
        finally:
            await jwks.aclose()


def _token_checks(scope: Scope) -> tuple[AccessTokenVerifier, RevocationSet | None]:
    """What the resources offer (``VerifiesTokens``, optionally ``RefusesRevokedTokens``).

    Read by attribute and checked against the concrete classes: ``isinstance`` with a runtime
    Protocol costs about 25 µs, more than verifying a cached token, on every request.
    """
    resources = lifespan_resources(scope)
    verifier = getattr(resources, "token_verifier", None)
    if not isinstance(verifier, AccessTokenVerifier):
        raise TypeError("the lifespan's resources have no token_verifier (VerifiesTokens)")
    revocations = getattr(resources, "revocations", None)
    return verifier, revocations if isinstance(revocations, RevocationSet) else None


class BearerPrincipal(SecurityBase):
    """A dependency: the principal of the request's bearer token (401 without a valid one),
    and 403 ``insufficient_scope`` unless the token carries ``scope`` (when given).

    One dependency, not a chain (scheme, token checks, principal, scope): FastAPI solves each
    dependency of a route anew on every request, at a cost per dependency that was a tenth of
    users' cached read (docs/performance.md). As a ``SecurityBase`` it still documents the
    OAuth2 password flow on every operation that uses it, under the name
    ``OAuth2PasswordBearer``, which lets Swagger UI's Authorize button log in.
    """

    def __init__(self, scope: AccessScope | None = None) -> None:
        self.model = _PASSWORD_FLOW
        self.scheme_name = "OAuth2PasswordBearer"
        self.scope = scope

    async def __call__(self, request: Request) -> Principal:
        token = _bearer_token(request)
        if not token:
            raise NotAuthenticated
        verifier, revocations = _token_checks(request.scope)
        try:
            principal = await verifier.verify(token)
        except InvalidTokenError as exc:
            _log.info("token_rejected", reason=str(exc))
            raise InvalidAccessToken(str(exc)) from None
        # After the signature: only a genuine token's claims are looked up (two dict lookups).
        if revocations is not None and revocations.is_revoked(
            principal.subject, principal.session_id, principal.issued_at
        ):
            _log.info("token_rejected", reason=REVOKED_LOGIN)
            raise InvalidAccessToken(REVOKED_LOGIN)
        scope_state(request.scope)["user_id"] = principal.subject
        bind_log_context(user_id=principal.subject)
        if self.scope is not None and not principal.has_scopes({self.scope}):
            raise InsufficientScope(self.scope)
        return principal


def _bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    authorization = request.headers.get("authorization")
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token if scheme.lower() == "bearer" else None


CurrentPrincipal = Annotated[Principal, Depends(BearerPrincipal())]


def require_scope(scope: AccessScope) -> BearerPrincipal:
    """A dependency yielding the principal if its token carries ``scope``, else 403."""
    return BearerPrincipal(scope)
