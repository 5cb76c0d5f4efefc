"""Redis stopped or frozen mid-test: reads and writes keep answering 200 from PostgreSQL.

Uses its own Redis container (not the session's shared one), published on a fixed port so
that the service's Redis URL still points at it after a restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable

import httpx2
import pytest
from prometheus_client import REGISTRY
from testcontainers.community.redis import RedisContainer

from gatehouse_testing.network import free_port
from services.users.tests.support import AppStarter, Authorizer, SettingsFactory

RETRY_INTERVAL = 1.0
CACHE_TIMEOUT = 0.5
# A command waiting this long has the gate ping Redis, bounded by the second: a frozen Redis
# is skipped well before the commands' own timeout.
STALL_SECONDS = 0.05
STALL_PROBE_SECONDS = 0.15
# Two bounded Redis commands at most before the circuit opens, plus PostgreSQL and slack.
SLOWEST_ANSWER = 4 * CACHE_TIMEOUT + 1.0
# Readers at once: as many pooled Redis connections.
CONCURRENCY = 12
# From Redis answering again to the cache serving hits: the retry interval and slack.
RECOVERY_SECONDS = RETRY_INTERVAL + 2.0


@pytest.fixture
async def client(
    dedicated_redis: RedisContainer, make_settings: SettingsFactory, start_app: AppStarter
) -> AsyncIterator[httpx2.AsyncClient]:
    port = dedicated_redis.get_exposed_port(6379)
    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{port}/0",
        cache_timeout_seconds=CACHE_TIMEOUT,
        cache_retry_interval_seconds=RETRY_INTERVAL,
        cache_stall_seconds=STALL_SECONDS,
        cache_stall_probe_seconds=STALL_PROBE_SECONDS,
    )
    async with start_app(settings) as client:
        yield client


def cache_errors() -> float:
    return sum(
        REGISTRY.get_sample_value("users_cache_errors_total", {"operation": operation}) or 0.0
        for operation in ("read", "fill", "invalidate")
    )


def cache_skips() -> float:
    """Commands that failed, and those skipped because the gate was open or opened."""
    return cache_errors() + sum(
        REGISTRY.get_sample_value("users_cache_bypassed_total", {"operation": operation}) or 0.0
        for operation in ("read", "fill", "invalidate")
    )


async def timed(request: Awaitable[httpx2.Response]) -> httpx2.Response:
    started = time.perf_counter()
    response: httpx2.Response = await request
    assert time.perf_counter() - started < SLOWEST_ANSWER
    assert response.status_code == 200, response.text
    return response


async def cached_profile(client: httpx2.AsyncClient, auth: Authorizer, bio: str) -> uuid.UUID:
    """A profile with ``bio``, read twice so that it sits in the cache."""
    owner = uuid.uuid4()
    await timed(client.patch("/users/me", json={"bio": bio}, headers=auth(owner)))
    for _ in range(2):
        await timed(client.get("/users/me", headers=auth(owner)))
        await timed(client.get(f"/users/{owner}", headers=auth()))
    return owner


async def reads_and_writes_answer(
    client: httpx2.AsyncClient, auth: Authorizer, owner: uuid.UUID
) -> None:
    for round_number in range(3):
        bio = f"written without Redis {round_number}"
        patched = await timed(client.patch("/users/me", json={"bio": bio}, headers=auth(owner)))
        assert patched.json()["bio"] == bio
        own = await timed(client.get("/users/me", headers=auth(owner)))
        public = await timed(client.get(f"/users/{owner}", headers=auth()))
        assert own.json()["bio"] == public.json()["bio"] == bio
    newcomer = await timed(client.get("/users/me", headers=auth()))
    assert newcomer.json()["bio"] == ""


async def after_recovery_reads_are_fresh_and_cached(
    client: httpx2.AsyncClient, auth: Authorizer, owner: uuid.UUID
) -> None:
    await asyncio.sleep(RETRY_INTERVAL + 0.2)
    hits = REGISTRY.get_sample_value("users_cache_hits_total") or 0.0
    for _ in range(3):
        # The profile cached before the outage must not come back: it was written since.
        own = await timed(client.get("/users/me", headers=auth(owner)))
        assert own.json()["bio"] == "written without Redis 2"
    assert (REGISTRY.get_sample_value("users_cache_hits_total") or 0.0) > hits


async def test_redis_stopped_mid_test(
    client: httpx2.AsyncClient, auth: Authorizer, dedicated_redis: RedisContainer
) -> None:
    owner = await cached_profile(client, auth, "cached before the outage")
    errors = cache_errors()

    dedicated_redis.get_wrapped_container().stop(timeout=1)
    await reads_and_writes_answer(client, auth, owner)
    assert cache_errors() > errors

    dedicated_redis.get_wrapped_container().start()
    dedicated_redis.get_client().ping()
    await after_recovery_reads_are_fresh_and_cached(client, auth, owner)


async def test_redis_frozen_mid_test(
    client: httpx2.AsyncClient, auth: Authorizer, dedicated_redis: RedisContainer
) -> None:
    # A paused container accepts nothing and answers nothing: every command waits until the
    # gate's ping, unanswered too, opens the gate.
    owner = await cached_profile(client, auth, "cached before the outage")
    skips = cache_skips()

    dedicated_redis.get_wrapped_container().pause()
    try:
        await reads_and_writes_answer(client, auth, owner)
    finally:
        dedicated_redis.get_wrapped_container().unpause()
    assert cache_skips() > skips

    # Redis kept its data, including the entry cached before the writes above.
    await after_recovery_reads_are_fresh_and_cached(client, auth, owner)


async def test_the_service_starts_while_redis_is_down(
    make_settings: SettingsFactory, start_app: AppStarter, auth: Authorizer
) -> None:
    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", cache_timeout_seconds=CACHE_TIMEOUT
    )
    async with start_app(settings) as client:
        owner = uuid.uuid4()
        await timed(client.patch("/users/me", json={"bio": "no cache"}, headers=auth(owner)))
        own = await timed(client.get("/users/me", headers=auth(owner)))
        assert own.json()["bio"] == "no cache"
        assert (await client.get("/ready")).status_code == 200


def cache_hits() -> float:
    return REGISTRY.get_sample_value("users_cache_hits_total") or 0.0


async def test_redis_restarted_the_cache_serves_hits_again_within_seconds(
    client: httpx2.AsyncClient, auth: Authorizer, dedicated_redis: RedisContainer
) -> None:
    owners = [await cached_profile(client, auth, f"cached {n}") for n in range(CONCURRENCY)]

    async def read_all() -> None:
        # Concurrent reads keep CONCURRENCY connections in the pool, each of which the restart
        # leaves dead.
        await asyncio.gather(
            *(timed(client.get(f"/users/{owner}", headers=auth())) for owner in owners)
        )

    await read_all()
    dedicated_redis.get_wrapped_container().restart(timeout=1)
    dedicated_redis.get_client().ping()
    back_at = time.perf_counter()

    # Back within a few seconds of Redis answering, whatever was pooled before.
    while True:
        hits = cache_hits()
        await read_all()
        if cache_hits() >= hits + CONCURRENCY:
            break
        assert time.perf_counter() - back_at < RECOVERY_SECONDS, "the cache did not come back"
        await asyncio.sleep(0.1)

    # And it stays back: no pooled connection left over from before fails a command later.
    errors = cache_errors()
    hits = cache_hits()
    for _ in range(5):
        await read_all()
    assert cache_errors() == errors
    assert cache_hits() == hits + 5 * CONCURRENCY


async def test_redis_killed_while_profiles_change_the_cache_returns_fresh(
    client: httpx2.AsyncClient, auth: Authorizer, dedicated_redis: RedisContainer
) -> None:
    owners = [await cached_profile(client, auth, "before the kill") for _ in range(CONCURRENCY)]
    container = dedicated_redis.get_wrapped_container()
    container.kill()
    # Every profile changes while Redis is away: a backlog of writes to announce.
    for owner in owners:
        await timed(client.patch("/users/me", json={"bio": "while killed"}, headers=auth(owner)))
    container.start()
    dedicated_redis.get_client().ping()
    back_at = time.perf_counter()

    async def read_all() -> list[str]:
        responses = await asyncio.gather(
            *(timed(client.get(f"/users/{owner}", headers=auth())) for owner in owners)
        )
        return [response.json()["bio"] for response in responses]

    while True:
        hits = cache_hits()
        assert await read_all() == ["while killed"] * CONCURRENCY
        if cache_hits() >= hits + CONCURRENCY:
            break
        assert time.perf_counter() - back_at < RECOVERY_SECONDS, "the cache did not come back"
        await asyncio.sleep(0.1)
    errors = cache_errors()
    for _ in range(3):
        assert await read_all() == ["while killed"] * CONCURRENCY
    assert cache_errors() == errors


async def test_a_frozen_redis_costs_a_timeout_only_to_the_first_reads(
    client: httpx2.AsyncClient, auth: Authorizer, dedicated_redis: RedisContainer
) -> None:
    owners = [await cached_profile(client, auth, "cached") for _ in range(CONCURRENCY)]
    dedicated_redis.get_wrapped_container().pause()
    try:
        started = time.perf_counter()
        await timed(client.get(f"/users/{owners[0]}", headers=auth()))  # opens the gate
        # Cut short by the gate's stall check, not ended by the command's own timeout.
        assert time.perf_counter() - started < CACHE_TIMEOUT
        errors = cache_errors()
        started = time.perf_counter()
        while time.perf_counter() - started < 2.5 * RETRY_INTERVAL:
            await asyncio.gather(
                *(timed(client.get(f"/users/{owner}", headers=auth())) for owner in owners)
            )
        # The gate pings the frozen Redis itself: no read is a trial that waits a timeout.
        assert cache_errors() == errors
    finally:
        dedicated_redis.get_wrapped_container().unpause()
