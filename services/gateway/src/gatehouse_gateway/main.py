"""The gateway app: the only public entry point of Gatehouse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx2
from fastapi import FastAPI
from prometheus_client import start_http_server
from starlette.middleware import Middleware

from gatehouse_common.app import CorsPolicy, ServiceInfo
from gatehouse_common.app import create_app as create_service_app
from gatehouse_common.authentication import token_verifier
from gatehouse_common.events import run_in_background
from gatehouse_common.events.wiring import open_event_channel
from gatehouse_common.logging import get_logger
from gatehouse_common.revocation import RevocationFeed, RevocationSet
from gatehouse_common.settings import load_settings
from gatehouse_gateway.docs_ui import docs_ui_router
from gatehouse_gateway.endpoints import ProxyFirst, ProxyRoute, openapi_router
from gatehouse_gateway.exchange import UpstreamExchange
from gatehouse_gateway.openapi import ApiDocs
from gatehouse_gateway.proxy import Proxy
from gatehouse_gateway.resources import READINESS, GatewayResources
from gatehouse_gateway.routing import RouteTable
from gatehouse_gateway.settings import GatewaySettings
from gatehouse_gateway.upstream import upstream_clients

INFO = ServiceInfo(
    name="gateway",
    title="Gatehouse API",
    version="0.1.0",
    description="The public API of Gatehouse: auth and users behind one gateway.",
)

_log = get_logger(__name__)


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[GatewayResources]:
        async with AsyncExitStack() as stack:
            verifier = await stack.enter_async_context(
                token_verifier(settings, transport=jwks_transport)
            )
            events_redis = open_event_channel(settings)
            stack.push_async_callback(events_redis.aclose)
            revocations = RevocationSet(
                retention_seconds=settings.access_token_max_lifetime_seconds
                + settings.jwt_leeway_seconds
            )
            feed = RevocationFeed(
                events_redis, revocations, block_seconds=settings.events_block_seconds
            )
            await stack.enter_async_context(run_in_background(feed))
            clients = await stack.enter_async_context(upstream_clients(table, settings))
            await stack.enter_async_context(metrics_server(settings))
            docs = ApiDocs(
                table, app.openapi, clients, fetch_timeout=settings.openapi_fetch_timeout_seconds
            )
            stack.callback(docs.cancel_background)
            proxy = Proxy(
                table,
                verifier=verifier,
                revocations=revocations,
                exchange=UpstreamExchange(
                    table, settings, clients=clients, on_upstream_back=docs.refresh_soon
                ),
                max_body_bytes=settings.max_body_bytes,
                body_timeout_seconds=settings.body_timeout_seconds,
            )
            # None needs to succeed: readiness waits for the JWKS, docs refetch on demand, and
            # the replay gives up after its wait (revocation then starts from what arrives).
            jwks_ok, _docs_done, replayed = await asyncio.gather(
                verifier.jwks.refresh(),
                docs.refresh_all(),
                feed.wait_caught_up(settings.revocation_replay_wait_seconds),
            )
            _log.info("gateway_started", jwks_loaded=jwks_ok, revocations_replayed=replayed)
            yield GatewayResources(
                token_verifier=verifier,
                revocations=revocations,
                events_redis=events_redis,
                proxy=proxy,
                docs=docs,
            )

    app = create_service_app(
        INFO,
        settings,
        lifespan=lifespan,
        readiness=READINESS,
        routers=[openapi_router, docs_ui_router],
        cors=CorsPolicy(settings.cors_origins) if settings.cors_origins else None,
        expose_metrics=False,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    proxy_routes = [ProxyRoute(upstream) for upstream in table.upstreams]
    app.router.routes.extend(proxy_routes)
    # Innermost, inside the tracing and HEAD layers (create_app's ``middleware`` go outside them).
    app.user_middleware.append(Middleware(ProxyFirst, routes=proxy_routes))
    return app
