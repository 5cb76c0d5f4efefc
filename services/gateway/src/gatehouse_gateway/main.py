"""The gateway app: the only public entry point of Gatehouse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
from fastapi import FastAPI
from prometheus_client import start_http_server
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from gatehouse_common.app import create_app as create_service_app
from gatehouse_common.authentication import token_verifier
from gatehouse_common.health import Readiness
from gatehouse_common.logging import get_logger
from gatehouse_common.request_id import REQUEST_ID_HEADER
from gatehouse_common.settings import load_settings
from gatehouse_gateway.docs_ui import docs_ui_router
from gatehouse_gateway.openapi import ApiDocs
from gatehouse_gateway.proxy import Proxy, ProxyRoute
from gatehouse_gateway.routing import RouteTable
from gatehouse_gateway.settings import GatewaySettings

SERVICE = "gateway"
VERSION = "0.1.0"
TITLE = "Gatehouse API"

_log = get_logger(__name__)


class JWKSNotLoaded(Exception):
    """No key set has been fetched from auth yet."""


@asynccontextmanager
async def metrics_server(settings: GatewaySettings) -> AsyncIterator[None]:
    """Serve Prometheus metrics on their own port, which is never published (0: off)."""
    if not settings.metrics_port:
        yield
        return
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    try:
        yield
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join(timeout=1)


def create_app(
    settings: GatewaySettings | None = None,
    *,
    jwks_transport: httpx2.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The gateway; ``jwks_transport`` lets tests serve auth's JWKS in-process."""
    settings = settings or load_settings(GatewaySettings)
    table = RouteTable.from_settings(settings)
    proxy = Proxy(table, settings)
    readiness = Readiness()

    async def jwks_loaded() -> None:
        verifier = proxy.verifier
        if verifier is None:
            raise JWKSNotLoaded
        if not verifier.jwks.loaded:
            await verifier.jwks.refresh(force=False)
        if not verifier.jwks.loaded:
            raise JWKSNotLoaded

    readiness.register("jwks", jwks_loaded)

    def gateway_document() -> dict[str, Any]:
        return app.openapi()

    docs = ApiDocs(
        table,
        gateway_document,
        proxy.client,
        fetch_timeout=settings.openapi_fetch_timeout_seconds,
    )
    proxy.on_upstream_back = docs.refresh_soon

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            verifier = await stack.enter_async_context(
                token_verifier(settings, transport=jwks_transport)
            )
            await stack.enter_async_context(proxy.running(verifier))
            await stack.enter_async_context(metrics_server(settings))
            stack.callback(docs.cancel_background)
            # Neither needs to succeed: readiness waits for the JWKS, docs refetch on demand.
            jwks_ok, _docs_done = await asyncio.gather(verifier.jwks.refresh(), docs.refresh_all())
            _log.info("gateway_started", jwks_loaded=jwks_ok)
            yield

    app = create_service_app(
        service=SERVICE,
        settings=settings,
        title=TITLE,
        version=VERSION,
        description="The public API of Gatehouse: auth and users behind one gateway.",
        readiness=readiness,
        lifespan=lifespan,
        expose_metrics=False,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(docs.router())
    app.include_router(docs_ui_router)
    app.router.routes.extend(ProxyRoute(proxy, upstream) for upstream in table.upstreams)
    if settings.cors_origins:
        # Just inside the request-context middleware (index 0, outermost), so preflight
        # answers carry a request id and are logged like every other response.
        app.user_middleware.insert(
            1,
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                # Tokens travel in the Authorization header, never in cookies.
                allow_credentials=False,
                allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=["authorization", "content-type", REQUEST_ID_HEADER, "traceparent"],
                expose_headers=[REQUEST_ID_HEADER, "www-authenticate", "retry-after", "location"],
                max_age=600,
            ),
        )
    return app
