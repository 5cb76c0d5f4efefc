"""Upstream HTTP clients, failure classification and per-upstream circuit breakers.

``upstream_client`` is the one place that chooses the HTTP transport (see
docs/decisions/0004-gateway-http-transport.md): swapping it changes nothing else, except
``classify_failure``, which knows how each transport reports a refused connection.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

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
    "1 while the upstream's circuit breaker is open or half-open.",
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
            limits=httpx2.Limits(
                max_connections=settings.upstream_max_connections,
                keepalive_expiry=settings.upstream_keepalive_seconds,
            ),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )
    return httpx2.AsyncClient(
        base_url=base_url,
        transport=AiohttpTransport(client=lambda: _aiohttp_session(settings), trust_env=False),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def _aiohttp_session(settings: GatewaySettings) -> aiohttp.ClientSession:
    """The aiohttp transport's session (made by the transport on its first request).

    Without aiohttp's DNS cache: each new connection resolves the name in its own request's
    task. The cache shares one lookup between concurrent requests through shielded tasks and
    futures, and when the name does not resolve (a stopped container's) while those requests
    time out, the lookup's exception can be left without a reader, which asyncio reports at
    error level ("Future exception was never retrieved"); the cache would also keep a
    restarted container's old address for ten seconds. Connections are pooled, so lookups
    are rare.
    """
    connector = aiohttp.TCPConnector(
        limit=settings.upstream_max_connections,
        keepalive_timeout=settings.upstream_keepalive_seconds,
        use_dns_cache=False,
    )
    return aiohttp.ClientSession(connector=connector)


class Failure(enum.Enum):
    """Why a proxied request got no response; each maps to one status."""

    CONNECT = "connect"  # nothing accepted the connection: 502, retried for GET/HEAD
    CONNECT_TIMEOUT = "connect_timeout"  # no connection in time: 503, not retried
    TIMEOUT = "timeout"  # no answer in time: 504
    BROKEN = "broken"  # the connection failed after the request went out: 502
    # Every connection to the upstream was busy for the whole pool timeout: 503 with
    # Retry-After. The gateway's own load, not the upstream's health.
    POOL_TIMEOUT = "pool_timeout"

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
    if isinstance(exc, httpx2.PoolTimeout):
        return Failure.POOL_TIMEOUT
    if isinstance(exc, httpx2.ConnectError) or isinstance(cause, aiohttp.ClientConnectorError):
        return Failure.CONNECT
    # A timeout, unless the aiohttp transport reports a connection error as one; httpx2's own
    # transport chains its internal timeout exception, which is no aiohttp error.
    if isinstance(exc, httpx2.TimeoutException) and (
        not isinstance(cause, aiohttp.ClientError) or isinstance(cause, TimeoutError)
    ):
        # The aiohttp transport's connect timeout would also cover waiting for a pooled
        # connection; the exchange's connection slots make sure no request ever waits there.
        return (
            Failure.CONNECT_TIMEOUT if isinstance(exc, httpx2.ConnectTimeout) else Failure.TIMEOUT
        )
    return Failure.BROKEN


class CircuitOpen(Exception):
    """The breaker refused a request; ``retry_after`` is in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"circuit open, retry after {retry_after} s")
        self.retry_after = retry_after


class CircuitBreaker:
    """Closed, open or half-open, per upstream.

    Closed: every request goes through; ``threshold`` consecutive connect failures open it.
    Open: requests are refused at once (503 with ``Retry-After``) for ``cool_down_seconds``.
    Half-open, once the cool-down has passed: ONE request at a time goes through as a trial
    while the others are still refused. The trial's response closes the circuit; its connect
    failure re-opens it for another cool-down; any other outcome (a slow answer, a broken
    connection, a cancelled request) lets the next request be the trial.

    Recovery is driven by traffic, not by a background probe: with nobody asking, nobody
    sees the circuit open, and the first request after the cool-down is the trial. So an
    upstream that is back is used again at most a cool-down (plus one round trip) later.
    """

    def __init__(
        self,
        upstream: str,
        *,
        threshold: int,
        cool_down_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstream = upstream
        self._threshold = threshold
        self._cool_down = cool_down_seconds
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None  # None: closed
        self._trial_running = False

    @contextmanager
    def admission(self) -> Iterator[None]:
        """Let one request through, or raise ``CircuitOpen``; the block is the request's
        attempt (a half-open trial ends with it, whatever its outcome)."""
        trial = self._admit()
        try:
            yield
        finally:
            if trial:
                self._trial_running = False

    def _admit(self) -> bool:
        """Whether the admitted request is the half-open trial."""
        if self._open_until is None:
            return False
        remaining = self._open_until - self._clock()
        if remaining > 0:
            raise CircuitOpen(math.ceil(remaining))
        if self._trial_running:
            raise CircuitOpen(math.ceil(self._cool_down))
        self._trial_running = True
        return True

    def record_failure(self) -> None:
        """Note a connect failure: the threshold reached, or a failed trial, (re-)opens."""
        self._failures += 1
        if self._failures >= self._threshold or self._open_until is not None:
            self._open_until = self._clock() + self._cool_down
            CIRCUIT_OPEN.labels(self._upstream).set(1)

    def record_success(self) -> bool:
        """Note a response; True if the upstream had been failing (it came back)."""
        came_back = self._failures > 0
        if came_back or self._open_until is not None:
            self._failures = 0
            self._open_until = None
            CIRCUIT_OPEN.labels(self._upstream).set(0)
        return came_back
