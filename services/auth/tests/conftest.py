"""Fixtures: an auth app on the session's MongoDB and Redis, isolated per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from gatehouse_auth.database import AuthDatabase, mongo_client
from gatehouse_auth.main import create_app
from gatehouse_auth.settings import AuthSettings
from gatehouse_auth.signing_keys import SigningKeySet
from gatehouse_testing.app import StartedApp, started
from services.auth.tests.support import (
    AUDIENCE,
    BASE_URL,
    ISSUER,
    AuthApi,
    SettingsFactory,
)


@pytest.fixture(scope="session")
def shared_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "signing-keys.json"
    SigningKeySet.create().save(path)
    return path


@pytest.fixture
def make_settings(mongo_url: str, redis_url: str, shared_key_file: Path) -> SettingsFactory:
    """Settings with a fresh database and Redis prefix, so no test sees another's data."""
    database = f"auth_test_{uuid.uuid4().hex[:12]}"
    prefix = f"test:{uuid.uuid4().hex[:12]}:"

    def make(**overrides: Any) -> AuthSettings:
        values: dict[str, Any] = {
            "mongo_url": mongo_url,
            "mongo_database": database,
            "redis_url": redis_url,
            "redis_key_prefix": prefix,
            "signing_keys_file": shared_key_file,
            "issuer": ISSUER,
            "audience": AUDIENCE,
            # Cheap hashing keeps the suite fast; the timing test uses real parameters.
            "argon2_time_cost": 1,
            "argon2_memory_cost_kib": 8192,
            "argon2_parallelism": 1,
            **overrides,
        }
        return AuthSettings(**values)

    return make


@pytest.fixture
async def app(make_settings: SettingsFactory) -> FastAPI:
    return create_app(make_settings())


@pytest.fixture
async def database(make_settings: SettingsFactory) -> AsyncIterator[AuthDatabase]:
    """The test's MongoDB database, opened by the test itself to look at what auth stored."""
    settings = make_settings()
    client = mongo_client(settings)
    yield AuthDatabase(client, settings.mongo_database)
    await client.close()


@pytest.fixture
async def started_app(app: FastAPI) -> AsyncIterator[StartedApp]:
    async with started(app) as running_app:
        yield running_app


@pytest.fixture
async def client(started_app: StartedApp) -> AsyncIterator[httpx2.AsyncClient]:
    async with started_app.client(BASE_URL) as client:
        yield client


@pytest.fixture
def api(client: httpx2.AsyncClient) -> AuthApi:
    return AuthApi(client)
