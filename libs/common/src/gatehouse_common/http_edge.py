"""The bounded HTTP/1.1 edge of every service: uvicorn's httptools protocol with limits.

uvicorn bounds neither the request headers (httptools buffers an unterminated header line
without end) nor the time a client may take to send them. ``BoundedHttpToolsProtocol`` adds,
per connection and before anything reaches the app:

- a cap on the request line plus headers in bytes and on the number of headers: 431;
- a header timeout, armed when the connection opens and when a request's first byte
  arrives, disarmed when its headers are complete: 408, or a plain close when the client
  sent nothing at all (uvicorn's keep-alive timeout covers the gap between requests);
- a cap on open connections per process: the connection over the cap is answered 503 and
  closed at once, so idle connections cannot pile up.

On shutdown (SIGTERM) keep-alive ends gracefully: uvicorn closes an idle kept-alive
connection at once, so a request the client sent on it just then is lost. Here such a
connection stays open for ``SHUTDOWN_DRAIN_SECONDS``: a request that arrives meanwhile is
answered, with ``Connection: close``, and the connection closes after it; so does every
response still in progress. The listening socket is closed at once, as uvicorn does. The
app hears of it too (``gatehouse_common.draining``), to refuse work that has not started.

A response sent in one go leaves in one write (``OneWriteResponses``): uvicorn writes the
status line and headers apart from the body.

Refusals are small problem+json responses written straight to the socket, followed by a
close (after a short linger, so the client reads the answer); they are counted in
``http_edge_refusals_total``, not logged (a flood would flood the log). The limits come from
``HttpServerSettings``; see docs/security.md.
"""

from __future__ import annotations

import asyncio
import http
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

import uvicorn
from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gatehouse_common.draining import DRAINING_STATE_KEY, Draining
from gatehouse_common.problems import PROBLEM_TYPE_BASE
from gatehouse_common.settings import HttpServerSettings

HTTP_EDGE_REFUSALS = Counter(
    "http_edge_refusals_total",
    "Connections refused or closed by the HTTP edge before the app saw a request, by reason.",
    ["reason"],
)

# How long a refused connection keeps reading (and dropping) before it is closed.
_LINGER_SECONDS = 1.0
# On shutdown, how long an idle kept-alive connection stays open for a request that may be
# on its way; active clients send within it and get their answer with Connection: close.
SHUTDOWN_DRAIN_SECONDS = 0.5


@dataclass(frozen=True)
class EdgeLimits:
    """The protocol's limits (a plain value: uvicorn pickles its config for worker processes)."""

    max_header_bytes: int
    max_header_count: int
    header_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: HttpServerSettings) -> EdgeLimits:
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            max_header_count=settings.http_max_header_count,
            header_timeout_seconds=settings.http_header_timeout_seconds,
            max_connections=settings.http_max_connections,
        )


class EdgeConfig(uvicorn.Config):
    """uvicorn's config plus the edge limits, which is how the protocol receives them."""

    def __init__(self, app: Any, *, edge_limits: EdgeLimits, **options: Any) -> None:
        super().__init__(app, **options)
        self.edge_limits = edge_limits


class Refusal(Enum):
    """Why the edge answered instead of the app: (status, problem type, detail)."""

    HEADERS_TOO_LARGE = (431, "headers-too-large", "The request headers are too large.")
    TOO_MANY_HEADERS = (431, "headers-too-large", "The request has too many headers.")
    HEADER_TIMEOUT = (408, "request-timeout", "The request headers did not arrive in time.")
    TOO_MANY_CONNECTIONS = (503, "too-many-connections", "The server has too many connections.")
    MALFORMED = (400, "bad-request", "The request is not valid HTTP/1.1.")

    def __init__(self, status: int, slug: str, detail: str) -> None:
        phrase = http.HTTPStatus(status).phrase
        body = json.dumps(
            {"type": PROBLEM_TYPE_BASE + slug, "title": phrase, "status": status, "detail": detail}
        ).encode()
        retry = b"retry-after: 1\r\n" if status == 503 else b""
        self.status_line = f"HTTP/1.1 {status} {phrase}\r\n".encode()
        self.tail = (
            b"content-type: application/problem+json\r\n"
            b"x-content-type-options: nosniff\r\n"
            b"cache-control: no-store\r\n"
            + retry
            + b"content-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + body
        )

    def response(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        """The whole response; ``default_headers`` is uvicorn's (the Date header)."""
        own = b"".join(name + b": " + value + b"\r\n" for name, value in default_headers)
        return self.status_line + own + self.tail


class OneWriteResponses(asyncio.Transport):
    """The connection as a request's cycle sees it: the first write of a response (its status
    line and headers) is held until the next write (its body) or the end of the event loop's
    turn, so that a response sent in one go, as most are, leaves in one write.

    uvicorn writes the headers the moment the app starts its response and the body when it
    sends it: two system calls, two segments, and two wake-ups of the reader, for every
    response. Holding the first write until the loop's turn ends delays nothing that could
    have gone out sooner: the app is still running its step, and a streamed body's later
    writes pass straight through.
    """

    __slots__ = ("_first", "_flush", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        # The first write while it is held, with the call that writes it at the turn's end;
        # both None before it and after it (everything after the first write passes through).
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None
        self._first = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if self._first:
            self._first = False
            self._held = data
            self._flush = self._loop.call_soon(self.flush)
        elif self._held is not None:
            held = self._release()
            self._transport.write(held + data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write what is held now (before the protocol writes or closes on its own)."""
        if self._held is not None:
            held = self._release()
            if not self._transport.is_closing():
                self._transport.write(held)

    def _release(self) -> bytes:
        held, self._held = self._held or b"", None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        return held

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, time and connection limits (module docstring).

    Header bytes are counted twice: exactly, from the parser's callbacks, for headers that
    are complete; and per socket read while a request's headers are incomplete, which is what
    stops a header line that never ends. The read that carries a request's first byte counts
    whole (it may also hold the end of a pipelined predecessor: an over-count, never an
    under-count), so a connection never holds more than the limit between reads.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, EdgeConfig):
            raise TypeError("BoundedHttpToolsProtocol needs an EdgeConfig")
        super().__init__(config, server_state, app_state, _loop)
        self._limits = config.edge_limits
        self._refused = False
        # Between the start of a request (or of the connection) and the end of its headers.
        self._reading_headers = True
        self._request_started = False
        self._received_bytes = 0
        self._read_bytes = 0  # of the read being parsed
        self._header_bytes = 0
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._draining = False

    # asyncio protocol interface
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            self._refuse(Refusal.TOO_MANY_CONNECTIONS)
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._read_bytes = len(data)
        if self._reading_headers:
            self._received_bytes += len(data)
        super().data_received(data)
        if (
            self._reading_headers
            and not self._refused
            and self._received_bytes > self._limits.max_header_bytes
        ):
            self._refuse(Refusal.HEADERS_TOO_LARGE)

    def shutdown(self) -> None:
        """Called by the server when shutdown begins (see the module docstring)."""
        self._draining = True
        draining = self.app_state.get(DRAINING_STATE_KEY)
        if isinstance(draining, Draining):
            draining.begin()
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(SHUTDOWN_DRAIN_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a request the parser rejects; ours is problem+json too.
        if not self._refused:
            self._refuse(Refusal.MALFORMED)

    # httptools parser callbacks
    def on_message_begin(self) -> None:
        if self._refused:
            return
        self._reading_headers = True
        self._request_started = True
        self._received_bytes = self._read_bytes
        self._header_bytes = self._header_count = 0
        if self._header_timer is None:
            self._arm_header_timer()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._header_bytes += len(url)
        if self._header_bytes > self._limits.max_header_bytes:
            self._refuse(Refusal.HEADERS_TOO_LARGE)
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_count > self._limits.max_header_count:
            self._refuse(Refusal.TOO_MANY_HEADERS)
        elif self._header_bytes > self._limits.max_header_bytes:
            self._refuse(Refusal.HEADERS_TOO_LARGE)
        else:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._reading_headers = False
        self._request_started = False
        self._disarm_header_timer()
        super().on_headers_complete()
        self.cycle.transport = OneWriteResponses(self.transport, self.loop)
        if self._draining:
            self.cycle.keep_alive = False  # answered with Connection: close, then closed

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    # Limits
    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            self._limits.header_timeout_seconds, self._header_timeout
        )

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._refused or self.transport.is_closing():
            return
        if self._request_started:
            self._refuse(Refusal.HEADER_TIMEOUT)
        else:
            # Nothing sent at all: there is no request to answer.
            HTTP_EDGE_REFUSALS.labels("idle_timeout").inc()
            self._refused = True
            self.transport.close()

    def _refuse(self, refusal: Refusal) -> None:
        """Answer (unless a response is already being written) and close the connection."""
        HTTP_EDGE_REFUSALS.labels(refusal.name.lower()).inc()
        self._refused = True
        self._disarm_header_timer()
        self._unset_keepalive_if_required()
        # At the end of this turn, after what responses hold until then (OneWriteResponses).
        self.loop.call_soon(self._answer_refusal, refusal)

    def _answer_refusal(self, refusal: Refusal) -> None:
        if self.transport.is_closing():
            return
        # A pipelined request refused while the previous response is still being written:
        # anything written now would corrupt that response, so the connection just closes.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(refusal.response(self.server_state.default_headers))
        # Closing with unread request bytes makes the kernel reset the connection, and the
        # reset can overtake the answer. So: stop sending, drop what still arrives for a
        # moment (data_received ignores it), then close; a client that closes first ends it.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(_LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
