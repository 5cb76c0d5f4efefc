"""The connection watch opens a Redis gate when Redis dies, before any request uses Redis, and
never because Redis is slow to reach."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis
from testcontainers.community.redis import RedisContainer

from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.events import run_in_background
from gatehouse_common.redis_watch import ANSWER_MARGIN_SECONDS, BLOCK_SECONDS, RedisConnectionWatch
from gatehouse_testing import containers
from gatehouse_testing.network import free_port
from gatehouse_testing.plugin import Eventually

INTERVAL = 0.1
KEY = "test:connection-watch"
NAME = "test-watch"


def _watch(
    redis_url: str, gate: AvailabilityGate, block_seconds: float = BLOCK_SECONDS
) -> RedisConnectionWatch:
    return RedisConnectionWatch(
        redis_url,
        gate,
        key=KEY,
        client_name=NAME,
        connect_timeout_seconds=0.5,
        retry_interval_seconds=INTERVAL,
        block_seconds=block_seconds,
    )


@asynccontextmanager
async def watched(
    redis_url: str, block_seconds: float = BLOCK_SECONDS
) -> AsyncIterator[AvailabilityGate]:
    """A gate for the Redis at ``redis_url`` (probed by PING), and its watch running."""
    probing = Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        async with (
            AvailabilityGate("redis", INTERVAL, probe=probing.ping) as gate,
            run_in_background(_watch(redis_url, gate, block_seconds)),
        ):
            yield gate
    finally:
        await probing.aclose()


@pytest.fixture
async def admin(dedicated_redis: RedisContainer) -> AsyncIterator[Redis]:
    """A client of the test's Redis that is not the watch."""
    client = Redis.from_url(containers.redis_url(dedicated_redis))
    yield client
    await client.aclose()


async def _watch_is_blocked(admin: Redis) -> bool:
    clients = await admin.client_list()
    return any(c["name"] == NAME and c["cmd"] == "blpop" and "b" in c["flags"] for c in clients)


async def test_a_killed_redis_opens_the_gate_at_once_and_the_watch_resumes_when_it_is_back(
    dedicated_redis: RedisContainer, admin: Redis, eventually: Eventually
) -> None:
    container = dedicated_redis.get_wrapped_container()
    async with watched(containers.redis_url(dedicated_redis)) as gate:
        await eventually(lambda: _watch_is_blocked(admin))
        assert not gate.is_open

        # No command is sent to Redis by anyone but the watch and, once open, the probe.
        container.kill(signal="SIGKILL")
        await eventually(lambda: gate.is_open)

        container.start()
        await eventually(lambda: not gate.is_open)  # the gate's probe found it back
        await admin.connection_pool.disconnect()
        await eventually(lambda: _watch_is_blocked(admin))


async def test_a_read_without_an_answer_is_replaced_and_leaves_the_gate_alone(
    dedicated_redis: RedisContainer, admin: Redis, eventually: Eventually
) -> None:
    # Frozen past the block and its margin: the watch gives up on the connection (a dropped
    # one looks the same) without a verdict, and blocks on a new one once Redis answers.
    container = dedicated_redis.get_wrapped_container()
    # No request uses this gate: only the watch could open it.
    async with watched(containers.redis_url(dedicated_redis), block_seconds=0.1) as gate:
        await eventually(lambda: _watch_is_blocked(admin))
        ids_before = {c["id"] for c in await admin.client_list() if c["name"] == NAME}
        container.pause()
        try:
            await asyncio.sleep(ANSWER_MARGIN_SECONDS + 1)
        finally:
            container.unpause()
        assert not gate.is_open

        async def blocked_on_a_new_connection() -> bool:
            watching = {c["id"] for c in await admin.client_list() if c["name"] == NAME}
            return bool(watching) and not watching & ids_before

        await eventually(blocked_on_a_new_connection)


async def test_a_redis_it_cannot_reach_leaves_the_gate_closed() -> None:
    # Nothing listens there: every connect fails, which says nothing about a connection lost.
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with AvailabilityGate("redis", INTERVAL, probe=Redis.from_url(url).ping) as gate:
        watching = asyncio.create_task(_watch(url, gate).run())
        await asyncio.sleep(INTERVAL * 8)
        assert not gate.is_open
        assert not watching.done()  # still trying
        watching.cancel()


async def test_an_account_without_blpop_ends_the_watch_and_leaves_the_gate_closed(
    dedicated_redis: RedisContainer, admin: Redis
) -> None:
    user, password = f"no-blpop-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    await admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        categories=["-@all"],
        commands=["+ping", "+client|setname", "+select"],
        keys=["test:*"],
    )
    host_and_port = containers.redis_url(dedicated_redis).removeprefix("redis://")
    refused = f"redis://{user}:{password}@{host_and_port}"
    async with AvailabilityGate("redis", INTERVAL, probe=admin.ping) as gate:
        await asyncio.wait_for(_watch(refused, gate).run(), timeout=5)  # ends by itself
        assert not gate.is_open
