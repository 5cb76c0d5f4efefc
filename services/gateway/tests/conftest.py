"""A real upstream process for the gateway to proxy to, and an in-process gateway factory.

The upstream is a small FastAPI app served by uvicorn on a loopback port in a background
thread (its own event loop), so every proxied request crosses a real TCP connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from gatehouse_gateway.main import create_app
from gatehouse_gateway.settings import GatewaySettings
from gatehouse_testing.app import started
from gatehouse_testing.issuer import AUDIENCE, ISSUER, JWKS_URL, TestIssuer
from gatehouse_testing.network import free_port

MIB = 1024 * 1024


class UpstreamStub:
    """What the stub upstream saw: a count of requests that reached it."""

    def __init__(self, issuer: TestIssuer) -> None:
        self.issuer = issuer
        self.hits = 0
        self.url = ""  # set once the server runs
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI(title="stub")

        @app.get("/auth/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            self.hits += 1
            return self.issuer.jwks()

        @app.get("/users/big")
        async def big(mib: int = 1) -> StreamingResponse:
            self.hits += 1
            chunk = b"x" * MIB

            async def body() -> AsyncIterator[bytes]:
                for _ in range(mib):
                    yield chunk

            return StreamingResponse(
                body(),
                media_type="application/octet-stream",
                headers={"content-length": str(mib * MIB)},
            )

        @app.get("/users/slow")
        async def slow(seconds: float) -> dict[str, str]:
            self.hits += 1
            await asyncio.sleep(seconds)
            return {"status": "late"}

        @app.get("/users/hop")
        async def hop() -> Response:
            self.hits += 1
            return Response(
                b"{}",
                media_type="application/json",
                headers={
                    "connection": "x-secret-hop",
                    "x-secret-hop": "1",
                    "keep-alive": "timeout=5",
                    "x-kept": "yes",
                },
            )

        @app.get("/users/forbidden")
        async def forbidden(request: Request) -> Response:
            """What users answers a token without the route's scope."""
            self.hits += 1
            return JSONResponse(
                {
                    "type": "https://gatehouse.dev/problems/insufficient-scope",
                    "title": "Forbidden",
                    "status": 403,
                    "detail": "This request needs the scope 'admin'.",
                    "request_id": request.headers["x-request-id"],
                },
                status_code=403,
                media_type="application/problem+json",
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="admin"'},
            )

        @app.get("/health")
        async def upstream_health() -> dict[str, str]:
            self.hits += 1
            return {"status": "upstream"}

        @app.get("/metrics")
        async def upstream_metrics() -> Response:
            self.hits += 1
            return Response("upstream_secret_metric 1\n")

        @app.api_route(
            "/{path:path}",
            methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"],
            include_in_schema=False,
        )
        async def echo(request: Request, path: str) -> JSONResponse:
            self.hits += 1
            body = await request.body()
            return JSONResponse(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "raw_path": request.scope["raw_path"].decode("latin-1"),
                    "query": request.url.query,
                    "headers": [[k.decode(), v.decode()] for k, v in request.scope["headers"]],
                    "body_length": len(body),
                    "body_sha256": hashlib.sha256(body).hexdigest(),
                },
                headers={"x-upstream": "stub"},
            )

        return app


class ServerThread:
    """uvicorn serving ``app`` on a loopback port in a thread; stoppable and restartable."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("upstream stub did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None


@pytest.fixture(scope="session")
def stub_issuer() -> TestIssuer:
    """The issuer whose JWKS the stub upstream serves (for gateways running out of process)."""
    return TestIssuer()


@pytest.fixture(scope="session")
def upstream(stub_issuer: TestIssuer) -> Iterator[UpstreamStub]:
    stub = UpstreamStub(stub_issuer)
    server = ServerThread(stub.app)
    server.start()
    stub.url = server.url
    yield stub
    server.stop()


@pytest.fixture(scope="session")
def upstream_url(upstream: UpstreamStub) -> str:
    return upstream.url


def gateway_settings(upstream_url: str, events_redis_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "environment": "test",
        "auth_url": upstream_url,
        "users_url": upstream_url,
        "events_redis_url": events_redis_url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwks_url": JWKS_URL,
        "metrics_port": 0,
        "upstream_connect_timeout_seconds": 1.0,
        "upstream_read_timeout_seconds": 5.0,
        **overrides,
    }
    return GatewaySettings(**values)


AppFactory = Callable[..., FastAPI]
GatewayFactory = Callable[..., AbstractAsyncContextManager[httpx2.AsyncClient]]


@pytest.fixture
def gateway_app(issuer: TestIssuer, upstream_url: str, redis_url: str) -> AppFactory:
    """Build a gateway app (its event channel on the session's Redis); keyword arguments
    override settings.

    ``jwks_transport`` replaces the transport that serves the ``issuer`` fixture's JWKS.
    """

    def build(jwks_transport: httpx2.AsyncBaseTransport | None = None, **overrides: Any) -> FastAPI:
        settings = gateway_settings(
            upstream_url, overrides.pop("events_redis_url", redis_url), **overrides
        )
        return create_app(settings, jwks_transport=jwks_transport or issuer.transport())

    return build


@pytest.fixture
def make_gateway(gateway_app: AppFactory) -> GatewayFactory:
    """Start a gateway in-process (lifespan included) and give a client talking to it."""

    @asynccontextmanager
    async def start(
        client: tuple[str, int] = ("127.0.0.1", 50000), **overrides: Any
    ) -> AsyncIterator[httpx2.AsyncClient]:
        async with (
            started(gateway_app(**overrides)) as running,
            running.client("http://gateway.test", client_address=client) as http,
        ):
            yield http

    return start


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> AsyncIterator[httpx2.AsyncClient]:
    async with make_gateway() as http:
        yield http


@pytest.fixture
def restartable_upstream(stub_issuer: TestIssuer) -> Iterator[ServerThread]:
    """A stub upstream on its own port, not yet started: tests start and stop it."""
    server = ServerThread(UpstreamStub(stub_issuer).app)
    yield server
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens: an upstream that is down."""
    return f"http://127.0.0.1:{free_port()}"
