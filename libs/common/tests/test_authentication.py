"""The FastAPI dependencies: 401 / 403 with RFC 6750 challenges, principal in the access log."""

from __future__ import annotations

import json
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
from gatehouse_common.scopes import AccessScope
from gatehouse_common.settings import TokenVerificationSettings
from gatehouse_common.tokens import AccessTokenVerifier, Principal
from gatehouse_testing.app import started
from gatehouse_testing.issuer import AUDIENCE, ISSUER, JWKS_URL, TestIssuer

Administrator = Annotated[Principal, Depends(require_scope(AccessScope.ADMIN))]


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"sub": principal.subject}

    @router.get("/admin")
    async def admin(principal: Administrator) -> dict[str, str]:
        return {"sub": principal.subject}

    return router


@dataclass(frozen=True, slots=True)
class VerifyingResources:
    token_verifier: AccessTokenVerifier


@pytest.fixture
async def client(
    issuer: TestIssuer, make_app: Callable[..., FastAPI]
) -> AsyncIterator[httpx2.AsyncClient]:
    settings = TokenVerificationSettings(
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwks_url=JWKS_URL
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[VerifyingResources]:
        async with token_verifier(settings, transport=issuer.transport()) as verifier:
            yield VerifyingResources(token_verifier=verifier)

    app = make_app(_router(), lifespan=lifespan)
    async with started(app) as running, running.client() as http:
        yield http


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

    assert response.json() == {"sub": "user-1"}
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
