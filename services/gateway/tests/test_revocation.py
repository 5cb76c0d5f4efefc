"""Revocation at the edge: tokens of revoked logins and erased users are refused with 401
``invalid_token`` before anything reaches an upstream, also by a gateway started later.

Events are published with the kit to the real streams on the session's Redis, as auth and
users publish them; the gateway's revocation feed picks them up.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx2
from redis.asyncio import Redis

from gatehouse_testing.events import (
    account_erased,
    logins_revoked,
    logins_revoked_before,
    publish,
)
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.problems import bearer

GatewayFactory = Any
Eventually = Any


def assert_refused(response: httpx2.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_a_revoked_login_is_refused_within_seconds_and_after_a_restart(
    make_gateway: GatewayFactory,
    issuer: TestIssuer,
    upstream: Any,
    events_redis: Redis,
    eventually: Eventually,
) -> None:
    user_id, session_id = uuid.uuid4(), str(uuid.uuid4())
    revoked = issuer.mint(str(user_id), claims={"sid": session_id})
    other_login = issuer.mint(str(user_id), claims={"sid": str(uuid.uuid4())})

    async with make_gateway() as gateway:
        assert (await gateway.get("/users/me", headers=bearer(revoked))).status_code == 200
        await publish(events_redis, logins_revoked(user_id, session_id))

        async def refused() -> bool:
            response: httpx2.Response = await gateway.get("/users/me", headers=bearer(revoked))
            return response.status_code == 401

        await eventually(refused)  # the contract's bound is 5 s; eventually gives up at 10
        hits = upstream.hits
        assert_refused(await gateway.get("/users/me", headers=bearer(revoked)))
        assert upstream.hits == hits  # refused at the edge, never proxied
        assert (await gateway.get("/users/me", headers=bearer(other_login))).status_code == 200

    # A gateway started after the event replays the stream before it serves.
    async with make_gateway() as restarted:
        assert_refused(await restarted.get("/users/me", headers=bearer(revoked)))
        assert (await restarted.get("/users/me", headers=bearer(other_login))).status_code == 200


async def test_an_erased_account_has_every_earlier_token_refused(
    make_gateway: GatewayFactory, issuer: TestIssuer, events_redis: Redis, eventually: Eventually
) -> None:
    user_id = uuid.uuid4()
    tokens = [issuer.mint(str(user_id), claims={"sid": str(uuid.uuid4())}) for _ in range(3)]

    async with make_gateway() as gateway:
        await publish(events_redis, account_erased(user_id))

        async def every_token_refused() -> bool:
            statuses = {
                (await gateway.get("/users/me", headers=bearer(token))).status_code
                for token in tokens
            }
            return statuses == {401}

        await eventually(every_token_refused)
        # Someone else's token is not affected.
        assert (await gateway.get("/users/me", headers=bearer(issuer.mint()))).status_code == 200

    async with make_gateway() as restarted:
        for token in tokens:
            assert_refused(await restarted.get("/users/me", headers=bearer(token)))


async def test_a_whole_user_revocation_spares_tokens_issued_after_it(
    make_gateway: GatewayFactory, issuer: TestIssuer, events_redis: Redis, eventually: Eventually
) -> None:
    user_id = uuid.uuid4()
    now = int(datetime.now(UTC).timestamp())
    earlier = issuer.mint(str(user_id), claims={"iat": now - 60})
    later = issuer.mint(str(user_id), claims={"iat": now})

    async with make_gateway() as gateway:
        await publish(
            events_redis, logins_revoked_before(user_id, datetime.fromtimestamp(now - 1, UTC))
        )

        async def refused() -> bool:
            response: httpx2.Response = await gateway.get("/users/me", headers=bearer(earlier))
            return response.status_code == 401

        await eventually(refused)
        assert (await gateway.get("/users/me", headers=bearer(later))).status_code == 200


async def test_the_gateway_starts_and_serves_while_the_event_channel_is_down(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    """Fail open: the channel is optional (/ready degraded), tokens are still verified."""
    async with make_gateway(
        events_redis_url="redis://127.0.0.1:1/0",
        events_redis_timeout_seconds=0.2,
        revocation_replay_wait_seconds=0.2,
    ) as gateway:
        ready = await gateway.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"jwks": "ok", "events": "degraded"}
        assert (await gateway.get("/users/me", headers=bearer(issuer.mint()))).status_code == 200
        assert (await gateway.get("/users/me", headers=bearer("not-a-token"))).status_code == 401
