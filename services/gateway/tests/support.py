"""What the gateway tests share besides fixtures: a real upstream stub, settings and types.

The upstream is a small FastAPI app served by uvicorn on a loopback port in a background
thread (its own event loop), so every proxied request crosses a real TCP connection.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx2
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from gatehouse_gateway.settings import GatewaySettings
from gatehouse_testing.issuer import TestIssuer, verification_settings

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

        @app.api_route("/users/big", methods=["GET", "HEAD"], include_in_schema=False)
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
                    "server": "stub-banner/1.0",
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

        @app.get("/users/moved")
        async def moved(request: Request) -> RedirectResponse:
            """An absolute redirect built from the upstream's own address, as Starlette's
            trailing-slash redirect is."""
            self.hits += 1
            return RedirectResponse(str(request.url.replace(path="/users/me")), status_code=307)

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


def gateway_settings(upstream_url: str, events_redis_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "auth_url": upstream_url,
        "users_url": upstream_url,
        "events_redis_url": events_redis_url,
        **verification_settings(),
        "metrics_port": 0,
        "upstream_connect_timeout_seconds": 1.0,
        "upstream_read_timeout_seconds": 5.0,
        # Answered at once: the tests of the failure mapping want the 502 or 503 that the
        # restart grace would postpone; test_circuit_breaker.py tests the grace itself.
        "upstream_restart_grace_seconds": 0.0,
        **overrides,
    }
    return GatewaySettings(**values)


AppFactory = Callable[..., FastAPI]
GatewayFactory = Callable[..., AbstractAsyncContextManager[httpx2.AsyncClient]]
