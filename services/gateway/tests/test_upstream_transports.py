"""The proxy behaves the same on each upstream transport ``GATEWAY_UPSTREAM_TRANSPORT`` selects."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from gatehouse_gateway.settings import GatewaySettings
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.problems import assert_problem, bearer
from services.gateway.tests.support import MIB, GatewayFactory

pytestmark = pytest.mark.parametrize("transport", ["aiohttp", "httpx2"])


async def test_a_request_round_trips(
    make_gateway: GatewayFactory, issuer: TestIssuer, transport: str
) -> None:
    async with make_gateway(upstream_transport=transport) as gateway:
        response = await gateway.get("/users/abc?x=1", headers=bearer(issuer.mint()))
    assert response.status_code == 200, response.text
    assert response.headers["x-upstream"] == "stub"
    assert response.json()["raw_path"] == "/users/abc"
    assert response.json()["query"] == "x=1"


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", b"x" * 3 * MIB), ("HEAD", b"")],
    ids=["a multi-chunk response arrives whole", "HEAD gets the length without a body"],
)
async def test_a_large_response_keeps_its_length(
    make_gateway: GatewayFactory, issuer: TestIssuer, transport: str, method: str, body: bytes
) -> None:
    async with make_gateway(upstream_transport=transport) as gateway:
        response = await gateway.request(method, "/users/big?mib=3", headers=bearer(issuer.mint()))
    assert response.status_code == 200
    assert response.headers["content-length"] == str(3 * MIB)
    assert response.content == body


async def test_a_streamed_request_body_reaches_the_upstream(
    make_gateway: GatewayFactory, issuer: TestIssuer, transport: str
) -> None:
    payload = b"y" * (512 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    async with make_gateway(upstream_transport=transport) as gateway:
        response = await gateway.patch("/users/me", headers=bearer(issuer.mint()), content=chunks())
    assert response.status_code == 200, response.text
    assert response.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()


async def test_a_streamed_body_over_the_limit_is_413(
    make_gateway: GatewayFactory, issuer: TestIssuer, transport: str
) -> None:
    async def endless() -> AsyncIterator[bytes]:
        for _ in range(40):  # 2.5 MiB, no Content-Length
            yield b"x" * 64 * 1024

    async with make_gateway(upstream_transport=transport) as gateway:
        response = await gateway.patch(
            "/users/me", headers=bearer(issuer.mint()), content=endless()
        )
    assert_problem(response, 413)


async def test_an_unreachable_upstream_is_502(
    make_gateway: GatewayFactory, issuer: TestIssuer, closed_port_url: str, transport: str
) -> None:
    async with make_gateway(upstream_transport=transport, users_url=closed_port_url) as gateway:
        response = await gateway.get("/users/me", headers=bearer(issuer.mint()))
    assert_problem(response, 502)


async def test_a_slow_upstream_is_504(
    make_gateway: GatewayFactory, issuer: TestIssuer, transport: str
) -> None:
    async with make_gateway(
        upstream_transport=transport, upstream_read_timeout_seconds=0.5
    ) as gateway:
        response = await gateway.get("/users/slow?seconds=3", headers=bearer(issuer.mint()))
    assert_problem(response, 504)


def test_an_unknown_transport_is_refused(transport: str) -> None:
    values: dict[str, Any] = {
        "auth_url": "http://auth:8001",
        "users_url": "http://users:8002",
        "jwt_issuer": "i",
        "jwt_audience": "a",
        "jwks_url": "http://auth:8001/jwks",
        "events_redis_url": "redis://redis:6379/0",
    }
    assert GatewaySettings(**values, upstream_transport=transport).upstream_transport == transport
    with pytest.raises(ValidationError):
        GatewaySettings(**values, upstream_transport="requests")


async def test_an_upstream_name_that_does_not_resolve_is_answered_without_error_noise(
    make_gateway: GatewayFactory,
    issuer: TestIssuer,
    transport: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stopped container's name no longer resolves: each request gets its answer, and
    nothing is left for asyncio to report at error level (an unretrieved exception)."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    try:
        async with make_gateway(
            upstream_transport=transport,
            users_url="http://stopped-container.invalid:8002",
            circuit_failure_threshold=1000,
        ) as gateway:
            responses = await asyncio.gather(
                *(gateway.get("/users/me", headers=bearer(issuer.mint())) for _ in range(20))
            )
        gc.collect()
        await asyncio.sleep(0.1)
        gc.collect()
    finally:
        loop.set_exception_handler(previous)

    for response in responses:
        assert response.status_code in {502, 503}, response.text
    assert reported == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
