"""The outermost middleware: request id, security headers, metrics, access log, last-resort 500."""

from __future__ import annotations

import json
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatehouse_common.logging import get_logger, scope_state
from gatehouse_common.metrics import record_request, route_template
from gatehouse_common.request_id import (
    REQUEST_ID_HEADER,
    accept_or_generate,
    bind_request_id,
)
from gatehouse_common.security_headers import with_security_headers

_log = get_logger("gatehouse.access")
_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_NAME:
            return str(value.decode("latin-1"))
    return None


class RequestContextMiddleware:
    """Pure ASGI middleware (no ``BaseHTTPMiddleware``: it would buffer and break streaming),
    and the only one of every request: one ``send`` wrapper does all of this.

    - accepts a well-formed ``X-Request-ID`` or generates one, echoes it on the response and
      binds it to every log line of the request;
    - applies the security headers of ``gatehouse_common.security_headers`` to every response;
    - counts the request and observes its duration by route template (``metrics``): the
      route is read from the scope after the app returns, when routing has matched it;
    - writes one access-log line per request with status, duration and the user id that the
      authentication dependency stored in the request state;
    - answers an unhandled exception with a problem document that reveals nothing internal.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        # Read now: an inner layer may rewrite the scope (HEAD answered as GET, say).
        method, path = scope["method"], scope["path"]
        request_id = accept_or_generate(_incoming_request_id(scope))
        request_id_value = request_id.encode()
        bind_request_id(request_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        state = scope_state(scope)
        state["request_id"] = request_id
        status = 500
        response_started = False

        async def send_in_context(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = with_security_headers(message["headers"], request_id_value)
            await send(message)

        try:
            await self.app(scope, receive, send_in_context)
        except Exception:  # noqa: BLE001 - the last line of defence answers every error
            _log.exception("unhandled_exception")
            if not response_started:
                await _send_internal_error(send, request_id)
            status = 500
        finally:
            seconds = time.perf_counter() - started
            # The route is known only now, after routing matched it.
            record_request(method, route_template(scope), status, seconds)
            fields: dict[str, Any] = {
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            }
            if (user_id := state.get("user_id")) is not None:
                fields["user_id"] = user_id
            _log.info("request", **fields)


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "detail": "The server could not complete the request.",
            "request_id": request_id,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": with_security_headers(
                [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
                request_id.encode(),
            ),
        }
    )
    await send({"type": "http.response.body", "body": body})
