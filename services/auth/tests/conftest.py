"""Fixtures: an auth app on the session's MongoDB and Redis, isolated per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI

from gatehouse_auth.database import AuthDatabase, mongo_client
from gatehouse_auth.mailer.worker import EmailWorker
from gatehouse_auth.main import create_app
from gatehouse_auth.settings import AuthSettings, EmailWorkerSettings
from gatehouse_auth.signing_keys import SigningKeySet
from gatehouse_testing.app import StartedApp, started
from gatehouse_testing.mail import MailCatcher
from services.auth.tests.support import (
    AUDIENCE,
    BASE_URL,
    ISSUER,
    PUBLIC_BASE_URL,
    SENDER,
    AuthApi,
    SettingsFactory,
    WorkerSettingsFactory,
    running_worker,
    settings_factory,
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

    return settings_factory(
        AuthSettings,
        {
            "mongo_url": mongo_url,
            "mongo_database": database,
            "redis_url": redis_url,
            "redis_key_prefix": prefix,
            "events_redis_url": redis_url,
            # Short blocking reads and polls: events travel, and apps stop, quickly.
            "events_block_seconds": 0.5,
            "events_outbox_poll_interval_seconds": 0.2,
            "signing_keys_file": shared_key_file,
            "issuer": ISSUER,
            "audience": AUDIENCE,
            # Cheap hashing keeps the suite fast; the timing test uses real parameters.
            "argon2_time_cost": 1,
            "argon2_memory_cost_kib": 8192,
            "argon2_parallelism": 1,
        },
    )


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


@pytest.fixture
def make_worker_settings(
    make_settings: SettingsFactory, maildev: MailCatcher
) -> WorkerSettingsFactory:
    """Settings of an email worker on the test's database, sending to the session's MailDev."""
    auth = make_settings()

    return settings_factory(
        EmailWorkerSettings,
        {
            "mongo_url": auth.mongo_url.get_secret_value(),
            "mongo_database": auth.mongo_database,
            "smtp_host": maildev.smtp_host,
            "smtp_port": maildev.smtp_port,
            "smtp_tls": "none",
            "smtp_timeout_seconds": 2.0,
            "smtp_sender": SENDER,
            "public_base_url": PUBLIC_BASE_URL,
            # Quick polls and short retries keep the outage tests short.
            "email_poll_interval_seconds": 0.1,
            "email_retry_base_seconds": 0.2,
            "email_retry_max_seconds": 1.0,
        },
    )


@pytest.fixture
async def email_worker(make_worker_settings: WorkerSettingsFactory) -> AsyncIterator[EmailWorker]:
    async with running_worker(make_worker_settings()) as worker:
        yield worker
