"""The streaming reverse proxy: authentication at the edge, then one upstream round trip.

It is a Starlette route rather than an endpoint, so it sees the raw ASGI channels: request and
response bodies pass through chunk by chunk and are never parsed or held whole. Errors are
raised as ``ProblemError`` before the response starts and answered as problem+json by the
app's exception handlers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from ipaddress import ip_address
from typing import Any

import httpx2
from opentelemetry import propagate
from starlette.datastructures import Headers, URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from gatehouse_common.authentication import (
    InsufficientScope,
    InvalidAccessToken,
    NotAuthenticated,
)
from gatehouse_common.logging import bind_log_context, get_logger, scope_state
from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError
from gatehouse_common.request_id import REQUEST_ID_HEADER, current_request_id
from gatehouse_common.tokens import AccessTokenVerifier, InvalidTokenError, Principal
from gatehouse_gateway.routing import RouteTable, Upstream, has_dot_segment
from gatehouse_gateway.settings import GatewaySettings
from gatehouse_gateway.upstream import (
    UPSTREAM_FAILURES,
    CircuitBreaker,
    Failure,
    classify_failure,
    upstream_client,
)

_log = get_logger(__name__)

# RFC 9110 §7.6.1 plus the de-facto ones; headers named in `Connection` are removed too.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        # Answered by the gateway's own server; passed on, it would make the upstream
        # client wait for a second 100 Continue.
        b"expect",
    }
)
# Set by the gateway itself; a client's copy is dropped (or, from a trusted proxy, extended).
_FORWARDING = frozenset({b"forwarded", b"x-real-ip", b"x-forwarded-for", b"x-forwarded-proto"})
_FORWARDING_PREFIX = b"x-forwarded-"
# Headers some stacks read as an already authenticated identity. Upstreams trust none of them,
# and the gateway drops them so that no component behind it ever can.
_IDENTITY_PREFIXES = (
    b"x-user",
    b"x-auth",
    b"x-remote-",
    b"remote-user",
    b"x-principal",
    b"x-email",
    b"x-scope",
    b"x-jwt",
    b"x-identity",
    b"x-client-cert",
    b"x-ssl-client",
    b"x-consumer",
    b"x-userinfo",
    b"x-ms-client-principal",
    b"x-amzn-oidc",
    b"x-goog-authenticated",
)
# The ASGI server writes its own Date, so an upstream's would be a duplicate; and no answer
# names the server software (the shared middleware would drop it too, see security_headers).
_SERVER_SET_RESPONSE_HEADERS = frozenset({b"date", b"server"})
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_RETRIED_METHODS = frozenset({"GET", "HEAD"})


class BadGateway(ProblemError):
    status = 502
    title = "Bad Gateway"
    problem_type = f"{PROBLEM_TYPE_BASE}upstream-unreachable"


class UpstreamUnavailable(ProblemError):
    status = 503
    title = "Service Unavailable"
    problem_type = f"{PROBLEM_TYPE_BASE}upstream-unavailable"


class GatewayTimeout(ProblemError):
    status = 504
    title = "Gateway Timeout"
    problem_type = f"{PROBLEM_TYPE_BASE}upstream-timeout"


class PayloadTooLarge(ProblemError):
    status = 413
    title = "Content Too Large"
    problem_type = f"{PROBLEM_TYPE_BASE}payload-too-large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")


class BadRequest(ProblemError):
    status = 400
    title = "Bad Request"
    problem_type = f"{PROBLEM_TYPE_BASE}bad-request"


class _BodyRejected(Exception):
    """Stops the upstream upload; the reason is on the ``RequestBody``."""


class RequestBody:
    """The client's body as an async iterator over the ASGI receive channel, with a byte limit."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self.too_large = False
        self.client_gone = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise _BodyRejected
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self._limit:
                self.too_large = True
                raise _BodyRejected
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class Proxy:
    """Everything a proxied request needs, made once: route table, clients, breakers, verifier."""

    def __init__(
        self,
        table: RouteTable,
        settings: GatewaySettings,
    ) -> None:
        self.table = table
        self._settings = settings
        # Called when an upstream answers again after failing (the API docs refetch it).
        self.on_upstream_back: Callable[[Upstream], None] = lambda _: None
        self._trusted_proxies = tuple(settings.trusted_proxies)
        self._max_body = settings.max_body_bytes
        self._clients: dict[str, httpx2.AsyncClient] = {}
        self._breakers = {
            upstream.name: CircuitBreaker(
                upstream.name,
                threshold=settings.circuit_failure_threshold,
                open_seconds=settings.circuit_open_seconds,
            )
            for upstream in table.upstreams
        }
        self.verifier: AccessTokenVerifier | None = None

    @asynccontextmanager
    async def running(self, verifier: AccessTokenVerifier) -> AsyncIterator[None]:
        """Open one client per upstream for the app's lifetime; close them all at shutdown."""
        async with AsyncExitStack() as stack:
            for upstream in self.table.upstreams:
                client = upstream_client(upstream.base_url, self._settings)
                self._clients[upstream.name] = await stack.enter_async_context(client)
            self.verifier = verifier
            try:
                yield
            finally:
                self.verifier = None
                self._clients.clear()

    def client(self, upstream: Upstream) -> httpx2.AsyncClient:
        return self._clients[upstream.name]

    async def handle(self, upstream: Upstream, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if not self.table.is_public(method, path):
            principal = await self._authenticate(scope, headers)
            required = self.table.required_scope(method, path)
            if required is not None and required not in principal.scopes:
                raise InsufficientScope(required)

        body = self._request_body(method, headers, receive)
        response = await self._round_trip(upstream, scope, body)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": list(_response_headers(response.headers.raw)),
                }
            )
            # With a Content-Length the chunk that completes the body goes out as the last
            # message: a small response is one body message instead of two, and each message
            # passes through every middleware's send wrapper (see docs/performance.md).
            # Nothing is held back, so a slow stream is not delayed.
            remaining = _content_length(response.headers.raw)
            more_body = True
            async for chunk in response.aiter_raw():
                if remaining is not None:
                    remaining -= len(chunk)
                    more_body = remaining > 0
                await send({"type": "http.response.body", "body": chunk, "more_body": more_body})
            if more_body:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (httpx2.TransportError, OSError) as exc:
            # The status line is out: returning without the last body message makes the
            # server drop the connection, so the client sees a truncated response, not a
            # complete-looking one.
            _log.warning("proxy_stream_aborted", upstream=upstream.name, error=type(exc).__name__)
        finally:
            await response.aclose()

    async def _authenticate(self, scope: Scope, headers: Headers) -> Principal:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticated
        if self.verifier is None:
            raise UpstreamUnavailable("The gateway is starting.", headers={"Retry-After": "1"})
        try:
            principal = await self.verifier.verify(token)
        except InvalidTokenError as exc:
            if not self.verifier.jwks.loaded:
                # Not the token's fault: auth's keys have never been fetched.
                raise UpstreamUnavailable(
                    "Access tokens cannot be verified yet: auth's keys are not loaded.",
                    headers={"Retry-After": "5"},
                ) from None
            _log.info("token_rejected", reason=str(exc))
            raise InvalidAccessToken(str(exc)) from None
        scope_state(scope)["user_id"] = principal.subject
        bind_log_context(user_id=principal.subject)
        return principal

    def _request_body(self, method: str, headers: Headers, receive: Receive) -> RequestBody | None:
        declared = headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise BadRequest("Content-Length is not a number.")
            if int(declared) > self._max_body:
                raise PayloadTooLarge(self._max_body)
            if int(declared) == 0:
                return None
        elif method in _BODYLESS_METHODS and "transfer-encoding" not in headers:
            return None
        return RequestBody(receive, self._max_body)

    async def _round_trip(
        self, upstream: Upstream, scope: Scope, body: RequestBody | None
    ) -> httpx2.Response:
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
                _upstream_url(upstream, scope),
                headers=self._upstream_headers(scope),
                content=body if body is not None else b"",
            )
            try:
                response = await self.client(upstream).send(request, stream=True)
            except (httpx2.TransportError, _BodyRejected) as exc:
                # The aiohttp transport wraps the body iterator's exception in a TransportError;
                # httpx2's own transport lets it through as it is.
                if body is not None and body.too_large:
                    raise PayloadTooLarge(self._max_body) from None
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
                self.on_upstream_back(upstream)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _upstream_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        raw: Iterable[tuple[bytes, bytes]] = scope["headers"]
        named_by_connection = _connection_tokens(raw)
        client = scope.get("client")
        peer = client[0] if client else None
        trusted = self._is_trusted(peer)
        kept: list[tuple[bytes, bytes]] = []
        forwarded_for: list[bytes] = []
        forwarded_proto = forwarded_host = host = None
        for name, value in raw:
            if name in HOP_BY_HOP or name in named_by_connection:
                continue
            if name == b"host":
                host = value
            elif name in _FORWARDING or name.startswith(_FORWARDING_PREFIX):
                if trusted:
                    if name == b"x-forwarded-for":
                        forwarded_for.append(value)
                    elif name == b"x-forwarded-proto":
                        forwarded_proto = value
                    elif name == b"x-forwarded-host":
                        forwarded_host = value
            elif name != REQUEST_ID_HEADER.encode() and not name.startswith(_IDENTITY_PREFIXES):
                kept.append((name, value))

        if peer:
            forwarded_for.append(peer.encode())
        if forwarded_for:
            kept.append((b"x-forwarded-for", b", ".join(forwarded_for)))
        kept.append((b"x-forwarded-proto", forwarded_proto or scope["scheme"].encode()))
        if forwarded_host or host:
            kept.append((b"x-forwarded-host", forwarded_host or host or b""))
        kept.append((REQUEST_ID_HEADER.encode(), current_request_id().encode()))
        return _with_current_trace(kept)

    def _is_trusted(self, peer: str | None) -> bool:
        if not peer or not self._trusted_proxies:
            return False
        try:
            address = ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted_proxies)


def _upstream_url(upstream: Upstream, scope: Scope) -> str:
    # raw_path keeps the client's percent-encoding (an encoded '/' in an id stays encoded);
    # some ASGI servers include the query in it, so cut it off and add the query explicitly.
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    query: bytes = scope.get("query_string", b"")
    return upstream.base_url + path + ("?" + query.decode("latin-1") if query else "")


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    return frozenset(
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
        if token.strip()
    )


def _response_headers(raw: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[bytes, bytes]]:
    headers = [(name.lower(), value) for name, value in raw]
    named_by_connection = _connection_tokens(headers)
    for name, value in headers:
        if (
            name not in HOP_BY_HOP
            and name not in named_by_connection
            and name not in _SERVER_SET_RESPONSE_HEADERS
        ):
            yield name, value


def _with_current_trace(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Replace the client's ``traceparent`` with the gateway's span when tracing is on.

    With tracing off there is no current span, nothing is injected, and the client's
    ``traceparent`` goes upstream unchanged.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        return headers
    kept = [(name, value) for name, value in headers if name not in _TRACE_HEADERS]
    kept.extend((name.encode(), value.encode()) for name, value in carrier.items())
    return kept


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


class ProxyRoute(BaseRoute):
    """Matches every path under one upstream's prefix that has no dot segment."""

    def __init__(self, proxy: Proxy, upstream: Upstream) -> None:
        self._proxy = proxy
        self._upstream = upstream
        # Read by the metrics middleware as the route label: one series per upstream.
        self.path = upstream.prefix + "/{path:path}"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and self._upstream.serves(scope["path"])
            and not has_dot_segment(scope["path"])
        ):
            return Match.FULL, {"route": self}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy.handle(self._upstream, scope, receive, send)
