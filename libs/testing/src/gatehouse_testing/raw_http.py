"""Hostile HTTP/1.1 clients on raw sockets, and a probe of how other clients fare meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Awaitable
from dataclasses import dataclass

import httpx2


@dataclass(frozen=True)
class RawResponse:
    """What came back before the server closed the connection (status 0: nothing at all)."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def parse_response(data: bytes, seconds: float) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        return RawResponse(0, {}, data, seconds)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, body, seconds)


async def exchange(
    port: int, request: bytes | AsyncIterable[bytes], *, within: float = 10.0
) -> RawResponse:
    """Send ``request`` (at once, or chunk by chunk) and read until the server closes, for at
    most ``within`` seconds.

    The sending goes on while the answer is read, as an attacker's would; a server that
    stops reading or resets the connection ends it.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            if isinstance(request, bytes):
                writer.write(request)
                await writer.drain()
                return
            async for chunk in request:
                writer.write(chunk)
                await writer.drain()

    sender = asyncio.create_task(send())
    try:
        received = bytearray()
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(within):
                while chunk := await reader.read(65_536):
                    received += chunk
        return parse_response(bytes(received), time.perf_counter() - started)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        writer.close()


async def latencies_during(
    url: str, attack: Awaitable[RawResponse]
) -> tuple[RawResponse, list[float]]:
    """Run ``attack`` while ``GET url`` is requested again and again; each request's seconds.

    The probing client is connected and has had one answer before the attack starts, so what
    is measured is how a client already being served fares, not connection set-up.
    """
    seconds: list[float] = []
    done = asyncio.Event()
    async with httpx2.AsyncClient(timeout=5) as client:
        (await client.get(url)).raise_for_status()

        async def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                response = await client.get(url)
                response.raise_for_status()
                seconds.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        try:
            result = await attack
        finally:
            done.set()
            await prober
    return result, seconds
