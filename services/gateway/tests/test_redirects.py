"""No answer through the gateway reveals an upstream's address or echoes the client's Host."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager

import httpx2
import pytest
from fastapi import APIRouter

from gatehouse_common.app import ServiceInfo, create_app
from gatehouse_common.settings import ServiceSettings
from gatehouse_gateway.headers import InternalOrigins, response_headers
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.servers import ServerThread

GatewayFactory = Callable[..., AbstractAsyncContextManager[httpx2.AsyncClient]]
EVIL_HOST = "evil.example"


@pytest.fixture(scope="module")
def service() -> Iterator[ServerThread]:
    """An upstream made like every service (``gatehouse_common.app.create_app``)."""
    router = APIRouter()

    @router.get("/users/me")
    async def me() -> dict[str, str]:
        return {"id": "me"}

    @router.post("/auth/token")
    async def token() -> dict[str, str]:
        return {"access_token": "t"}

    app = create_app(
        ServiceInfo(name="svc", title="svc", version="0"), ServiceSettings(), routers=[router]
    )
    with ServerThread(app) as running:
        yield running


@pytest.fixture
async def gateway(
    make_gateway: GatewayFactory, service: ServerThread
) -> AsyncIterator[httpx2.AsyncClient]:
    async with make_gateway(auth_url=service.url, users_url=service.url) as client:
        yield client


def assert_no_leak(response: httpx2.Response, *internal_hosts: str) -> None:
    assert response.status_code < 500, response.text
    location = response.headers.get("location", "")
    for host in (EVIL_HOST, "127.0.0.1", *internal_hosts):
        assert host not in location
        assert host not in response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/me/"),
        ("POST", "/auth/token/"),
        ("GET", "/auth/token/"),
        ("GET", "/health/"),
        ("GET", "/ready/"),
        ("GET", "/docs/"),
        ("GET", "/openapi.json/"),
    ],
)
async def test_a_trailing_slash_is_404_never_a_redirect_to_host_or_upstream(
    gateway: httpx2.AsyncClient, issuer: TestIssuer, method: str, path: str
) -> None:
    response = await gateway.request(
        method,
        path,
        headers={"host": EVIL_HOST, "authorization": f"Bearer {issuer.mint()}"},
    )
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "location" not in response.headers
    assert_no_leak(response)


async def test_an_upstream_location_naming_the_upstream_becomes_a_path(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    async with make_gateway() as gateway:
        response = await gateway.get(
            "/users/moved",
            headers={"host": EVIL_HOST, "authorization": f"Bearer {issuer.mint()}"},
        )
    assert response.status_code == 307
    assert response.headers["location"] == "/users/me"


@pytest.mark.parametrize(
    ("location", "sent"),
    [
        (b"http://users:8002/users/me?x=1#f", b"/users/me?x=1#f"),
        (b"HTTP://Users:9999", b"/"),  # any port, any case
        (b"//users:8002//evil.example/x", b"/evil.example/x"),  # never a network-path reference
        (b"http://users:8002/\\evil.example", b"/evil.example"),
        (b"http://[::1/x", b"/"),  # unparsable: nobody could follow it
        (b"/users/me", b"/users/me"),
        (b"https://accounts.example.com/login", b"https://accounts.example.com/login"),
    ],
)
def test_locations_naming_an_upstream_are_made_relative(location: bytes, sent: bytes) -> None:
    internal = InternalOrigins(["http://users:8002", "http://auth:8001"])
    assert dict(response_headers([(b"Location", location)], internal))[b"location"] == sent
