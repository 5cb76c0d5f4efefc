"""A real server in a test: an ASGI app behind the services' own HTTP edge, on a loopback port."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.types import ASGIApp

from gatehouse_common.server import server_config
from gatehouse_common.settings import HttpServerSettings
from gatehouse_testing.network import free_port


class ServerThread:
    """``app`` served as in production (``gatehouse_common.server``), in a thread with its own
    event loop, so every request crosses a real TCP connection; stoppable and restartable.

    ``settings`` gives the edge limits (the defaults unless a test tightens them).
    """

    def __init__(
        self,
        app: ASGIApp,
        port: int | None = None,
        *,
        settings: HttpServerSettings | None = None,
    ) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings or HttpServerSettings()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = server_config(
            self.app, self.settings, host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)

    def begin_shutdown(self) -> None:
        """What SIGTERM does: the server begins its graceful shutdown (``stop`` waits for it)."""
        if self._server is not None:
            self._server.should_exit = True

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
