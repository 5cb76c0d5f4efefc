"""The gateway's HTTP edge on a real server: hostile headers never reach an upstream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from gatehouse_common.security_headers import script_hash
from gatehouse_common.settings import HttpServerSettings
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.raw_http import RawResponse, exchange, latencies_during
from gatehouse_testing.servers import ServerThread

AppFactory = Callable[..., FastAPI]
Attack = Callable[[], bytes | AsyncIterable[bytes]]
MIB = 1024 * 1024
HEADER_TIMEOUT = 1.0
# The bounds: refused within a second, /health within 200 ms meanwhile.
REFUSED_WITHIN = 1.0
HEALTH_WITHIN = 0.2


@pytest.fixture
def gateway_server(gateway_app: AppFactory) -> Iterator[ServerThread]:
    settings = HttpServerSettings(http_header_timeout_seconds=HEADER_TIMEOUT)
    with ServerThread(gateway_app(), settings=settings) as running:
        yield running


def register_with(*headers: bytes) -> bytes:
    body = b'{"email": "a@example.com", "password": "correct horse battery"}'
    return (
        b"POST /auth/register HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n" % len(body)
        + b"".join(headers)
        + b"\r\n"
        + body
    )


async def unterminated_header() -> AsyncIterator[bytes]:
    yield b"POST /auth/register HTTP/1.1\r\nHost: gateway\r\nX-Long: "
    for _ in range(64):
        yield b"a" * MIB


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(
            lambda: register_with(*(b"X-H%d: v\r\n" % i for i in range(10_000))), id="10k"
        ),
        pytest.param(lambda: register_with(b"Cookie: " + b"a" * MIB + b"\r\n"), id="1MiB"),
        pytest.param(unterminated_header, id="64MiB-unterminated"),
    ],
)
async def test_oversized_headers_are_refused_and_nothing_is_forwarded(
    gateway_server: ServerThread, upstream: Any, attack: Attack
) -> None:
    hits_before = upstream.hits
    response, seconds = await latencies_during(
        f"{gateway_server.url}/health", exchange(gateway_server.port, attack())
    )
    assert_refused(response, 431)
    assert response.seconds < REFUSED_WITHIN
    assert max(seconds) < HEALTH_WITHIN
    assert upstream.hits == hits_before


async def test_a_header_dribble_is_cut_off_and_nothing_is_forwarded(
    gateway_server: ServerThread, upstream: Any
) -> None:
    async def dribble() -> AsyncIterator[bytes]:
        yield b"GET /auth/.well-known/jwks.json HTTP/1.1\r\nHost: gateway\r\n"
        for i in range(100):
            await asyncio.sleep(HEADER_TIMEOUT / 3)
            yield b"X-Drop-%d: v\r\n" % i

    hits_before = upstream.hits
    response = await exchange(gateway_server.port, dribble(), within=HEADER_TIMEOUT + 3)
    assert_refused(response, 408)
    assert response.seconds < HEADER_TIMEOUT + 1
    assert upstream.hits == hits_before


async def test_proxied_responses_carry_the_security_headers_and_no_banner(
    gateway_server: ServerThread, issuer: TestIssuer
) -> None:
    async with httpx2.AsyncClient(base_url=gateway_server.url) as client:
        response = await client.get(
            "/users/hop", headers={"authorization": f"Bearer {issuer.mint()}"}
        )
    assert response.status_code == 200
    assert "server" not in response.headers  # the upstream's banner is dropped
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


async def test_the_docs_page_has_a_restrictive_policy(gateway: httpx2.AsyncClient) -> None:
    response = await gateway.get("/docs")
    assert response.status_code == 200
    policy = dict(
        directive.split(" ", 1)
        for directive in response.headers["content-security-policy"].split("; ")
    )
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'self'"
    assert "'unsafe-inline'" not in policy["script-src"]
    inline_scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert inline_scripts, "the page starts Swagger UI from an inline script"
    for script in inline_scripts:
        assert script_hash(script) in policy["script-src"]


def assert_refused(response: RawResponse, status: int) -> None:
    assert response.status == status
    assert response.headers["content-type"] == "application/problem+json"
    assert "server" not in response.headers
