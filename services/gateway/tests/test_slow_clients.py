"""Slow uploads and a busy upstream pool never take an upstream away from other clients.

The gateway runs on a real server and the upstream is a real server: slow clients are raw
sockets that send their headers and one byte of a 100-byte body, then nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager

import httpx2
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from gatehouse_gateway.upstream import Failure
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.raw_http import RawResponse, exchange
from gatehouse_testing.servers import ServerThread

AppFactory = Callable[..., FastAPI]
GatewayFactory = Callable[..., AbstractAsyncContextManager[httpx2.AsyncClient]]
BODY_TIMEOUT = 2.0
SLOW_CLIENTS = 150
UPSTREAM_CONNECTIONS = 10  # far fewer than the slow clients: holding one each would starve all


def failures(upstream: str) -> dict[str, float]:
    return {
        failure.value: REGISTRY.get_sample_value(
            "gateway_upstream_failures_total", {"upstream": upstream, "kind": failure.value}
        )
        or 0.0
        for failure in Failure
    }


def circuit_open(upstream: str) -> float:
    value = REGISTRY.get_sample_value("gateway_upstream_circuit_open", {"upstream": upstream})
    return value or 0.0


@pytest.fixture
def gateway_server(gateway_app: AppFactory) -> Iterator[ServerThread]:
    app = gateway_app(
        body_timeout_seconds=BODY_TIMEOUT,
        upstream_max_connections=UPSTREAM_CONNECTIONS,
        upstream_pool_timeout_seconds=0.5,
        circuit_failure_threshold=1,
    )
    with ServerThread(app) as running:
        yield running


async def slow_upload() -> AsyncIterator[bytes]:
    yield (
        b"POST /auth/register HTTP/1.1\r\nHost: gateway\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    await asyncio.sleep(60)  # the other 99 bytes never come


async def test_slow_uploads_hold_no_upstream_connection_and_get_408(
    gateway_server: ServerThread,
) -> None:
    before = failures("auth")
    slow = [
        asyncio.create_task(exchange(gateway_server.port, slow_upload(), within=BODY_TIMEOUT + 8))
        for _ in range(SLOW_CLIENTS)
    ]
    await asyncio.sleep(0.5)  # every slow client is connected and waiting on its body

    async with httpx2.AsyncClient(base_url=gateway_server.url, timeout=10) as client:

        async def register(n: int) -> httpx2.Response:
            return await client.post(
                "/auth/register",
                json={"email": f"u{n}@example.com", "password": "correct horse battery"},
            )

        async def log_in(n: int) -> httpx2.Response:
            return await client.post(
                "/auth/token",
                data={"grant_type": "password", "username": f"u{n}@example.com", "password": "x"},
            )

        async def jwks(_: int) -> httpx2.Response:
            return await client.get("/auth/.well-known/jwks.json")

        others = await asyncio.gather(
            *(call(n) for n in range(20) for call in (register, log_in, jwks))
        )
    answered: list[RawResponse] = await asyncio.gather(*slow)

    assert [response.status_code for response in others] == [200] * len(others)
    assert {response.status for response in answered} == {408}
    assert all(
        response.headers["content-type"] == "application/problem+json" for response in answered
    )
    assert min(response.seconds for response in answered) >= BODY_TIMEOUT - 0.1
    assert failures("auth") == before, "no request failed upstream"
    assert circuit_open("auth") == 0


@pytest.mark.parametrize("transport", ["aiohttp", "httpx2"])
async def test_waiting_for_a_busy_upstream_connection_is_503_and_not_an_upstream_failure(
    make_gateway: GatewayFactory, issuer: TestIssuer, transport: str
) -> None:
    bearer = {"authorization": f"Bearer {issuer.mint()}"}
    async with make_gateway(
        upstream_transport=transport,
        upstream_max_connections=2,
        upstream_pool_timeout_seconds=0.3,
        circuit_failure_threshold=1,
    ) as gateway:
        before = failures("users")
        busy = [
            asyncio.create_task(gateway.get("/users/slow?seconds=1.5", headers=bearer))
            for _ in range(2)
        ]
        await asyncio.sleep(0.3)  # both connections are taken
        waiting = await asyncio.gather(
            *(gateway.get("/users/me", headers=bearer) for _ in range(3))
        )
        assert [response.status_code for response in await asyncio.gather(*busy)] == [200, 200]
        after = await gateway.get("/users/me", headers=bearer)

    for response in waiting:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
    assert after.status_code == 200, "the circuit did not open"
    seen = failures("users")
    assert seen["pool_timeout"] - before["pool_timeout"] == 3
    assert {kind: seen[kind] - before[kind] for kind in seen if kind != "pool_timeout"} == {
        kind: 0.0 for kind in seen if kind != "pool_timeout"
    }
    assert circuit_open("users") == 0
