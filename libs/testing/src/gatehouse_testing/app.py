"""Apps under test: lifespan run, its state handed to every request, as a server does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send


class StartedApp:
    """An app whose lifespan is running: an ASGI app giving each request the lifespan state.

    ``httpx2.ASGITransport`` runs no lifespan and passes no state, so requests through it
    would find no resources; this does what uvicorn does with the state a lifespan yields.
    """

    def __init__(self, app: FastAPI, state: Mapping[str, Any]) -> None:
        self.app = app
        self._state = dict(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"}:
            scope = {**scope, "state": dict(self._state)}  # a shallow copy, as servers make
        await self.app(scope, receive, send)

    def client(
        self,
        base_url: str = "http://test",
        *,
        client_address: tuple[str, int] = ("127.0.0.1", 50000),
        timeout: float = 30,
    ) -> httpx2.AsyncClient:
        """An in-process HTTP client of this app."""
        return httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=self, client=client_address),
            base_url=base_url,
            timeout=timeout,
        )


@asynccontextmanager
async def started(app: FastAPI) -> AsyncIterator[StartedApp]:
    """Run ``app``'s lifespan for the block."""
    async with app.router.lifespan_context(app) as state:
        yield StartedApp(app, state or {})
