"""Prometheus metrics of every request (count and latency per route template) and /metrics.

``RequestContextMiddleware`` records each request with ``record_request`` once the response
is complete, with the ``route_template`` that routing has put in the scope by then.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.routing import BaseRoute
from starlette.types import Scope

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to the end of the response, by route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Unmatched paths share one label so that scanners cannot explode the series count.
UNMATCHED_ROUTE = "<unmatched>"

# The two series of each (method, route, status), looked up once: ``labels()`` converts and
# checks its arguments and takes a lock on every call. As bounded as the series themselves.
_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def route_template(scope: Scope) -> str:
    """The matched route's path template, without convertors (``/users/{profile_id}``)."""
    route = scope.get("route")
    if isinstance(route, BaseRoute):
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(path, str):
            return path
    return UNMATCHED_ROUTE


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count a finished request and observe its duration."""
    key = (method, route, status)
    series = _series.get(key)
    if series is None:
        series = _series[key] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_LATENCY.labels(method, route),
        )
    requests, latency = series
    requests.inc()
    latency.observe(seconds)


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["observability"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
