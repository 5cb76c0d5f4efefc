"""Loopback helpers for tests that start real servers."""

from __future__ import annotations

import asyncio
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TcpProxy:
    """A TCP forwarder on 127.0.0.1, in the test's event loop, to a datastore that must look
    down (``set_down``: every connection dropped, new ones refused until ``up``) or slow
    (``reply_delay_seconds``: what the datastore sends waits that long, on every connection)."""

    def __init__(self, target_host: str, target_port: int, *, up: bool = True) -> None:
        self.target = (target_host, target_port)
        self.up = up
        self.reply_delay_seconds = 0.0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.port

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def set_down(self) -> None:
        self.up = False
        for writer in self._writers:
            writer.close()

    async def close(self) -> None:
        self.set_down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers.update({writer, upstream_writer})

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, replies: bool
        ) -> None:
            try:
                while data := await source.read(65536):
                    if replies and self.reply_delay_seconds:
                        await asyncio.sleep(self.reply_delay_seconds)
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer, replies=False),
            pipe(upstream_reader, writer, replies=True),
        )
        self._writers.difference_update({writer, upstream_writer})
