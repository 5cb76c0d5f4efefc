"""A Redis restart costs a pooled connection a reconnect, not a failed command."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from testcontainers.community.redis import RedisContainer

from gatehouse_common.redis_retry import retry_once_on_broken_connection

POOLED = 4


async def test_commands_after_a_restart_succeed_on_every_pooled_connection(
    dedicated_redis: RedisContainer,
) -> None:
    port = dedicated_redis.get_exposed_port(6379)
    client = Redis.from_url(
        f"redis://127.0.0.1:{port}/0",
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=retry_once_on_broken_connection(),
    )
    try:
        # POOLED connections in the pool (each blocking pop holds one), each left dead by
        # the restart.
        await asyncio.gather(*(client.blpop(["absent"], timeout=0.1) for _ in range(POOLED)))

        dedicated_redis.get_wrapped_container().kill(signal="SIGKILL")
        dedicated_redis.get_wrapped_container().start()
        dedicated_redis.get_client().ping()

        for number in range(POOLED * 2):
            assert await client.set(f"key{number}", "value")
    finally:
        await client.aclose()
