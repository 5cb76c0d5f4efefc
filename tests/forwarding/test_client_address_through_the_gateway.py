"""The real client address reaches auth's login throttle through the gateway.

The chain of a deployment behind an ingress: a trusted proxy (here, the test client, at
10.1.2.3) sends ``X-Forwarded-For: <client>``; the gateway, which trusts it, appends its peer
and forwards; auth, which trusts the gateway, counts failures under that client. auth runs on
a real loopback port with its MongoDB and Redis, as built by its factory; so does the
gateway's upstream exchange, which reaches auth over a real connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx2
import pytest

from gatehouse_auth.main import create_app as create_auth
from gatehouse_gateway.main import create_app as create_gateway
from gatehouse_gateway.settings import GatewaySettings
from gatehouse_testing.app import started
from gatehouse_testing.issuer import AUDIENCE, ISSUER
from gatehouse_testing.servers import ServerThread
from tests.in_process_auth import auth_settings

PROXY = "10.1.2.3"  # in the gateway's trusted proxies
UNTRUSTED = "198.51.100.5"
MAX_FAILURES_PER_ADDRESS = 3

Client = Callable[[str], AbstractAsyncContextManager[httpx2.AsyncClient]]


@pytest.fixture
async def gateway_to_auth(mongo_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    """``async with client(peer) as http``: a client of the gateway connecting from ``peer``."""
    settings = auth_settings(
        tmp_path,
        mongo_url,
        redis_url=redis_url,
        redis_key_prefix=f"test:{uuid.uuid4().hex[:12]}:",
        events_redis_url=redis_url,
        login_max_failures_per_address=MAX_FAILURES_PER_ADDRESS,
        login_max_failures_per_email=100,
        # The gateway (on loopback) and the proxies the gateway trusts: X-Forwarded-For is
        # "client, proxy" plus the gateway's peer, and auth walks it from the right.
        trusted_proxies="127.0.0.1/32,10.0.0.0/8",
    )
    with ServerThread(create_auth(settings)) as auth:
        gateway = create_gateway(
            GatewaySettings(
                environment="test",
                auth_url=auth.url,
                users_url=auth.url,  # not used
                events_redis_url=redis_url,
                jwt_issuer=ISSUER,
                jwt_audience=AUDIENCE,
                jwks_url=f"{auth.url}/auth/.well-known/jwks.json",
                metrics_port=0,
                trusted_proxies="10.0.0.0/8",
            )
        )
        async with started(gateway) as running:

            @asynccontextmanager
            async def client(peer: str) -> AsyncIterator[httpx2.AsyncClient]:
                async with running.client("http://gateway.test", client_address=(peer, 40000)) as c:
                    yield c

            yield client


async def fail_logins(http: httpx2.AsyncClient, forwarded_for: str, times: int) -> None:
    for _ in range(times):
        response = await http.post(
            "/auth/token",
            data={
                "grant_type": "password",
                "username": f"guess-{uuid.uuid4().hex[:8]}@example.com",
                "password": "wrong password!",
            },
            headers={"x-forwarded-for": forwarded_for},
        )
        assert response.status_code == 400, response.text


async def login(http: httpx2.AsyncClient, email: str, forwarded_for: str) -> int:
    response = await http.post(
        "/auth/token",
        data={"grant_type": "password", "username": email, "password": "correct horse battery"},
        headers={"x-forwarded-for": forwarded_for},
    )
    return response.status_code


async def test_clients_behind_a_trusted_proxy_are_throttled_independently(
    gateway_to_auth: Client,
) -> None:
    async with gateway_to_auth(PROXY) as http:
        email = f"user-{uuid.uuid4().hex[:8]}@example.com"
        registered = await http.post(
            "/auth/register", json={"email": email, "password": "correct horse battery"}
        )
        assert registered.status_code == 201, registered.text

        await fail_logins(http, "203.0.113.7", MAX_FAILURES_PER_ADDRESS)

        assert await login(http, email, "203.0.113.7") == 429
        assert await login(http, email, "203.0.113.8") == 200  # another client


async def test_an_untrusted_clients_forwarded_for_changes_nothing(
    gateway_to_auth: Client,
) -> None:
    async with gateway_to_auth(PROXY) as proxied, gateway_to_auth(UNTRUSTED) as direct:
        email = f"user-{uuid.uuid4().hex[:8]}@example.com"
        await proxied.post(
            "/auth/register", json={"email": email, "password": "correct horse battery"}
        )
        # Each failure claims another address; all are counted under the client's own.
        for n in range(MAX_FAILURES_PER_ADDRESS):
            await fail_logins(direct, f"203.0.113.{100 + n}", 1)

        assert await login(direct, email, "203.0.113.200") == 429
        # Nothing was counted under the addresses it claimed: those clients log in.
        assert await login(proxied, email, "203.0.113.100") == 200
