from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx2
import pytest
from fastapi import APIRouter, FastAPI

from gatehouse_common.app import ServiceInfo, create_app
from gatehouse_common.events import stream_for
from gatehouse_common.settings import ServiceSettings
from gatehouse_testing.app import started

AppFactory = Callable[..., FastAPI]
AppClient = Callable[[FastAPI], Awaitable[httpx2.AsyncClient]]


@pytest.fixture
def make_app() -> AppFactory:
    def build(*routers: APIRouter, **kwargs: object) -> FastAPI:
        return create_app(
            ServiceInfo(name="test", title="test", version="0"),
            ServiceSettings(),
            routers=routers,
            **kwargs,  # type: ignore[arg-type]
        )

    return build


@pytest.fixture
async def client_for() -> AsyncIterator[AppClient]:
    """Start an app (lifespan included) and give an in-process client; stopped after the test."""
    async with AsyncExitStack() as stack:

        async def open_client(app: FastAPI) -> httpx2.AsyncClient:
            running = await stack.enter_async_context(started(app))
            return await stack.enter_async_context(running.client())

        yield open_client


@pytest.fixture
def stream() -> str:
    """A stream of its own for each test, on the session's Redis."""
    return stream_for(f"test-{uuid.uuid4().hex[:12]}")
