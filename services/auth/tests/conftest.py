"""Fixtures: an auth app on the session's MongoDB and Redis, isolated per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from gatehouse_auth.database import AuthDatabase, mongo_client
from gatehouse_auth.mailer.main import build_worker
from gatehouse_auth.mailer.worker import EmailWorker
from gatehouse_auth.main import create_app
from gatehouse_auth.settings import AuthSettings, EmailWorkerSettings
from gatehouse_auth.signing_keys import SigningKeySet
from gatehouse_common.events import AUTH_STREAM, Event, decode, event_type_of
from gatehouse_common.events.entries import range_entries
from gatehouse_testing.app import StartedApp, started
from gatehouse_testing.mail import MailCatcher

ISSUER = "https://auth.gatehouse.test"
AUDIENCE = "gatehouse"
BASE_URL = "http://auth.test"
PASSWORD = "correct horse battery"

PUBLIC_BASE_URL = "https://gatehouse.example.com"
SENDER = "gatehouse@example.com"

SettingsFactory = Callable[..., AuthSettings]
WorkerSettingsFactory = Callable[..., EmailWorkerSettings]
Runner = Callable[..., AbstractAsyncContextManager[httpx2.AsyncClient]]
WorkerRunner = Callable[..., AbstractAsyncContextManager[EmailWorker]]


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
            "environment": "test",
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
            **overrides,
        }
        return AuthSettings(**values)

    return make


@asynccontextmanager
async def running(
    app: FastAPI, client_address: str = "127.0.0.1"
) -> AsyncIterator[httpx2.AsyncClient]:
    """The app with its lifespan running, and a client talking to it in-process."""
    async with (
        started(app) as running_app,
        running_app.client(BASE_URL, client_address=(client_address, 50000)) as client,
    ):
        yield client


@pytest.fixture
def run_app() -> Runner:
    """``async with run_app(app, client_address=...) as client`` for tests that build apps."""
    return running


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
def make_worker_settings(
    make_settings: SettingsFactory, maildev: MailCatcher
) -> WorkerSettingsFactory:
    """Settings of an email worker on the test's database, sending to the session's MailDev."""
    auth = make_settings()

    def make(**overrides: Any) -> EmailWorkerSettings:
        values: dict[str, Any] = {
            "environment": "test",
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
            **overrides,
        }
        return EmailWorkerSettings(**values)

    return make


@asynccontextmanager
async def running_worker(settings: EmailWorkerSettings) -> AsyncIterator[EmailWorker]:
    """An email worker delivering in the background until the block ends (a clean stop)."""
    client = mongo_client(settings)
    worker = build_worker(settings, AuthDatabase(client, settings.mongo_database))
    stop = asyncio.Event()
    delivery = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await delivery
        await client.close()


@pytest.fixture
def run_worker() -> WorkerRunner:
    """``async with run_worker(settings) as worker``: a worker the test can stop and restart."""
    return running_worker


@pytest.fixture
async def email_worker(make_worker_settings: WorkerSettingsFactory) -> AsyncIterator[EmailWorker]:
    async with running_worker(make_worker_settings()) as worker:
        yield worker


class AuthApi:
    """The auth endpoints as a test drives them."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self.client = client

    async def register(
        self,
        email: str | None = None,
        password: str = PASSWORD,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        body: dict[str, Any] = {"email": email, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        response = await self.client.post("/auth/register", json=body)
        assert response.status_code == 201, response.text
        registered: dict[str, Any] = response.json()
        return registered

    async def login(
        self, email: str, password: str = PASSWORD, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        return await self.client.post(
            "/auth/token",
            data={"grant_type": "password", "username": email, "password": password},
            headers=headers,
        )

    async def tokens(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.login(email, password)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def refresh(self, refresh_token: str) -> httpx2.Response:
        return await self.client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def revoke(self, token: str) -> httpx2.Response:
        return await self.client.post("/auth/revoke", data={"token": token})

    async def sessions(self, access_token: str) -> httpx2.Response:
        return await self.client.get("/auth/sessions", headers=bearer(access_token))

    async def end_session(self, access_token: str, session_id: str) -> httpx2.Response:
        return await self.client.delete(
            f"/auth/sessions/{session_id}", headers=bearer(access_token)
        )

    async def end_every_session(self, access_token: str) -> httpx2.Response:
        return await self.client.delete("/auth/sessions", headers=bearer(access_token))

    async def change_password(
        self, access_token: str, current_password: str, new_password: str
    ) -> httpx2.Response:
        return await self.client.post(
            "/auth/password",
            json={"current_password": current_password, "new_password": new_password},
            headers=bearer(access_token),
        )

    async def verify(self, token: str) -> httpx2.Response:
        return await self.client.post("/auth/verify", json={"token": token})

    async def resend(self, access_token: str) -> httpx2.Response:
        return await self.client.post(
            "/auth/verify/resend", headers={"Authorization": f"Bearer {access_token}"}
        )

    async def forgot(self, email: str) -> httpx2.Response:
        return await self.client.post("/auth/password/forgot", json={"email": email})

    async def reset(self, token: str, new_password: str) -> httpx2.Response:
        return await self.client.post(
            "/auth/password/reset", json={"token": token, "new_password": new_password}
        )


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


@pytest.fixture
def api(client: httpx2.AsyncClient) -> AuthApi:
    return AuthApi(client)


@pytest.fixture
def api_for() -> type[AuthApi]:
    """``api_for(client)``: the helper for a client of an app the test built itself."""
    return AuthApi


@pytest.fixture
async def events_redis(redis_url: str) -> AsyncIterator[Redis]:
    """The event channel as a test reads and writes it (the session's Redis)."""
    redis = Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


async def auth_events(redis: Redis, user_id: str, event_type: str) -> list[Event[Any]]:
    """The events of ``event_type`` about ``user_id`` on ``events:auth`` (tests share it)."""
    found = []
    for _, fields in range_entries(await redis.xrange(AUTH_STREAM, "-", "+")):
        if event_type_of(fields) != event_type:
            continue
        event = decode(fields)
        if str(event.payload.user_id) == user_id:
            found.append(event)
    return found


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 5.0) -> None:
    """Wait until ``check`` holds, at most ``seconds`` (the contract's bound for events)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds:g}s: {what}")
        await asyncio.sleep(0.1)
