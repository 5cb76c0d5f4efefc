"""Fixtures: a real upstream process for the gateway to proxy to (``support.UpstreamStub``),
and an in-process gateway factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from gatehouse_gateway.main import create_app
from gatehouse_testing.app import started
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.network import free_port
from gatehouse_testing.servers import ServerThread
from services.gateway.tests.support import (
    AppFactory,
    GatewayFactory,
    UpstreamStub,
    gateway_settings,
)


@pytest.fixture(scope="session")
def stub_issuer() -> TestIssuer:
    """The issuer whose JWKS the stub upstream serves (for gateways running out of process)."""
    return TestIssuer()


@pytest.fixture(scope="session")
def upstream(stub_issuer: TestIssuer) -> Iterator[UpstreamStub]:
    stub = UpstreamStub(stub_issuer)
    server = ServerThread(stub.app)
    server.start()
    stub.url = server.url
    yield stub
    server.stop()


@pytest.fixture(scope="session")
def upstream_url(upstream: UpstreamStub) -> str:
    return upstream.url


@pytest.fixture
def gateway_app(issuer: TestIssuer, upstream_url: str, redis_url: str) -> AppFactory:
    """Build a gateway app (its event channel on the session's Redis); keyword arguments
    override settings.

    ``jwks_transport`` replaces the transport that serves the ``issuer`` fixture's JWKS.
    """

    def build(jwks_transport: httpx2.AsyncBaseTransport | None = None, **overrides: Any) -> FastAPI:
        settings = gateway_settings(
            upstream_url, overrides.pop("events_redis_url", redis_url), **overrides
        )
        return create_app(settings, jwks_transport=jwks_transport or issuer.transport())

    return build


@pytest.fixture
def make_gateway(gateway_app: AppFactory) -> GatewayFactory:
    """Start a gateway in-process (lifespan included) and give a client talking to it."""

    @asynccontextmanager
    async def start(
        client: tuple[str, int] = ("127.0.0.1", 50000), **overrides: Any
    ) -> AsyncIterator[httpx2.AsyncClient]:
        async with (
            started(gateway_app(**overrides)) as running,
            running.client("http://gateway.test", client_address=client) as http,
        ):
            yield http

    return start


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> AsyncIterator[httpx2.AsyncClient]:
    async with make_gateway() as http:
        yield http


@pytest.fixture
def restartable_upstream(stub_issuer: TestIssuer) -> Iterator[ServerThread]:
    """A stub upstream on its own port, not yet started: tests start and stop it."""
    server = ServerThread(UpstreamStub(stub_issuer).app)
    yield server
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens: an upstream that is down."""
    return f"http://127.0.0.1:{free_port()}"
