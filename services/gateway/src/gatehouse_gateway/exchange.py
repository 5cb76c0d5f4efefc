"""The upstream exchange: one request to an upstream, through its circuit breaker, retried once
when the connection was refused, with failures answered as 502, 503 or 504 problems."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx2
from starlette.types import Scope

from gatehouse_common.logging import get_logger
from gatehouse_common.problems import ProblemError
from gatehouse_gateway.body import BodyRejected, RequestBody
from gatehouse_gateway.errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    PayloadTooLarge,
    UpstreamUnavailable,
)
from gatehouse_gateway.headers import upstream_headers
from gatehouse_gateway.routing import RouteTable, Upstream
from gatehouse_gateway.settings import GatewaySettings
from gatehouse_gateway.upstream import (
    UPSTREAM_FAILURES,
    CircuitBreaker,
    Failure,
    classify_failure,
)

_log = get_logger(__name__)

_RETRIED_METHODS = frozenset({"GET", "HEAD"})


class UpstreamExchange:
    """Sends proxied requests upstream: clients and breakers per upstream, made once."""

    def __init__(
        self,
        table: RouteTable,
        settings: GatewaySettings,
        *,
        clients: Mapping[str, httpx2.AsyncClient],
        on_upstream_back: Callable[[Upstream], None],
    ) -> None:
        self._clients = clients
        # Called when an upstream answers again after failing (the API docs refetch it).
        self._on_upstream_back = on_upstream_back
        self._trusted_proxies = tuple(settings.trusted_proxies)
        self._breakers = {
            upstream.name: CircuitBreaker(
                upstream.name,
                threshold=settings.circuit_failure_threshold,
                open_seconds=settings.circuit_open_seconds,
            )
            for upstream in table.upstreams
        }

    async def send(
        self, upstream: Upstream, scope: Scope, body: RequestBody | None
    ) -> httpx2.Response:
        """The upstream's response, its body not yet read; the caller closes it."""
        breaker = self._breakers[upstream.name]
        method: str = scope["method"]
        retry_after = breaker.retry_after()
        if retry_after is not None:
            raise UpstreamUnavailable(
                f"The {upstream.name} service is failing; try again later.",
                headers={"Retry-After": str(retry_after)},
            )
        attempts = 2 if method in _RETRIED_METHODS and body is None else 1
        for attempt in range(1, attempts + 1):
            request = httpx2.Request(
                method,
                upstream_url(upstream, scope),
                headers=upstream_headers(scope, self._trusted_proxies),
                content=body if body is not None else b"",
            )
            try:
                response = await self._clients[upstream.name].send(request, stream=True)
            except (httpx2.TransportError, BodyRejected) as exc:
                # The aiohttp transport wraps the body iterator's exception in a TransportError;
                # httpx2's own transport lets it through as it is.
                if body is not None and body.too_large:
                    raise PayloadTooLarge(body.limit) from None
                if body is not None and body.client_gone:
                    raise BadRequest("The client closed the request.") from None
                if not isinstance(exc, httpx2.TransportError):
                    raise
                failure = classify_failure(exc)
                UPSTREAM_FAILURES.labels(upstream.name, failure.value).inc()
                _log.warning(
                    "upstream_failed",
                    upstream=upstream.name,
                    failure=failure.value,
                    attempt=attempt,
                    error=type(exc.__cause__ or exc).__name__,
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
    if failure is Failure.TIMEOUT:
        return GatewayTimeout(f"The {upstream.name} service did not answer in time.")
    if failure is Failure.CONNECT:
        return BadGateway(f"The {upstream.name} service could not be reached.")
    return BadGateway(f"The connection to the {upstream.name} service failed.")
