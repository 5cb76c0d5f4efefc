"""The upstream exchange: one request to an upstream, through its circuit breaker and a
connection slot, waiting out an upstream's restart for a bounded time, with failures answered
as 502, 503 or 504 problems."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress

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

# Between refused connects of one request, before the circuit opens and its cool-down paces
# the tries: short, as a refused connect costs nothing and the upstream may be up any moment.
_FIRST_BACKOFF_SECONDS = 0.05
_MAX_BACKOFF_SECONDS = 0.25


class UpstreamExchange:
    """Sends proxied requests upstream: clients, connection slots and breakers per upstream,
    made once.

    The slots (one per connection the upstream's client may open) are where a request waits
    for a connection, so that the wait is the gateway's own and bounded by the pool timeout:
    a request that finds every connection busy is answered 503 with ``Retry-After`` and is
    no failure of the upstream. The client's own pool, the same size, then never makes a
    request wait (aiohttp would report that wait as a connect timeout).

    A restarting upstream refuses connections for its start-up time (seconds under load in
    Compose, where there is one of each). A request it refuses, or whose circuit is open
    because it did, waits for it up to ``upstream_restart_grace_seconds``, trying again as the
    breaker lets it, and is sent as soon as a response closes the circuit: nothing was sent
    before, so this is safe for any method. After the grace it gets its 502 or 503 as before.
    An upstream that has refused for ``upstream_restart_max_seconds`` is down, not restarting:
    requests are then answered at once (fail fast rather than hold everyone for the grace).
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
        self._restart_grace = settings.upstream_restart_grace_seconds
        self._restart_max = settings.upstream_restart_max_seconds
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
        response = await self._exchange(upstream, scope, body)
        try:
            yield response
        finally:
            await response.close()
            self._slots[upstream.name].release()

    async def _exchange(
        self, upstream: Upstream, scope: Scope, body: bytes | None
    ) -> UpstreamResponse:
        """The response, holding a connection slot; tried again while the upstream restarts."""
        breaker = self._breakers[upstream.name]
        give_up_at: float | None = None
        backoff = _FIRST_BACKOFF_SECONDS
        while True:
            try:
                with breaker.admission():
                    return await self._attempt(upstream, breaker, scope, body)
            except CircuitOpen as exc:
                refusal: CircuitOpen | UpstreamFailed = exc
                wait = exc.wait_seconds
            except UpstreamFailed as exc:
                if exc.failure is not Failure.CONNECT:
                    raise problem_for(exc.failure, upstream) from None
                refusal, wait = exc, backoff
                backoff = min(2 * backoff, _MAX_BACKOFF_SECONDS)
            now = time.monotonic()
            if give_up_at is None:
                restarting = breaker.failing_for() < self._restart_max
                give_up_at = now + (self._restart_grace if restarting else 0.0)
            if now >= give_up_at:
                raise _refused(refusal, upstream) from None
            with suppress(TimeoutError):
                async with asyncio.timeout(min(wait, give_up_at - now)):
                    await breaker.wait_until_back()

    async def _attempt(
        self, upstream: Upstream, breaker: CircuitBreaker, scope: Scope, body: bytes | None
    ) -> UpstreamResponse:
        """One try: a slot, then the request; the slot stays taken with the response."""
        slot = self._slots[upstream.name]
        await self._take(slot, upstream)
        try:
            response = await self._send(upstream, breaker, scope, body)
        except BaseException:
            slot.release()
            raise
        return response

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

    async def _send(
        self, upstream: Upstream, breaker: CircuitBreaker, scope: Scope, body: bytes | None
    ) -> UpstreamResponse:
        try:
            response = await self._clients[upstream.name].send(
                scope["method"],
                upstream_url(upstream, scope),
                upstream_headers(scope, self._trusted_proxies),
                body,
            )
        except UpstreamFailed as exc:
            UPSTREAM_FAILURES.labels(upstream.name, exc.failure.value).inc()
            _log.warning(
                "upstream_failed",
                upstream=upstream.name,
                failure=exc.failure.value,
                error=exc.error,
            )
            if exc.failure.counts_against_upstream:
                breaker.record_failure()
            raise
        if breaker.record_success():
            self._on_upstream_back(upstream)
        return response


def _refused(refusal: CircuitOpen | UpstreamFailed, upstream: Upstream) -> ProblemError:
    if isinstance(refusal, CircuitOpen):
        return UpstreamUnavailable(
            f"The {upstream.name} service is failing; try again later.",
            headers={"Retry-After": str(refusal.retry_after)},
        )
    return problem_for(refusal.failure, upstream)


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
