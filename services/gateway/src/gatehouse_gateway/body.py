"""Request and response bodies of the proxy: streamed, never parsed or held whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from starlette.datastructures import Headers
from starlette.types import Receive

from gatehouse_gateway.errors import BadRequest, PayloadTooLarge

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BodyRejected(Exception):
    """Stops the upstream upload; the reason is on the ``RequestBody``."""


class RequestBody:
    """The client's body as an async iterator over the ASGI receive channel, with a byte limit."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.too_large = False
        self.client_gone = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise BodyRejected
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                self.too_large = True
                raise BodyRejected
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


def request_body(method: str, headers: Headers, receive: Receive, limit: int) -> RequestBody | None:
    """The body to stream upstream, None when the request has none; 400/413 at once when its
    declared length is malformed or over ``limit``."""
    declared = headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise BadRequest("Content-Length is not a number.")
        if int(declared) > limit:
            raise PayloadTooLarge(limit)
        if int(declared) == 0:
            return None
    elif method in _BODYLESS_METHODS and "transfer-encoding" not in headers:
        return None
    return RequestBody(receive, limit)


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None
