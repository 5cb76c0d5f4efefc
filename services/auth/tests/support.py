"""What the auth tests share besides fixtures: settings, an in-process app and email worker,
an API client, and readers of auth's events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx2
from fastapi import FastAPI
from pydantic_settings import BaseSettings
from redis.asyncio import Redis

from gatehouse_auth.database import AuthDatabase, mongo_client
from gatehouse_auth.mailer.main import build_worker
from gatehouse_auth.mailer.worker import EmailWorker
from gatehouse_auth.main import create_app
from gatehouse_auth.settings import AuthSettings, EmailWorkerSettings
from gatehouse_common.events import AUTH_STREAM, Event, MalformedEvent, decode, event_type_of
from gatehouse_common.events.entries import range_entries
from gatehouse_testing.app import started
from gatehouse_testing.problems import bearer

ISSUER = "https://auth.gatehouse.test"
AUDIENCE = "gatehouse"
BASE_URL = "http://auth.test"
PASSWORD = "correct horse battery"

PUBLIC_BASE_URL = "https://gatehouse.example.com"
SENDER = "gatehouse@example.com"

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
SettingsFactory = Callable[..., AuthSettings]
WorkerSettingsFactory = Callable[..., EmailWorkerSettings]


def settings_factory(
    settings_type: type[SettingsT], defaults: Mapping[str, Any]
) -> Callable[..., SettingsT]:
    """Make ``settings_type`` from ``defaults``, any of which a test overrides by keyword."""

    def make(**overrides: Any) -> SettingsT:
        return settings_type(**{**defaults, **overrides})

    return make


def full_width(ascii_text: str) -> str:
    """The full-width spelling (U+FF01 to U+FF5E) of printable ASCII, as East Asian input gives."""
    return "".join(chr(ord(char) + 0xFEE0) for char in ascii_text)


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


@asynccontextmanager
async def serving(settings: AuthSettings) -> AsyncIterator[AuthApi]:
    """An auth app on ``settings``, running for the block, driven through its API (its
    ``client`` for anything else)."""
    async with running(create_app(settings)) as client:
        yield AuthApi(client)


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
        return await self.client.post("/auth/verify/resend", headers=bearer(access_token))

    async def forgot(self, email: str) -> httpx2.Response:
        return await self.client.post("/auth/password/forgot", json={"email": email})

    async def reset(self, token: str, new_password: str) -> httpx2.Response:
        return await self.client.post(
            "/auth/password/reset", json={"token": token, "new_password": new_password}
        )


async def auth_events(redis: Redis, user_id: str, event_type: str) -> list[Event[Any]]:
    """The events of ``event_type`` about ``user_id`` on ``events:auth`` (tests share it)."""
    found = []
    for _, fields in range_entries(await redis.xrange(AUTH_STREAM, "-", "+")):
        if event_type_of(fields) != event_type:
            continue
        try:
            event = decode(fields)
        except MalformedEvent:
            continue  # another suite's deliberately malformed entry (users' dead-letter tests)
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
