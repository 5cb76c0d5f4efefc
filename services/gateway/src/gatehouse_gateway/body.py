"""Request and response bodies of the proxy.

A request body is read whole, up to the byte limit and within a time limit, before the
upstream exchange opens: a client that uploads slowly then holds nothing but its own
connection, never an upstream connection that other clients need (docs/gateway.md, "Request
and response bodies"). Bounded by the limit, this costs at most ``GATEWAY_MAX_BODY_BYTES`` of
memory per open connection. Response bodies are streamed (``proxy``): they come from an
upstream the gateway trusts to answer promptly, and may be large.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import Receive

from gatehouse_gateway.errors import BadRequest, PayloadTooLarge, RequestTimeout

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


async def read_request_body(
    method: str, headers: Headers, receive: Receive, *, limit: int, seconds: float
) -> bytes | None:
    """The whole request body, None when the request has none.

    400 when the declared length is malformed; 413 when it, or what arrives, is over
    ``limit`` (checked as the bytes arrive, so an oversized upload is cut off at the limit);
    408 when the body is not complete within ``seconds``.
    """
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
    try:
        async with asyncio.timeout(seconds):
            return await _receive_all(receive, limit)
    except TimeoutError:
        raise RequestTimeout(seconds) from None


async def _receive_all(receive: Receive, limit: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # Nobody is left to read the answer; the request goes no further.
            raise BadRequest("The client closed the request.")
        body += message.get("body", b"")
        if len(body) > limit:
            raise PayloadTooLarge(limit)
        if not message.get("more_body", False):
            return bytes(body)


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None
