"""The cache's gate tells a slow Redis from a frozen one: a command that timed out while Redis
still answers leaves the cache in use (a frozen Redis opens the gate: test_redis_outage.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from gatehouse_testing.network import TcpProxy
from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.profiles.schemas import ProfileRead
from services.users.tests.support import SettingsFactory

TIMEOUT = 0.5
STALL_SECONDS = 0.25
STALL_PROBE = 1.5
# Past the commands' bound, well within the gate's ping's: Redis answers, late.
REPLY_DELAY = 0.8
# Long enough that a gate opened by the timeout would still be open when the test reads again.
RETRY_INTERVAL = 60.0


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    target = urlsplit(redis_url)
    assert target.hostname is not None
    assert target.port is not None
    proxy = TcpProxy(target.hostname, target.port)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def profile_cache(
    proxy: TcpProxy, make_settings: SettingsFactory
) -> AsyncIterator[ProfileCache]:
    url = f"redis://127.0.0.1:{proxy.port}/0"
    cache = ProfileCache.from_settings(
        make_settings(
            redis_url=url,
            cache_timeout_seconds=TIMEOUT,
            cache_retry_interval_seconds=RETRY_INTERVAL,
            cache_stall_seconds=STALL_SECONDS,
            cache_stall_probe_seconds=STALL_PROBE,
        )
    )
    cache.start(url)
    yield cache
    await cache.close()


async def test_a_command_that_timed_out_on_a_slow_redis_leaves_the_cache_in_use(
    proxy: TcpProxy, profile_cache: ProfileCache
) -> None:
    profile_id = uuid.uuid4()
    now = datetime.now(UTC)
    cached = ProfileRead(
        id=profile_id, email=None, display_name="x", bio="cached", created_at=now, updated_at=now
    )
    await profile_cache.fill(await profile_cache.read(profile_id), cached)
    assert (await profile_cache.read(profile_id)).profile == cached
    await asyncio.sleep(0.2)  # the probe's own connection, opened at start, is up

    proxy.reply_delay_seconds = REPLY_DELAY
    # Past its bound: that read goes on without the cache, and the gate pings Redis.
    assert (await profile_cache.read(profile_id)).profile is None
    await asyncio.sleep(STALL_PROBE)  # the ping has had its (late) answer
    proxy.reply_delay_seconds = 0.0

    # A timeout alone used to open the gate, and the cache stayed skipped for an interval.
    assert (await profile_cache.read(profile_id)).profile == cached
