"""The bounded HTTP edge, against a real server on a loopback port (gatehouse_common.server)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gatehouse_common.app import ServiceInfo, create_app
from gatehouse_common.draining import draining_of
from gatehouse_common.http_edge import EdgeLimits
from gatehouse_common.settings import (
    HttpServerSettings,
    ServiceSettings,
    SettingsError,
    load_settings,
)
from gatehouse_testing.raw_http import exchange, latencies_during
from gatehouse_testing.servers import ServerThread

MIB = 1024 * 1024
HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 1
MAX_CONNECTIONS = 8
# The bounds: refused within a second, /health within 200 ms meanwhile.
REFUSED_WITHIN = 1.0
HEALTH_WITHIN = 0.2


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    app = create_app(ServiceInfo(name="edge-test", title="edge", version="0"), ServiceSettings())
    settings = HttpServerSettings(
        http_header_timeout_seconds=HEADER_TIMEOUT,
        http_keep_alive_seconds=KEEP_ALIVE,
        http_max_connections=MAX_CONNECTIONS,
    )
    with ServerThread(app, settings=settings) as running:
        yield running


def request_with(*headers: bytes) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: test\r\n" + b"".join(headers) + b"\r\n"


def assert_refused(response_status: int, body: bytes, status: int) -> None:
    assert response_status == status
    problem = json.loads(body)
    assert problem["status"] == status


async def test_ten_thousand_headers_are_refused_while_health_answers(server: ServerThread) -> None:
    attack = exchange(server.port, request_with(*(b"X-H%d: v\r\n" % i for i in range(10_000))))
    response, seconds = await latencies_during(f"{server.url}/health", attack)
    assert_refused(response.status, response.body, 431)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.seconds < REFUSED_WITHIN
    assert max(seconds) < HEALTH_WITHIN


async def test_a_one_mib_header_is_refused_while_health_answers(server: ServerThread) -> None:
    attack = exchange(server.port, request_with(b"Cookie: " + b"a" * MIB + b"\r\n"))
    response, seconds = await latencies_during(f"{server.url}/health", attack)
    assert_refused(response.status, response.body, 431)
    assert response.seconds < REFUSED_WITHIN
    assert max(seconds) < HEALTH_WITHIN


async def test_an_unterminated_64_mib_header_is_cut_off(server: ServerThread) -> None:
    async def endless_header() -> AsyncIterator[bytes]:
        yield b"GET /health HTTP/1.1\r\nHost: test\r\nX-Long: "
        for _ in range(64):
            yield b"a" * MIB

    response, seconds = await latencies_during(
        f"{server.url}/health", exchange(server.port, endless_header())
    )
    assert_refused(response.status, response.body, 431)
    assert response.seconds < REFUSED_WITHIN
    assert max(seconds) < HEALTH_WITHIN


async def test_an_oversized_first_read_is_refused_without_waiting_for_more(
    server: ServerThread,
) -> None:
    async def one_burst_then_silence() -> AsyncIterator[bytes]:
        yield b"GET /health HTTP/1.1\r\nHost: test\r\nX-Long: " + b"a" * 100_000
        await asyncio.sleep(HEADER_TIMEOUT * 5)

    response = await exchange(server.port, one_burst_then_silence())
    assert_refused(response.status, response.body, 431)
    assert response.seconds < REFUSED_WITHIN


@pytest.mark.parametrize(("extra_headers", "status"), [(98, 200), (99, 431)])
async def test_the_header_count_limit_is_exact(
    server: ServerThread, extra_headers: int, status: int
) -> None:
    # Host is one of the 100.
    request = request_with(
        *(b"X-H%d: v\r\n" % i for i in range(extra_headers)), b"Connection: close\r\n"
    )
    assert (await exchange(server.port, request)).status == status


async def test_headers_just_under_the_byte_limit_pass(server: ServerThread) -> None:
    request = request_with(b"X-Big: " + b"a" * 60_000 + b"\r\n", b"Connection: close\r\n")
    assert (await exchange(server.port, request)).status == 200


async def test_an_idle_connection_is_closed_within_the_header_timeout(server: ServerThread) -> None:
    response = await exchange(server.port, b"", within=HEADER_TIMEOUT + 2)
    # Nothing was asked, so nothing is answered: the connection just ends.
    assert response.status == 0
    assert response.body == b""
    assert HEADER_TIMEOUT * 0.8 < response.seconds < HEADER_TIMEOUT + 1


async def test_a_header_dribble_is_answered_408_within_the_header_timeout(
    server: ServerThread,
) -> None:
    async def dribble() -> AsyncIterator[bytes]:
        yield b"GET /health HTTP/1.1\r\nHost: test\r\n"
        for i in range(100):
            await asyncio.sleep(HEADER_TIMEOUT / 3)
            yield b"X-Drop-%d: v\r\n" % i

    response = await exchange(server.port, dribble(), within=HEADER_TIMEOUT + 3)
    assert_refused(response.status, response.body, 408)
    assert response.seconds < HEADER_TIMEOUT + 1


async def test_an_idle_keep_alive_connection_is_closed(server: ServerThread) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request_with())
        await writer.drain()
        async with asyncio.timeout(KEEP_ALIVE + 2):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            assert await reader.read() == b""  # closed by the server
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return head


async def test_shutdown_answers_a_request_on_a_kept_alive_connection_and_closes_it() -> None:
    """A request sent on a kept-alive connection just as shutdown begins is answered (with
    Connection: close), not lost to a connection closed under it."""
    app = create_app(ServiceInfo(name="edge-test", title="edge", version="0"), ServiceSettings())
    with ServerThread(app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(request_with())
            await writer.drain()
            first = await read_response(reader)
            assert b"connection: close" not in first.lower()

            server.begin_shutdown()
            await asyncio.sleep(0.2)  # the server has begun shutting down
            writer.write(request_with())
            await writer.drain()
            async with asyncio.timeout(5):
                second = await read_response(reader)
                assert await reader.read() == b""  # then the server closes
        finally:
            writer.close()

    assert second.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in second.lower()


async def test_the_app_hears_when_the_server_begins_to_shut_down() -> None:
    """``draining_of(app).on_begin`` runs when shutdown begins, while requests still drain."""
    begun = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        draining_of(app).on_begin(begun.set)
        yield

    app = create_app(
        ServiceInfo(name="edge-test", title="edge", version="0"),
        ServiceSettings(),
        lifespan=lifespan,
    )
    with ServerThread(app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(request_with())
            await writer.drain()
            await read_response(reader)
            assert not begun.is_set()

            server.begin_shutdown()
            assert await asyncio.to_thread(begun.wait, 5)
        finally:
            writer.close()


async def test_connections_over_the_cap_are_refused_503(server: ServerThread) -> None:
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(MAX_CONNECTIONS)]
    try:
        await asyncio.sleep(0.1)  # the server has accepted them all
        refused = await exchange(server.port, request_with(b"Connection: close\r\n"))
        assert_refused(refused.status, refused.body, 503)
        assert refused.headers["retry-after"] == "1"
    finally:
        for _, writer in held:
            writer.close()
    await asyncio.sleep(0.1)
    served = await exchange(server.port, request_with(b"Connection: close\r\n"))
    assert served.status == 200


async def test_a_malformed_request_is_a_problem(server: ServerThread) -> None:
    response = await exchange(server.port, b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n")
    assert_refused(response.status, response.body, 400)
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_responses_name_no_server_and_carry_the_security_headers(
    server: ServerThread,
) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.get(f"{server.url}/health")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "date" in response.headers


async def test_a_local_client_cannot_name_its_own_address() -> None:
    """The server does not take the peer's address from X-Forwarded-For, even from 127.0.0.1:
    the services decide who is a trusted proxy (their TRUSTED_PROXIES), nobody before them."""

    async def peer(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})

    with ServerThread(Starlette(routes=[Route("/", peer)])) as running:
        async with httpx2.AsyncClient() as client:
            response = await client.get(
                f"{running.url}/",
                headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
            )

    assert response.json() == {"client": "127.0.0.1", "scheme": "http"}


class PrefixedSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore", frozen=True)


def test_the_limits_are_read_with_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_HTTP_MAX_HEADER_BYTES", "16384")
    monkeypatch.setenv("EXAMPLE_HTTP_HEADER_TIMEOUT_SECONDS", "2.5")

    limits = EdgeLimits.from_settings(load_settings(PrefixedSettings))

    assert limits.max_header_bytes == 16384
    assert limits.header_timeout_seconds == 2.5
    assert limits.max_header_count == 100


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EXAMPLE_HTTP_MAX_HEADER_BYTES", "65537"),
        ("EXAMPLE_HTTP_MAX_HEADER_COUNT", "101"),
        ("EXAMPLE_HTTP_HEADER_TIMEOUT_SECONDS", "31"),
    ],
)
def test_a_limit_beyond_the_contract_stops_the_service(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as stopped:
        load_settings(PrefixedSettings)

    assert variable in str(stopped.value)
