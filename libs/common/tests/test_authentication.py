"""The FastAPI dependencies: 401 / 403 with RFC 6750 challenges, principal in the access log."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import httpx2
import pytest
from fastapi import APIRouter, Depends, FastAPI

from gatehouse_common.authentication import (
    CurrentPrincipal,
    require_scope,
    token_verifier,
    www_authenticate,
)
from gatehouse_common.revocation import RevocationSet
from gatehouse_common.scopes import AccessScope
from gatehouse_common.settings import TokenVerificationSettings
from gatehouse_common.tokens import AccessTokenVerifier, Principal
from gatehouse_testing.app import started
from gatehouse_testing.issuer import AUDIENCE, ISSUER, JWKS_URL, TestIssuer

Administrator = Annotated[Principal, Depends(require_scope(AccessScope.ADMIN))]


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str | int | None]:
        return {
            "sub": principal.subject,
            "sid": principal.session_id,
            "iat": principal.issued_at,
        }

    @router.get("/admin")
    async def admin(principal: Administrator) -> dict[str, str]:
        return {"sub": principal.subject}

    return router


@dataclass(frozen=True, slots=True)
class VerifyingResources:
    token_verifier: AccessTokenVerifier


@dataclass(frozen=True, slots=True)
class RevocationCheckingResources:
    token_verifier: AccessTokenVerifier
    revocations: RevocationSet


REVOCATIONS = RevocationSet(retention_seconds=900)


@pytest.fixture(params=[VerifyingResources, RevocationCheckingResources])
async def client(
    issuer: TestIssuer, make_app: Callable[..., FastAPI], request: pytest.FixtureRequest
) -> AsyncIterator[httpx2.AsyncClient]:
    """Every test runs against resources with and without a revocation set."""
    settings = TokenVerificationSettings(
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwks_url=JWKS_URL
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[object]:
        async with token_verifier(settings, transport=issuer.transport()) as verifier:
            if request.param is VerifyingResources:
                yield VerifyingResources(token_verifier=verifier)
            else:
                yield RevocationCheckingResources(token_verifier=verifier, revocations=REVOCATIONS)

    app = make_app(_router(), lifespan=lifespan)
    async with started(app) as running, running.client() as http:
        yield http


@pytest.fixture
async def revoking_client(
    issuer: TestIssuer, make_app: Callable[..., FastAPI]
) -> AsyncIterator[tuple[httpx2.AsyncClient, RevocationSet]]:
    settings = TokenVerificationSettings(
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwks_url=JWKS_URL
    )
    revocations = RevocationSet(retention_seconds=900)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[RevocationCheckingResources]:
        async with token_verifier(settings, transport=issuer.transport()) as verifier:
            yield RevocationCheckingResources(token_verifier=verifier, revocations=revocations)

    app = make_app(_router(), lifespan=lifespan)
    async with started(app) as running, running.client() as http:
        yield http, revocations


async def test_no_token_is_401_with_bare_challenge(client: httpx2.AsyncClient) -> None:
    response = await client.get("/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


async def test_invalid_token_is_401_invalid_token(client: httpx2.AsyncClient) -> None:
    response = await client.get("/me", headers={"Authorization": "Bearer not.a.jwt"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_valid_token_reaches_the_endpoint_and_the_log(
    client: httpx2.AsyncClient, issuer: TestIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    token = issuer.mint("user-1")

    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})

    body = response.json()
    assert body["sub"] == "user-1"
    assert body["sid"]
    assert abs(body["iat"] - time.time()) < 60
    out = capsys.readouterr().out
    access = [json.loads(line) for line in out.splitlines() if '"message": "request"' in line]
    assert access[-1]["user_id"] == "user-1"
    assert token not in out


async def test_missing_scope_is_403_insufficient_scope(
    client: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    token = issuer.mint(scopes="users:read users:write")

    response = await client.get("/admin", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="admin"'
    )


async def test_scope_present_is_allowed(client: httpx2.AsyncClient, issuer: TestIssuer) -> None:
    token = issuer.mint("boss", scopes="users:read admin")

    response = await client.get("/admin", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200


def test_challenge_format() -> None:
    assert www_authenticate() == "Bearer"
    assert www_authenticate("invalid_token", "expired") == (
        'Bearer error="invalid_token", error_description="expired"'
    )


async def test_a_token_of_a_revoked_login_is_401_invalid_token(
    revoking_client: tuple[httpx2.AsyncClient, RevocationSet], issuer: TestIssuer
) -> None:
    client, revocations = revoking_client
    revoked = issuer.mint("user-1", claims={"sid": "login-1"})
    other_login = issuer.mint("user-1", claims={"sid": "login-2"})
    assert (await client.get("/me", headers=_bearer(revoked))).status_code == 200

    revocations.revoke_session("login-1", revoked_at=time.time())

    response = await client.get("/me", headers=_bearer(revoked))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/me", headers=_bearer(other_login))).status_code == 200


async def test_tokens_of_a_revoked_user_issued_until_then_are_401(
    revoking_client: tuple[httpx2.AsyncClient, RevocationSet], issuer: TestIssuer
) -> None:
    client, revocations = revoking_client
    now = int(time.time())
    earlier = issuer.mint("user-2", claims={"iat": now - 10})
    later = issuer.mint("user-2", claims={"iat": now + 5})

    revocations.revoke_subject("user-2", issued_at_or_before=now - 1, revoked_at=now)

    assert (await client.get("/me", headers=_bearer(earlier))).status_code == 401
    assert (await client.get("/me", headers=_bearer(later))).status_code == 200


async def test_a_token_without_sid_is_still_accepted(
    revoking_client: tuple[httpx2.AsyncClient, RevocationSet], issuer: TestIssuer
) -> None:
    client, _ = revoking_client
    token = issuer.mint("user-3", claims={"sid": None})

    response = await client.get("/me", headers=_bearer(token))

    assert response.status_code == 200
    assert response.json()["sid"] is None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_openapi_documents_the_password_flow_on_every_protected_operation(
    make_app: Callable[..., FastAPI],
) -> None:
    schema = make_app(_router()).openapi()

    scheme = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/token"
    assert set(scheme["flows"]["password"]["scopes"]) == {scope.value for scope in AccessScope}
    for path in ("/me", "/admin"):
        assert schema["paths"][path]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
