"""The server's shutdown as the app sees it: the moment to refuse work that has not started.

On SIGTERM the server stops accepting and waits for the requests in flight before the app's
lifespan ends (``timeout_graceful_shutdown``). A request still queued for a scarce resource
(auth's password-hashing slots) would make that wait, and so the restart, seconds longer,
and the client behind it is better served by a 503 with ``Retry-After`` that another
replica, or this one once restarted, answers. The edge (``http_edge``) calls ``begin`` on the
app's ``Draining`` when the server's shutdown begins; a lifespan registers with ``on_begin``
what to refuse from then on.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

# Where the app's ``Draining`` is in the lifespan state, which the server hands its connections.
DRAINING_STATE_KEY = "gatehouse.draining"


class Draining:
    """Callbacks to run once, on the loop, when the server's shutdown begins."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self.begun = False

    def on_begin(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def begin(self) -> None:
        if self.begun:
            return
        self.begun = True
        for callback in self._callbacks:
            callback()


def draining_of(app: FastAPI) -> Draining:
    """The ``Draining`` of a running app (``create_app`` makes one per lifespan)."""
    draining: Draining = app.state.draining
    return draining
