"""Upstream HTTP clients, failure classification and per-upstream circuit breakers.

``upstream_client`` is the one place that chooses the HTTP transport (see
docs/decisions/0004-gateway-http-transport.md): swapping it changes nothing else, except
``classify_failure``, which knows how each transport reports a refused connection.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import httpx2
from httpx_aiohttp.httpx2 import AiohttpTransport
from prometheus_client import Counter, Gauge

from gatehouse_gateway.routing import RouteTable
from gatehouse_gateway.settings import GatewaySettings

UPSTREAM_FAILURES = Counter(
    "gateway_upstream_failures_total",
    "Proxied requests that got no upstream response, by upstream and kind of failure.",
    ["upstream", "kind"],
)
CIRCUIT_OPEN = Gauge(
    "gateway_upstream_circuit_open",
    "1 while the upstream's circuit breaker is open.",
    ["upstream"],
)


@asynccontextmanager
async def upstream_clients(
    table: RouteTable, settings: GatewaySettings
) -> AsyncIterator[Mapping[str, httpx2.AsyncClient]]:
    """One client per upstream, by name, for the app's lifetime; closed at shutdown."""
    async with AsyncExitStack() as stack:
        yield {
            upstream.name: await stack.enter_async_context(
                upstream_client(upstream.base_url, settings)
            )
            for upstream in table.upstreams
        }


def upstream_client(base_url: str, settings: GatewaySettings) -> httpx2.AsyncClient:
    """The client for one upstream, shared by all requests to it."""
    limits = httpx2.Limits(
        max_connections=settings.upstream_max_connections,
        keepalive_expiry=settings.upstream_keepalive_seconds,
    )
    timeout = httpx2.Timeout(
        connect=settings.upstream_connect_timeout_seconds,
        read=settings.upstream_read_timeout_seconds,
        write=settings.upstream_write_timeout_seconds,
        pool=settings.upstream_pool_timeout_seconds,
    )
    if settings.upstream_transport == "httpx2":
        # httpx2's own transport: slower (docs/performance.md), kept for comparison and as
        # the fallback should the aiohttp transport misbehave.
        return httpx2.AsyncClient(
            base_url=base_url,
            limits=limits,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )
    return httpx2.AsyncClient(
        base_url=base_url,
        transport=AiohttpTransport(limits=limits, trust_env=False),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


class Failure(enum.Enum):
    """Why a proxied request got no response; each maps to one status."""

    CONNECT = "connect"  # nothing accepted the connection: 502, retried for GET/HEAD
    CONNECT_TIMEOUT = "connect_timeout"  # no connection in time: 503, not retried
    TIMEOUT = "timeout"  # no answer in time: 504
    BROKEN = "broken"  # the connection failed after the request went out: 502

    @property
    def counts_against_upstream(self) -> bool:
        """Whether it says the upstream is down (what the circuit breaker counts)."""
        return self in {Failure.CONNECT, Failure.CONNECT_TIMEOUT}


def classify_failure(exc: httpx2.TransportError) -> Failure:
    """Sort a transport error into what happened.

    The aiohttp transport maps every ``aiohttp.ClientConnectionError`` (a refused connection,
    a server that hung up) to ``httpx2.ConnectTimeout``, so the aiohttp cause decides. httpx2's
    own transport raises the matching httpx2 exception (``ConnectError``, ``ReadTimeout``...).
    """
    cause = exc.__cause__
    if isinstance(exc, httpx2.ConnectError) or isinstance(cause, aiohttp.ClientConnectorError):
        return Failure.CONNECT
    # A timeout, unless the aiohttp transport reports a connection error as one; httpx2's own
    # transport chains its internal timeout exception, which is no aiohttp error.
    if isinstance(exc, httpx2.TimeoutException) and (
        not isinstance(cause, aiohttp.ClientError) or isinstance(cause, TimeoutError)
    ):
        # The aiohttp transport's connect timeout also covers waiting for a pooled
        # connection, so a saturated pool reads as a connect timeout there.
        return (
            Failure.CONNECT_TIMEOUT if isinstance(exc, httpx2.ConnectTimeout) else Failure.TIMEOUT
        )
    return Failure.BROKEN


class CircuitBreaker:
    """Opens after ``threshold`` consecutive connect failures; stays open ``open_seconds``.

    While open the gateway answers 503 with ``Retry-After`` at once instead of making every
    client wait on a dead upstream. After the cool-down requests go through again; the first
    failure re-opens it, the first response closes it.
    """

    def __init__(
        self,
        upstream: str,
        *,
        threshold: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstream = upstream
        self._threshold = threshold
        self._open_seconds = open_seconds
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    def retry_after(self) -> int | None:
        """Seconds until the circuit half-opens, or None when requests may go through."""
        remaining = self._open_until - self._clock()
        return math.ceil(remaining) if remaining > 0 else None

    def record_failure(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold:
            self._open_until = self._clock() + self._open_seconds
            CIRCUIT_OPEN.labels(self._upstream).set(1)

    def record_success(self) -> bool:
        """Note a response; True if the upstream had been failing (it came back)."""
        came_back = self._failures > 0
        if came_back:
            self._failures = 0
            self._open_until = 0.0
            CIRCUIT_OPEN.labels(self._upstream).set(0)
        return came_back
