"""The reverse proxy: token validation at the edge, then one upstream exchange.

The request body is read whole (bounded in size and time) before the exchange opens; the
response body is streamed back chunk by chunk and never parsed or held whole (``body``);
headers follow the proxy's header policy (``headers``); the upstream round trip, with its
connection slots, retry and circuit breaker, is ``exchange``. Errors are raised as ``ProblemError``
before the response starts and answered as problem+json by the app's exception handlers.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from gatehouse_common.authentication import REVOKED_LOGIN, InvalidAccessToken, NotAuthenticated
from gatehouse_common.logging import bind_log_context, get_logger, scope_state
from gatehouse_common.revocation import RevocationSet
from gatehouse_common.tokens import AccessTokenVerifier, InvalidTokenError
from gatehouse_gateway.body import content_length, read_request_body
from gatehouse_gateway.errors import UpstreamUnavailable
from gatehouse_gateway.exchange import UpstreamExchange
from gatehouse_gateway.headers import InternalOrigins, response_headers
from gatehouse_gateway.routing import RouteTable, Upstream
from gatehouse_gateway.upstream import UpstreamFailed

_log = get_logger(__name__)


class Proxy:
    """Proxies one request: made once by the lifespan from the route table, the token
    verifier, the revocation set and the upstream exchange."""

    def __init__(  # noqa: PLR0913 - keyword-only collaborators, built once by the lifespan
        self,
        table: RouteTable,
        *,
        verifier: AccessTokenVerifier,
        revocations: RevocationSet,
        exchange: UpstreamExchange,
        max_body_bytes: int,
        body_timeout_seconds: float,
    ) -> None:
        self.table = table
        self._verifier = verifier
        self._revocations = revocations
        self._exchange = exchange
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout_seconds
        self._internal_origins = InternalOrigins(upstream.base_url for upstream in table.upstreams)

    async def handle(self, upstream: Upstream, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if not self.table.is_public(method, path):
            # The token is checked here; its scopes by the upstream, which owns the route.
            await self._authenticate(scope, headers)

        body = await read_request_body(
            method, headers, receive, limit=self._max_body, seconds=self._body_timeout
        )
        async with self._exchange.open(upstream, scope, body) as response:
            answer_headers = response_headers(response.headers, self._internal_origins)
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": answer_headers,
                    }
                )
                # With a Content-Length the chunk that completes the body goes out as the
                # last message: a small response is one body message instead of two, and
                # each message passes through every middleware's send wrapper (see
                # docs/performance.md). Nothing is held back, so a slow stream is not delayed.
                remaining = content_length(answer_headers)
                more_body = True
                async for chunk in response.chunks:
                    if remaining is not None:
                        remaining -= len(chunk)
                        more_body = remaining > 0
                    await send(
                        {"type": "http.response.body", "body": chunk, "more_body": more_body}
                    )
                if more_body:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            except (UpstreamFailed, OSError) as exc:
                # The status line is out: returning without the last body message makes the
                # server drop the connection, so the client sees a truncated response, not a
                # complete-looking one.
                error = exc.error if isinstance(exc, UpstreamFailed) else type(exc).__name__
                _log.warning("proxy_stream_aborted", upstream=upstream.name, error=error)

    async def _authenticate(self, scope: Scope, headers: Headers) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticated
        try:
            principal = await self._verifier.verify(token)
        except InvalidTokenError as exc:
            if not self._verifier.jwks.loaded:
                # Not the token's fault: auth's keys have never been fetched.
                raise UpstreamUnavailable(
                    "Access tokens cannot be verified yet: auth's keys are not loaded.",
                    headers={"Retry-After": "5"},
                ) from None
            _log.info("token_rejected", reason=str(exc))
            raise InvalidAccessToken(str(exc)) from None
        # After the signature, so only a genuine token's claims are looked up: two dictionary
        # lookups on the hot path (docs/decisions/0010-revocation-at-the-edge.md).
        if self._revocations.is_revoked(
            principal.subject, principal.session_id, principal.issued_at
        ):
            _log.info("token_rejected", reason=REVOKED_LOGIN)
            raise InvalidAccessToken(REVOKED_LOGIN)
        scope_state(scope)["user_id"] = principal.subject
        bind_log_context(user_id=principal.subject)
