"""Fixtures of the users tests: a migrated database, settings, and an in-process app client.

Helpers that are not fixtures are in ``support.py``, which test modules import.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gatehouse_testing.app import started
from gatehouse_testing.issuer import TestIssuer
from gatehouse_users.main import create_app
from gatehouse_users.settings import UsersSettings
from services.users.tests.support import (
    AppStarter,
    Authorizer,
    SettingsFactory,
    alembic,
    create_database,
    settings_for,
)


@pytest.fixture(scope="session")
async def users_database_url(postgres_url: str) -> str:
    url = await create_database(postgres_url)
    await alembic(url, "upgrade", "head")
    return url


@pytest.fixture(scope="session")
async def users_engine(users_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access to the service's database, to check what the API did."""
    engine = create_async_engine(users_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def make_settings(users_database_url: str, redis_url: str) -> SettingsFactory:
    def make(**overrides: Any) -> UsersSettings:
        return settings_for(
            **{"database_url": users_database_url, "redis_url": redis_url, **overrides}
        )

    return make


@asynccontextmanager
async def running_app(
    settings: UsersSettings, issuer: TestIssuer
) -> AsyncIterator[httpx2.AsyncClient]:
    """The app with its lifespan, behind an in-process client."""
    app = create_app(settings, jwks_transport=issuer.transport())
    async with started(app) as running, running.client("http://users.test") as client:
        yield client


@pytest.fixture
def start_app(issuer: TestIssuer) -> AppStarter:
    def start(settings: UsersSettings) -> AbstractAsyncContextManager[httpx2.AsyncClient]:
        return running_app(settings, issuer)

    return start


@pytest.fixture
async def client(
    make_settings: SettingsFactory, issuer: TestIssuer
) -> AsyncIterator[httpx2.AsyncClient]:
    async with running_app(make_settings(), issuer) as client:
        yield client


@pytest.fixture
def auth(issuer: TestIssuer) -> Authorizer:
    """Headers with a fresh access token: ``auth(subject, scopes=..., email=...)``."""

    def headers(
        subject: uuid.UUID | str | None = None,
        *,
        scopes: str = "users:read users:write",
        email: str | None = None,
    ) -> dict[str, str]:
        token = issuer.mint(str(subject) if subject else None, scopes=scopes, email=email)
        return {"Authorization": f"Bearer {token}"}

    return headers
