"""The app factory: every service is wired the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from gatehouse_common.draining import DRAINING_STATE_KEY, Draining
from gatehouse_common.event_loop_lag import LAG_SAMPLE_INTERVAL_SECONDS, event_loop_lag_sampled
from gatehouse_common.garbage_collection import collector_set_for_serving
from gatehouse_common.health import Readiness, health_router
from gatehouse_common.logging import configure_logging
from gatehouse_common.loop_exceptions import abandoned_dns_lookups_as_warnings
from gatehouse_common.methods import HeadAsGet
from gatehouse_common.metrics import metrics_router
from gatehouse_common.problems import (
    PROBLEM_TYPE_BASE,
    document_problems_only,
    install_problem_handlers,
    problem_response,
)
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
            _ProblemCORSMiddleware,
            allow_origins=list(self.origins),
            # Tokens travel in the Authorization header, never in cookies.
            allow_credentials=False,
            allow_methods=list(self.methods),
            allow_headers=list(self.headers),
            expose_headers=list(self.expose_headers),
            max_age=self.max_age_seconds,
        )


class _ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, answering a refused preflight as problem JSON (its own
    answer is ``400 text/plain``), with the request id like every other error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        return problem_response(
            response.status_code,
            f"The cross-origin request is not allowed ({refused}).",
            problem_type=f"{PROBLEM_TYPE_BASE}cors-refused",
            headers={
                name: value
                for name, value in response.headers.items()
                if name not in {"content-length", "content-type"}
            },
        )


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What a service is called: its log and metrics name and its OpenAPI title."""

    name: str
    title: str
    version: str
    description: str = ""


def operation_id(route: APIRoute) -> str:
    """The endpoint function's name (``read_own_profile``), not FastAPI's name+path+method.

    Readable in generated clients; unique because every endpoint has its own function, and
    the gateway keeps upstreams' ids apart when it merges their documents.
    """
    return route.name


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
    It may register with ``draining_of(app)`` what to refuse once the server's shutdown begins
    (``gatehouse_common.draining``).
    ``unavailable`` maps datastore connection errors to the datastore's name (503 problems).

    Middleware, outermost first: request context (request id, security headers, metrics,
    access log, last-resort 500: one layer, one ``send`` wrapper), CORS when ``cors`` is given
    (inside the request context, so preflight answers carry a request id, are counted and
    logged), ``middleware`` in the given order, OpenTelemetry only when an OTLP endpoint is
    set, HEAD answered as GET (innermost, so everything outside sees HEAD). All pure ASGI, so
    streamed bodies stay streamed.

    While the app runs, a task samples the event loop's lag (``event_loop_lag_seconds``; a
    warning above ``settings.event_loop_lag_warning_seconds``), the garbage collector is set
    for serving once the lifespan has started (``garbage_collection``), and the loop logs a
    failed name lookup that a cancelled connect abandoned as a warning (``loop_exceptions``).
    """
    configure_logging(info.name, settings.log_level)
    provider = tracer_provider(
        info.name, str(settings.otlp_endpoint) if settings.otlp_endpoint else None
    )

    @asynccontextmanager
    async def lifespan_state(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        try:
            async with (
                abandoned_dns_lookups_as_warnings(),
                event_loop_lag_sampled(
                    LAG_SAMPLE_INTERVAL_SECONDS, settings.event_loop_lag_warning_seconds
                ),
                AsyncExitStack() as stack,
            ):
                draining = app.state.draining = Draining()
                resources = (
                    None if lifespan is None else await stack.enter_async_context(lifespan(app))
                )
                with collector_set_for_serving():
                    yield {RESOURCES_KEY: resources, DRAINING_STATE_KEY: draining}
        finally:
            if provider is not None:
                provider.shutdown()

    outermost_first = [
        Middleware(RequestContextMiddleware),
        *([cors.middleware()] if cors is not None else []),
        *middleware,
        *([Middleware(traced, provider=provider)] if provider is not None else []),
        Middleware(HeadAsGet),
    ]
    app = FastAPI(
        title=info.title,
        version=info.version,
        description=info.description,
        lifespan=lifespan_state,
        middleware=outermost_first,
        generate_unique_id_function=operation_id,
        # Tracing is the OpenTelemetry middleware above with this app's own provider, or none.
        # FastAPI's built-in telemetry would trace any app through a process-wide provider,
        # whatever the app's settings say.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # A trailing slash is a 404, not a redirect: Starlette builds the redirect's absolute
        # URL from the request's Host, which behind the gateway names the service itself
        # (http://users:8002/...) and on the gateway is whatever the client sent.
        redirect_slashes=False,
        # The API docs page is the gateway's (docs/security.md); a service publishes only
        # its OpenAPI document, which the gateway merges.
        **{"docs_url": None, "redoc_url": None, **fastapi_kwargs},
    )
    install_problem_handlers(app, unavailable)
    document_problems_only(app)
    app.include_router(health_router(readiness or Readiness()))
    if expose_metrics:
        app.include_router(metrics_router())
    for router in routers:
        app.include_router(router)
    return app
