"""A datastore that is down: 503 problem JSON, quickly, never 500; recovery by itself."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from pymongo import uri_parser

from gatehouse_auth.main import create_app
from gatehouse_testing.network import TcpProxy
from services.auth.tests.support import AuthApi, SettingsFactory, running, serving

if TYPE_CHECKING:
    import httpx2


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on (bound without listen, so connects are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _assert_unavailable(response: httpx2.Response, dependency: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 503
    assert problem["dependency"] == dependency
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_mongo_down_gives_503_within_the_server_selection_timeout(
    make_settings: SettingsFactory, closed_port: int
) -> None:
    """The first request waits for PyMongo's server selection (300 ms here), not for anything as
    long as the connect timeout; its 503 opens the gate, and the others are refused at once."""
    connect_timeout_ms = 5000
    settings = make_settings(
        mongo_url=f"mongodb://127.0.0.1:{closed_port}/?directConnection=true",
        mongo_timeout_ms=connect_timeout_ms,
        mongo_server_selection_timeout_ms=300,
    )
    async with running(create_app(settings)) as client:
        started = time.monotonic()
        register = await client.post(
            "/auth/register", json={"email": "a@example.com", "password": "long enough pw"}
        )
        login = await client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "a@example.com", "password": "x" * 12},
        )
        refresh = await client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": "abc"}
        )
        revoke = await client.post("/auth/revoke", data={"token": "abc"})
        ready = await client.get("/ready")
        elapsed = time.monotonic() - started

        for response in (register, login, refresh, revoke):
            _assert_unavailable(response, "mongodb")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["mongodb"]
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/auth/.well-known/jwks.json")).status_code == 200
    assert elapsed < connect_timeout_ms / 1000 / 2, f"five requests took {elapsed:.2f} s"


async def test_redis_down_fails_password_grant_closed_but_not_refresh(
    make_settings: SettingsFactory, closed_port: int
) -> None:
    healthy = make_settings()
    async with serving(healthy) as api:
        user = await api.register()
        tokens = await api.tokens(user["email"])

    broken = make_settings(
        mongo_database=healthy.mongo_database,
        redis_url=f"redis://127.0.0.1:{closed_port}/0",
        redis_timeout_seconds=0.5,
    )
    async with serving(broken) as api:
        _assert_unavailable(await api.login(user["email"]), "redis")
        assert (await api.refresh(tokens["refresh_token"])).status_code == 200
        assert (
            await api.client.post(
                "/auth/register", json={"email": "b@example.com", "password": "long enough pw"}
            )
        ).status_code == 201
        ready = await api.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["redis"]


async def test_ready_when_both_answer(client: httpx2.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"mongodb": "ok", "redis": "ok", "events": "ok"},
    }


async def test_mongo_outage_and_recovery_without_restart(
    make_settings: SettingsFactory,
    mongo_url: str,
) -> None:
    """Started while MongoDB is away: 503s, then normal service once it is back, untouched."""
    parsed = uri_parser.parse_uri(mongo_url)
    host, port = parsed["nodelist"][0]
    proxy = TcpProxy(host, port, up=False)
    proxy_port = await proxy.start()
    proxied_url = mongo_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy_port}")
    app = create_app(make_settings(mongo_url=proxied_url, mongo_timeout_ms=500))
    try:
        async with running(app) as client:
            api = AuthApi(client)
            assert (await client.get("/ready")).status_code == 503
            email = "back@example.com"
            down = await client.post(
                "/auth/register", json={"email": email, "password": "long enough pw"}
            )
            _assert_unavailable(down, "mongodb")

            proxy.up = True
            await _eventually_ready(client)
            user = await api.register(email)
            duplicate = await client.post(
                "/auth/register", json={"email": email, "password": "long enough pw"}
            )
            assert duplicate.status_code == 409  # the unique index was made on recovery
            tokens = await api.tokens(user["email"])

            proxy.set_down()
            _assert_unavailable(await api.refresh(tokens["refresh_token"]), "mongodb")

            proxy.up = True
            await _eventually_ready(client)
            assert (await api.refresh(tokens["refresh_token"])).status_code == 200
    finally:
        await proxy.close()


async def _eventually_ready(client: httpx2.AsyncClient) -> None:
    for _ in range(40):
        if (await client.get("/ready")).status_code == 200:
            return
        await asyncio.sleep(0.25)
    pytest.fail("the service did not become ready after MongoDB came back")
