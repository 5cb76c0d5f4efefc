"""What the auth tests share besides fixtures: settings, an in-process app, an API client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from fastapi import FastAPI

from gatehouse_auth.settings import AuthSettings
from gatehouse_testing.app import started

ISSUER = "https://auth.gatehouse.test"
AUDIENCE = "gatehouse"
BASE_URL = "http://auth.test"
PASSWORD = "correct horse battery"

SettingsFactory = Callable[..., AuthSettings]


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


class AuthApi:
    """The auth endpoints as a test drives them."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self.client = client

    async def register(self, email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        response = await self.client.post(
            "/auth/register", json={"email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

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
