"""The upstream exchange: one request to an upstream, through its circuit breaker and a
connection slot, retried once when the connection was refused, with failures answered as 502,
503 or 504 problems."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

from starlette.types import Scope

from gatehouse_common.logging import get_logger
from gatehouse_common.problems import ProblemError
from gatehouse_gateway.errors import BadGateway, GatewayTimeout, UpstreamUnavailable
from gatehouse_gateway.headers import upstream_headers
from gatehouse_gateway.routing import RouteTable, Upstream
from gatehouse_gateway.settings import GatewaySettings
from gatehouse_gateway.upstream import (
    UPSTREAM_FAILURES,
    CircuitBreaker,
    CircuitOpen,
    Failure,
    UpstreamClient,
    UpstreamFailed,
    UpstreamResponse,
)

_log = get_logger(__name__)

_RETRIED_METHODS = frozenset({"GET", "HEAD"})


class UpstreamExchange:
    """Sends proxied requests upstream: clients, connection slots and breakers per upstream,
    made once.

    The slots (one per connection the upstream's client may open) are where a request waits
    for a connection, so that the wait is the gateway's own and bounded by the pool timeout:
    a request that finds every connection busy is answered 503 with ``Retry-After`` and is
    no failure of the upstream. The client's own pool, the same size, then never makes a
    request wait (aiohttp would report that wait as a connect timeout).
    """

    def __init__(
        self,
        table: RouteTable,
        settings: GatewaySettings,
        *,
        clients: Mapping[str, UpstreamClient],
        on_upstream_back: Callable[[Upstream], None],
    ) -> None:
        self._clients = clients
        # Called when an upstream answers again after failing (the API docs refetch it).
        self._on_upstream_back = on_upstream_back
        self._trusted_proxies = tuple(settings.trusted_proxies)
        self._pool_timeout = settings.upstream_pool_timeout_seconds
        self._slots = {
            upstream.name: asyncio.Semaphore(settings.upstream_max_connections)
            for upstream in table.upstreams
        }
        self._breakers = {
            upstream.name: CircuitBreaker(
                upstream.name,
                threshold=settings.circuit_failure_threshold,
                cool_down_seconds=settings.circuit_open_seconds,
            )
            for upstream in table.upstreams
        }

    @asynccontextmanager
    async def open(
        self, upstream: Upstream, scope: Scope, body: bytes | None
    ) -> AsyncIterator[UpstreamResponse]:
        """The upstream's response, its body not yet read, for the block."""
        slot = self._slots[upstream.name]
        with self._admitted(upstream):
            await self._take(slot, upstream)
            try:
                response = await self._send(upstream, scope, body)
            except BaseException:
                slot.release()
                raise
        try:
            yield response
        finally:
            await response.close()
            slot.release()

    @contextmanager
    def _admitted(self, upstream: Upstream) -> Iterator[None]:
        try:
            with self._breakers[upstream.name].admission():
                yield
        except CircuitOpen as exc:
            raise UpstreamUnavailable(
                f"The {upstream.name} service is failing; try again later.",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None

    async def _take(self, slot: asyncio.Semaphore, upstream: Upstream) -> None:
        if not slot.locked():
            # A free slot (and nobody queued before us): taken at once, without the timer.
            await slot.acquire()
            return
        try:
            async with asyncio.timeout(self._pool_timeout):
                await slot.acquire()
        except TimeoutError:
            UPSTREAM_FAILURES.labels(upstream.name, Failure.POOL_TIMEOUT.value).inc()
            raise problem_for(Failure.POOL_TIMEOUT, upstream) from None

    async def _send(self, upstream: Upstream, scope: Scope, body: bytes | None) -> UpstreamResponse:
        breaker = self._breakers[upstream.name]
        method: str = scope["method"]
        attempts = 2 if method in _RETRIED_METHODS and body is None else 1
        url = upstream_url(upstream, scope)
        headers = upstream_headers(scope, self._trusted_proxies)
        for attempt in range(1, attempts + 1):
            try:
                response = await self._clients[upstream.name].send(method, url, headers, body)
            except UpstreamFailed as exc:
                failure = exc.failure
                UPSTREAM_FAILURES.labels(upstream.name, failure.value).inc()
                _log.warning(
                    "upstream_failed",
                    upstream=upstream.name,
                    failure=failure.value,
                    attempt=attempt,
                    error=exc.error,
                )
                if failure.counts_against_upstream:
                    breaker.record_failure()
                # Only a refused connection is retried: it fails fast, and the request
                # certainly never reached the upstream.
                if failure is Failure.CONNECT and attempt < attempts:
                    continue
                raise problem_for(failure, upstream) from None
            if breaker.record_success():
                self._on_upstream_back(upstream)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


def upstream_url(upstream: Upstream, scope: Scope) -> str:
    # raw_path keeps the client's percent-encoding (an encoded '/' in an id stays encoded);
    # some ASGI servers include the query in it, so cut it off and add the query explicitly.
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    query: bytes = scope.get("query_string", b"")
    return upstream.base_url + path + ("?" + query.decode("latin-1") if query else "")


def problem_for(failure: Failure, upstream: Upstream) -> ProblemError:
    if failure is Failure.CONNECT_TIMEOUT:
        # No connection at all (a stopped container's name may not even resolve): the
        # upstream is unreachable, not slow, so 503 (the contract keeps 504 for slow answers).
        return UpstreamUnavailable(f"The {upstream.name} service could not be reached.")
    if failure is Failure.POOL_TIMEOUT:
        return UpstreamUnavailable(
            f"Every connection to the {upstream.name} service is busy; try again shortly.",
            headers={"Retry-After": "1"},
        )
    if failure is Failure.TIMEOUT:
        return GatewayTimeout(f"The {upstream.name} service did not answer in time.")
    if failure is Failure.CONNECT:
        return BadGateway(f"The {upstream.name} service could not be reached.")
    return BadGateway(f"The connection to the {upstream.name} service failed.")
