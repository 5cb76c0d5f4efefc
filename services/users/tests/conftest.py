"""Fixtures of the users tests: a migrated database, settings, and an in-process app client.

Test modules cannot import this file (pytest's importlib mode), so helpers are fixtures too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from redis.asyncio import Redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gatehouse_testing.app import started
from gatehouse_testing.issuer import AUDIENCE, ISSUER, JWKS_URL, TestIssuer
from gatehouse_users.main import create_app
from gatehouse_users.settings import UsersSettings

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"

SettingsFactory = Callable[..., UsersSettings]
AppStarter = Callable[[UsersSettings], AbstractAsyncContextManager[httpx2.AsyncClient]]
Authorizer = Callable[..., dict[str, str]]
ProblemCheck = Callable[[httpx2.Response, int], dict[str, Any]]


async def alembic(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the real migration command, as the Compose one-shot and the Kubernetes Job do."""
    environment = {**os.environ, "USERS_DATABASE_URL": database_url}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


async def create_database(server_url: str) -> str:
    """A new, empty database on the server of ``server_url``; returns its URL."""
    name = f"users_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


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
def settings_for() -> Callable[..., UsersSettings]:
    return _settings_for


def _settings_for(database_url: str, redis_url: str, **overrides: Any) -> UsersSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        # The event channel on the cache's Redis: its keys are all under events:.
        "events_redis_url": redis_url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwks_url": JWKS_URL,
        **overrides,
    }
    return UsersSettings(**values)


@pytest.fixture
def migrate() -> Callable[..., Any]:
    return alembic


@pytest.fixture
def new_database() -> Callable[[str], Any]:
    return create_database


@pytest.fixture
def make_settings(users_database_url: str, redis_url: str) -> SettingsFactory:
    def make(**overrides: Any) -> UsersSettings:
        return _settings_for(
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


@pytest.fixture
async def events_redis(redis_url: str) -> AsyncIterator[Redis]:
    """The event channel's Redis, to publish events and read the streams in tests."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def problem() -> ProblemCheck:
    return _assert_problem


def _assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    assert {"type", "title", "detail"} <= body.keys()
    return body
