from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx2
import pytest
from fastapi import APIRouter, FastAPI

from gatehouse_common.app import create_app
from gatehouse_common.health import Readiness
from gatehouse_common.settings import ServiceSettings

AppClient = Callable[[FastAPI], httpx2.AsyncClient]


@pytest.fixture
def make_app() -> Callable[..., FastAPI]:
    def build(*routers: APIRouter, readiness: Readiness | None = None, **kwargs: object) -> FastAPI:
        return create_app(
            service="test",
            settings=ServiceSettings(),
            title="test",
            version="0",
            readiness=readiness or Readiness(),
            routers=routers,
            **kwargs,  # type: ignore[arg-type]
        )

    return build


@pytest.fixture
async def client_for() -> AsyncIterator[AppClient]:
    clients: list[httpx2.AsyncClient] = []

    def open_client(app: FastAPI) -> httpx2.AsyncClient:
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://test")
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.aclose()
