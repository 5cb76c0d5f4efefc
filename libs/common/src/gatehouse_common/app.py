"""The app factory: every service is wired the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.types import Lifespan

from gatehouse_common.health import Readiness, health_router
from gatehouse_common.logging import configure_logging
from gatehouse_common.methods import HeadAsGet
from gatehouse_common.metrics import MetricsMiddleware, metrics_router
from gatehouse_common.problems import install_problem_handlers
from gatehouse_common.request_context import RequestContextMiddleware
from gatehouse_common.settings import ServiceSettings
from gatehouse_common.tracing import traced, tracer_provider


def operation_id(route: APIRoute) -> str:
    """The endpoint function's name (``read_own_profile``), not FastAPI's name+path+method.

    Readable in generated clients; unique because every endpoint has its own function, and
    the gateway keeps upstreams' ids apart when it merges their documents.
    """
    return route.name


def create_app(
    *,
    service: str,
    settings: ServiceSettings,
    title: str,
    version: str,
    readiness: Readiness,
    routers: Sequence[APIRouter] = (),
    lifespan: Lifespan[FastAPI] | None = None,
    expose_metrics: bool = True,
    description: str = "",
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with logging, problem+json errors, health, metrics and optional tracing.

    Middleware, outermost first: request context (request id, access log, last-resort 500),
    OpenTelemetry when an OTLP endpoint is set, metrics, HEAD answered as GET. All pure ASGI,
    so streamed bodies stay streamed.
    """
    configure_logging(service, settings.log_level)
    provider = tracer_provider(
        service, str(settings.otlp_endpoint) if settings.otlp_endpoint else None
    )

    @asynccontextmanager
    async def lifespan_with_tracing(app: FastAPI) -> AsyncIterator[Any]:
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            if provider is not None:
                provider.shutdown()

    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan_with_tracing,
        generate_unique_id_function=operation_id,
        **fastapi_kwargs,
    )
    install_problem_handlers(app)
    app.include_router(health_router(readiness))
    if expose_metrics:
        app.include_router(metrics_router())
    for router in routers:
        app.include_router(router)

    app.add_middleware(HeadAsGet)
    app.add_middleware(MetricsMiddleware)
    if provider is not None:
        app.add_middleware(traced, provider=provider)
    app.add_middleware(RequestContextMiddleware)  # added last, so outermost
    return app
