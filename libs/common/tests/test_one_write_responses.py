"""A response's headers wait for its body, or for the end of the event loop's turn."""

from __future__ import annotations

import asyncio

from gatehouse_common.http_edge import OneWriteResponses

HEADERS = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """Records each write as the socket would receive it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_headers_and_body_sent_in_one_turn_leave_in_one_write() -> None:
    transport = RecordingTransport()
    connection = OneWriteResponses(transport, asyncio.get_running_loop())

    connection.write(HEADERS)
    assert transport.writes == []  # held until the body comes, or the turn ends
    connection.write(b"{}")
    await asyncio.sleep(0)

    assert transport.writes == [HEADERS + b"{}"]


async def test_headers_without_a_body_in_the_same_turn_leave_when_the_turn_ends() -> None:
    """A streamed response: the headers must not wait for a body that is still on its way."""
    transport = RecordingTransport()
    connection = OneWriteResponses(transport, asyncio.get_running_loop())

    connection.write(HEADERS)
    await asyncio.sleep(0)
    assert transport.writes == [HEADERS]

    connection.write(b"chunk 1")
    connection.write(b"chunk 2")  # later writes pass straight through
    assert transport.writes == [HEADERS, b"chunk 1", b"chunk 2"]


async def test_closing_writes_what_is_held_first() -> None:
    """A HEAD or 204 answer has no body write: closing the connection sends its headers."""
    transport = RecordingTransport()
    connection = OneWriteResponses(transport, asyncio.get_running_loop())

    connection.write(HEADERS)
    connection.close()

    assert transport.writes == [HEADERS]
    assert transport.closed
    await asyncio.sleep(0)
    assert transport.writes == [HEADERS]  # the end of the turn writes nothing twice


async def test_nothing_is_written_to_a_connection_closed_meanwhile() -> None:
    transport = RecordingTransport()
    connection = OneWriteResponses(transport, asyncio.get_running_loop())

    connection.write(HEADERS)
    transport.close()  # the client went away
    await asyncio.sleep(0)

    assert transport.writes == []
