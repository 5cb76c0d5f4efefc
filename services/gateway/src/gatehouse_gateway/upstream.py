"""Upstream HTTP clients, failure classification and per-upstream circuit breakers.

``upstream_client`` is the one place that chooses the HTTP transport (see
docs/decisions/0004-gateway-http-transport.md): both clients answer the proxy's one question,
``send``, with an ``UpstreamResponse`` or an ``UpstreamFailed`` naming what went wrong.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx2
from prometheus_client import Counter, Gauge

from gatehouse_gateway.routing import RouteTable
from gatehouse_gateway.settings import GatewaySettings

Header = tuple[bytes, bytes]

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


class UpstreamFailed(Exception):
    """No response, or its body broke off; ``error`` names the transport's own exception."""

    def __init__(self, failure: Failure, error: BaseException) -> None:
        super().__init__(f"{failure.value}: {type(error).__name__}")
        self.failure = failure
        self.error = type(error).__name__


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """An upstream's status and raw headers; its body, not yet read, as raw chunks (never
    decompressed), which raise ``UpstreamFailed`` if the connection breaks. ``close`` gives
    the connection back (or drops it, if the body was not read to the end)."""

    status: int
    headers: list[Header]
    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]


class UpstreamClient(Protocol):
    """One upstream's client, shared by every request to it."""

    async def send(
        self, method: str, url: str, headers: list[Header], body: bytes | None
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


@asynccontextmanager
async def upstream_clients(
    table: RouteTable, settings: GatewaySettings
) -> AsyncIterator[Mapping[str, UpstreamClient]]:
    """One client per upstream, by name, for the app's lifetime; closed at shutdown."""
    async with AsyncExitStack() as stack:
        clients: dict[str, UpstreamClient] = {}
        for upstream in table.upstreams:
            client = upstream_client(settings)
            stack.push_async_callback(client.aclose)
            clients[upstream.name] = client
        yield clients


def upstream_client(settings: GatewaySettings) -> UpstreamClient:
    """The client for one upstream (made in a running event loop)."""
    if settings.upstream_transport == "httpx2":
        # httpx2's own transport: slower (docs/performance.md), kept for comparison and as
        # the fallback should aiohttp misbehave.
        return Httpx2Client(settings)
    return AiohttpClient(settings)


class AiohttpClient:
    """aiohttp itself, without an adapter: the cheapest client measured (decision 0004).

    Without aiohttp's DNS cache: each new connection resolves the name in its own request's
    task. The cache shares one lookup between concurrent requests through shielded tasks and
    futures, and when the name does not resolve (a stopped container's) while those requests
    time out, the lookup's exception can be left without a reader, which asyncio reports at
    error level ("Future exception was never retrieved"); the cache would also keep a
    restarted container's old address for ten seconds. Connections are pooled, so lookups
    are rare.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        connector = aiohttp.TCPConnector(
            limit=settings.upstream_max_connections,
            keepalive_timeout=settings.upstream_keepalive_seconds,
            use_dns_cache=False,
        )
        # No total timeout. The connect timeout also covers the wait for a pooled connection,
        # which the exchange's connection slots make sure no request ever has.
        timeout = aiohttp.ClientTimeout(
            connect=settings.upstream_pool_timeout_seconds,
            sock_connect=settings.upstream_connect_timeout_seconds,
            sock_read=settings.upstream_read_timeout_seconds,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False, trust_env=False
        )

    async def send(
        self, method: str, url: str, headers: list[Header], body: bytes | None
    ) -> UpstreamResponse:
        with _failures_of(_AIOHTTP_ERRORS, aiohttp_failure):
            response = await self._session.request(
                method,
                url,
                headers=[
                    (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
                ],
                data=body,
                allow_redirects=False,
            )

        async def release() -> None:
            response.release()

        chunks = _chunks(response.content.iter_any(), _AIOHTTP_ERRORS, aiohttp_failure)
        return UpstreamResponse(response.status, list(response.raw_headers), chunks, release)

    async def aclose(self) -> None:
        await self._session.close()


_AIOHTTP_ERRORS = (aiohttp.ClientError, TimeoutError)


def aiohttp_failure(exc: BaseException) -> Failure:
    """Sort an aiohttp error into what happened."""
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, or the name does not resolve
        return Failure.CONNECT
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Failure.CONNECT_TIMEOUT
    if isinstance(exc, TimeoutError):  # the read timeout (aiohttp's SocketTimeoutError)
        return Failure.TIMEOUT
    return Failure.BROKEN  # the server hung up, a broken body, a reset


class Httpx2Client:
    """httpx2 with its own transport."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._client = httpx2.AsyncClient(
            limits=httpx2.Limits(
                max_connections=settings.upstream_max_connections,
                keepalive_expiry=settings.upstream_keepalive_seconds,
            ),
            timeout=httpx2.Timeout(
                connect=settings.upstream_connect_timeout_seconds,
                read=settings.upstream_read_timeout_seconds,
                write=settings.upstream_write_timeout_seconds,
                pool=settings.upstream_pool_timeout_seconds,
            ),
            follow_redirects=False,
            trust_env=False,
        )

    async def send(
        self, method: str, url: str, headers: list[Header], body: bytes | None
    ) -> UpstreamResponse:
        request = httpx2.Request(method, url, headers=headers, content=body or b"")
        with _failures_of(_HTTPX2_ERRORS, httpx2_failure):
            response = await self._client.send(request, stream=True)
        chunks = _chunks(response.aiter_raw(), _HTTPX2_ERRORS, httpx2_failure)
        return UpstreamResponse(response.status_code, response.headers.raw, chunks, response.aclose)

    async def aclose(self) -> None:
        await self._client.aclose()


_HTTPX2_ERRORS = (httpx2.TransportError,)


def httpx2_failure(exc: BaseException) -> Failure:
    """Sort an error of httpx2's own transport into what happened."""
    if isinstance(exc, httpx2.PoolTimeout):
        return Failure.POOL_TIMEOUT
    if isinstance(exc, httpx2.ConnectError):
        return Failure.CONNECT
    if isinstance(exc, httpx2.ConnectTimeout):
        return Failure.CONNECT_TIMEOUT
    if isinstance(exc, httpx2.TimeoutException):
        return Failure.TIMEOUT
    return Failure.BROKEN


Errors = tuple[type[BaseException], ...]


@contextmanager
def _failures_of(errors: Errors, classify: Callable[[BaseException], Failure]) -> Iterator[None]:
    """The client's ``errors`` raised in the block, as ``UpstreamFailed``."""
    try:
        yield
    except errors as exc:
        raise UpstreamFailed(classify(exc), exc) from exc


async def _chunks(
    body: AsyncIterator[bytes], errors: Errors, classify: Callable[[BaseException], Failure]
) -> AsyncIterator[bytes]:
    with _failures_of(errors, classify):
        async for chunk in body:
            yield chunk


class CircuitOpen(Exception):
    """The breaker refused a request: the next trial may go in ``wait_seconds``;
    ``retry_after`` is that in whole seconds, for the client."""

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self.retry_after = math.ceil(wait_seconds)
        super().__init__(f"circuit open, retry after {self.retry_after} s")


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
    Requests that wait for the upstream (the exchange's restart grace) are woken by the
    response that closes the circuit (``wait_until_back``).
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
        self._failing_since: float | None = None  # the first of the failures in a row
        self._open_until: float | None = None  # None: closed
        self._trial_running = False
        self._back = asyncio.Event()  # set, then replaced, by the response that ends failures

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
            raise CircuitOpen(remaining)
        if self._trial_running:
            raise CircuitOpen(self._cool_down)
        self._trial_running = True
        return True

    def failing_for(self) -> float:
        """Seconds since the first of the current connect failures in a row; 0 if none."""
        return 0.0 if self._failing_since is None else self._clock() - self._failing_since

    async def wait_until_back(self) -> None:
        """Return once a response ends the current failures."""
        await self._back.wait()

    def record_failure(self) -> None:
        """Note a connect failure: the threshold reached, or a failed trial, (re-)opens."""
        if self._failing_since is None:
            self._failing_since = self._clock()
        self._failures += 1
        if self._failures >= self._threshold or self._open_until is not None:
            self._open_until = self._clock() + self._cool_down
            CIRCUIT_OPEN.labels(self._upstream).set(1)

    def record_success(self) -> bool:
        """Note a response; True if the upstream had been failing (it came back)."""
        came_back = self._failures > 0
        if came_back or self._open_until is not None:
            self._failures = 0
            self._failing_since = None
            self._open_until = None
            CIRCUIT_OPEN.labels(self._upstream).set(0)
            self._back.set()
            self._back = asyncio.Event()
        return came_back
