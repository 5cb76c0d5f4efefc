"""The cache never serves a stale profile after a write has returned, even under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx2
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.profiles.schemas import ProfileRead
from services.users.tests.support import Authorizer, SettingsFactory


@pytest.fixture
async def profile_cache(
    make_settings: SettingsFactory, redis_url: str
) -> AsyncIterator[ProfileCache]:
    cache = ProfileCache.from_settings(make_settings())
    cache.start(redis_url)
    yield cache
    await cache.close()


def profile(profile_id: uuid.UUID, bio: str) -> ProfileRead:
    now = datetime.now(UTC)
    return ProfileRead(
        id=profile_id, email=None, display_name="x", bio=bio, created_at=now, updated_at=now
    )


async def test_a_read_that_began_before_a_write_cannot_cache_the_old_row(
    profile_cache: ProfileCache,
) -> None:
    profile_id = uuid.uuid4()
    slow_read = await profile_cache.read(profile_id)  # a read starts and misses...
    assert slow_read.profile is None
    await profile_cache.invalidate(profile_id)  # ...a write commits and invalidates...
    await profile_cache.fill(slow_read, profile(profile_id, "old"))  # ...the read fills late.

    later = await profile_cache.read(profile_id)

    assert later.profile is None
    await profile_cache.fill(later, profile(profile_id, "new"))
    cached = (await profile_cache.read(profile_id)).profile
    assert cached is not None
    assert cached.bio == "new"


async def test_a_late_fill_over_a_newer_entry_is_a_miss_not_the_old_row(
    profile_cache: ProfileCache,
) -> None:
    profile_id = uuid.uuid4()
    slow_read = await profile_cache.read(profile_id)  # a read starts and misses...
    await profile_cache.invalidate(profile_id)  # ...a write commits and invalidates...
    fresh_read = await profile_cache.read(profile_id)  # ...a later read caches the new row...
    await profile_cache.fill(fresh_read, profile(profile_id, "new"))
    cached = (await profile_cache.read(profile_id)).profile
    assert cached is not None
    assert cached.bio == "new"
    # ...and the slow read's fill lands last, over the one entry the profile has.
    await profile_cache.fill(slow_read, profile(profile_id, "old"))

    assert (await profile_cache.read(profile_id)).profile is None


async def test_a_write_made_again_while_its_announcement_is_in_flight_is_announced_again(
    profile_cache: ProfileCache,
    make_settings: SettingsFactory,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other_process = ProfileCache.from_settings(make_settings())
    other_process.start(redis_url)
    profile_id = uuid.uuid4()
    # The first write's announcement stalls between its new version and the entry's deletion.
    release = asyncio.Event()
    redis = profile_cache._redis
    assert redis is not None
    unlink = redis.unlink

    async def stalled_unlink(*keys: str) -> None:
        await release.wait()
        await unlink(*keys)

    monkeypatch.setattr(redis, "unlink", stalled_unlink)
    try:
        first_write = asyncio.create_task(profile_cache.invalidate(profile_id))
        await asyncio.sleep(0.1)
        # Another process reads under the first write's version and loads the row before
        # the second write commits...
        slow_read = await other_process.read(profile_id)
        # ...which commits now, while the first announcement is still in flight.
        second_write = asyncio.create_task(profile_cache.invalidate(profile_id))
        await asyncio.sleep(0.1)
        release.set()
        await asyncio.gather(first_write, second_write)

        await other_process.fill(slow_read, profile(profile_id, "before the second write"))
        assert (await other_process.read(profile_id)).profile is None
    finally:
        await other_process.close()


async def test_invalidation_makes_the_cached_entry_unreadable(profile_cache: ProfileCache) -> None:
    profile_id = uuid.uuid4()
    lookup = await profile_cache.read(profile_id)
    await profile_cache.fill(lookup, profile(profile_id, "cached"))
    assert (await profile_cache.read(profile_id)).profile is not None

    await profile_cache.invalidate(profile_id)

    assert (await profile_cache.read(profile_id)).profile is None


async def test_concurrent_patches_and_gets_never_read_stale(
    client: httpx2.AsyncClient, auth: Authorizer, users_engine: AsyncEngine
) -> None:
    owner = uuid.uuid4()
    headers = auth(owner)
    await client.get("/users/me", headers=headers)
    writing = True
    reads = 0

    async def keep_reading() -> None:
        # Readers race the writer, refilling the cache while writes commit.
        nonlocal reads
        while writing:
            for path in ("/users/me", f"/users/{owner}"):
                assert (await client.get(path, headers=headers)).status_code == 200
                reads += 1

    async def write_then_read(rounds: int) -> None:
        nonlocal writing
        try:
            for round_number in range(rounds):
                bio = f"round {round_number}"
                patched = await client.patch("/users/me", json={"bio": bio}, headers=headers)
                assert patched.status_code == 200
                # The write has returned: every read from now on must see it.
                own = await client.get("/users/me", headers=headers)
                public = await client.get(f"/users/{owner}", headers=headers)
                assert own.json()["bio"] == bio
                assert public.json()["bio"] == bio
        finally:
            writing = False

    async with asyncio.timeout(120):
        await asyncio.gather(write_then_read(40), *(keep_reading() for _ in range(6)))
    assert reads > 40

    # Then several writers at once: afterwards every read returns the last committed value.
    responses = await asyncio.gather(
        *(
            client.patch("/users/me", json={"bio": f"writer {n}"}, headers=headers)
            for n in range(10)
        ),
        *(client.get(f"/users/{owner}", headers=headers) for _ in range(10)),
    )
    assert {response.status_code for response in responses} == {200}
    async with users_engine.connect() as connection:
        committed = await connection.scalar(
            text("select bio from profiles where id = :id"), {"id": str(owner)}
        )
    for _ in range(3):
        assert (await client.get("/users/me", headers=headers)).json()["bio"] == committed
        assert (await client.get(f"/users/{owner}", headers=headers)).json()["bio"] == committed
