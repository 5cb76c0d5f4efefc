"""The app factory: every service is wired the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from gatehouse_common.health import Readiness, health_router
from gatehouse_common.logging import configure_logging
from gatehouse_common.metrics import metrics_router
from gatehouse_common.problems import install_problem_handlers
from gatehouse_common.request_context import RequestContextMiddleware
from gatehouse_common.request_id import REQUEST_ID_HEADER
from gatehouse_common.resources import RESOURCES_KEY
from gatehouse_common.settings import ServiceSettings
from gatehouse_common.tracing import traced, tracer_provider

R = TypeVar("R")

# A service's lifespan: builds its resources, yields them as one object, closes them after.
ResourcesLifespan = Callable[[FastAPI], AbstractAsyncContextManager[R]]


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Cross-origin access for browser clients: only the listed origins, never ``*``."""

    origins: Sequence[str]
    methods: Sequence[str] = ("GET", "POST", "PATCH", "DELETE", "OPTIONS")
    headers: Sequence[str] = ("authorization", "content-type", REQUEST_ID_HEADER, "traceparent")
    expose_headers: Sequence[str] = (
        REQUEST_ID_HEADER,
        "www-authenticate",
        "retry-after",
        "location",
    )
    max_age_seconds: int = 600

    def middleware(self) -> Middleware:
        return Middleware(
            CORSMiddleware,
            allow_origins=list(self.origins),
            # Tokens travel in the Authorization header, never in cookies.
            allow_credentials=False,
            allow_methods=list(self.methods),
            allow_headers=list(self.headers),
            expose_headers=list(self.expose_headers),
            max_age=self.max_age_seconds,
        )


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What a service is called: its log and metrics name and its OpenAPI title."""

    name: str
    title: str
    version: str
    description: str = ""


def create_app(  # noqa: PLR0913 - keyword-only wiring, each with a default but info and settings
    info: ServiceInfo,
    settings: ServiceSettings,
    *,
    lifespan: ResourcesLifespan[R] | None = None,
    readiness: Readiness[R] | None = None,
    routers: Sequence[APIRouter] = (),
    middleware: Sequence[Middleware] = (),
    cors: CorsPolicy | None = None,
    unavailable: Mapping[type[Exception], str] | None = None,
    expose_metrics: bool = True,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with logging, problem+json errors, health, metrics and optional tracing.

    ``lifespan`` builds the service's resources and yields them as one object, which requests
    read with ``gatehouse_common.resources.resources_dependency``; ``readiness`` checks take it.
    ``unavailable`` maps datastore connection errors to the datastore's name (503 problems).

    Middleware, outermost first: request context (request id, security headers, metrics,
    access log, last-resort 500: one layer, one ``send`` wrapper), CORS when ``cors`` is given
    (inside the request context, so preflight answers carry a request id, are counted and
    logged), ``middleware`` in the given order, OpenTelemetry only when an OTLP endpoint is
    set. All pure ASGI, so streamed bodies stay streamed.
    """
    configure_logging(info.name, settings.log_level)
    provider = tracer_provider(
        info.name, str(settings.otlp_endpoint) if settings.otlp_endpoint else None
    )

    @asynccontextmanager
    async def lifespan_state(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        try:
            if lifespan is None:
                yield {RESOURCES_KEY: None}
            else:
                async with lifespan(app) as resources:
                    yield {RESOURCES_KEY: resources}
        finally:
            if provider is not None:
                provider.shutdown()

    outermost_first = [
        Middleware(RequestContextMiddleware),
        *([cors.middleware()] if cors is not None else []),
        *middleware,
        *([Middleware(traced, provider=provider)] if provider is not None else []),
    ]
    app = FastAPI(
        title=info.title,
        version=info.version,
        description=info.description,
        lifespan=lifespan_state,
        middleware=outermost_first,
        # Tracing is the OpenTelemetry middleware above with this app's own provider, or none.
        # FastAPI's built-in telemetry would trace any app through a process-wide provider,
        # whatever the app's settings say.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # The API docs page is the gateway's (docs/security.md); a service publishes only
        # its OpenAPI document, which the gateway merges.
        **{"docs_url": None, "redoc_url": None, **fastapi_kwargs},
    )
    install_problem_handlers(app, unavailable)
    app.include_router(health_router(readiness or Readiness()))
    if expose_metrics:
        app.include_router(metrics_router())
    for router in routers:
        app.include_router(router)
    return app
