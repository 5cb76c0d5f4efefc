"""PostgreSQL saturated or down: 503 problem JSON within the pool timeout, never a hang, and
recovery on its own when the database is back.

Uses its own PostgreSQL container, published on a fixed port so the service's URL still
points at it after a restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx2
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from testcontainers.community.postgres import PostgresContainer

from gatehouse_testing.problems import assert_problem
from services.users.tests.support import AppStarter, Authorizer, SettingsFactory, alembic

POOL_SIZE = 2
MAX_OVERFLOW = 1
POOL_TIMEOUT = 1.0
RETRY_INTERVAL = 1.0  # USERS_DB_RETRY_INTERVAL_SECONDS's default


@pytest.fixture
async def database_url(dedicated_postgres: PostgresContainer) -> str:
    url: str = dedicated_postgres.get_connection_url()
    await alembic(url, "upgrade", "head")
    return url


# A pool that a few held connections exhaust; statements are never cut short.
SMALL_POOL: dict[str, Any] = {
    "db_pool_size": POOL_SIZE,
    "db_max_overflow": MAX_OVERFLOW,
    "db_pool_timeout_seconds": POOL_TIMEOUT,
    "db_connect_timeout_seconds": POOL_TIMEOUT,
    "db_command_timeout_seconds": 30,
}


@pytest.fixture
async def client(
    request: pytest.FixtureRequest,
    database_url: str,
    make_settings: SettingsFactory,
    start_app: AppStarter,
) -> AsyncIterator[httpx2.AsyncClient]:
    """The app on the dedicated PostgreSQL with ``SMALL_POOL``, or with the settings a test
    gives by parametrizing this fixture indirectly."""
    overrides: dict[str, Any] = getattr(request, "param", SMALL_POOL)
    async with start_app(make_settings(database_url=database_url, **overrides)) as client:
        yield client


async def timed(request: Awaitable[httpx2.Response]) -> tuple[httpx2.Response, float]:
    started = time.perf_counter()
    response: httpx2.Response = await request
    return response, time.perf_counter() - started


async def test_an_exhausted_pool_answers_503_after_the_pool_timeout(
    client: httpx2.AsyncClient, auth: Authorizer, database_url: str
) -> None:
    owner = uuid.uuid4()
    assert (await client.patch("/users/me", json={"bio": "0"}, headers=auth(owner))).is_success
    capacity = POOL_SIZE + MAX_OVERFLOW
    excess = 3

    locker = create_async_engine(database_url)
    try:
        async with locker.connect() as lock:
            # Hold the row so that every PATCH of it keeps its pooled connection while waiting.
            await lock.execute(
                text("select 1 from profiles where id = :id for update"), {"id": str(owner)}
            )
            requests = [
                asyncio.create_task(
                    timed(client.patch("/users/me", json={"bio": str(n)}, headers=auth(owner)))
                )
                for n in range(capacity + excess)
            ]
            finished, waiting = await asyncio.wait(requests, timeout=POOL_TIMEOUT + 3)
            assert len(finished) == excess
            assert len(waiting) == capacity
            for task in finished:
                response, elapsed = task.result()
                assert_problem(response, 503)
                assert POOL_TIMEOUT * 0.9 <= elapsed < POOL_TIMEOUT + 2
            await lock.rollback()
        async with asyncio.timeout(10):
            for response, _ in await asyncio.gather(*waiting):
                assert response.status_code == 200
    finally:
        await locker.dispose()

    # The pool is whole again.
    assert (await client.get(f"/users/{owner}", headers=auth())).status_code == 200


async def wait_until_accepting(database_url: str) -> None:
    engine = create_async_engine(database_url, connect_args={"timeout": 1})
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    async with engine.connect() as connection:
                        await connection.execute(text("select 1"))
                    return
                except Exception:  # noqa: BLE001 - any failure means not up yet
                    await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


async def patched_once_back(
    client: httpx2.AsyncClient, auth: Authorizer, owner: uuid.UUID, within: float
) -> httpx2.Response:
    """PATCH "back" until it succeeds: PostgreSQL answers again, and the service must follow
    by itself within ``within`` seconds (the gate's interval, then one trial)."""
    back_at = time.perf_counter()
    while True:
        response = await client.patch("/users/me", json={"bio": "back"}, headers=auth(owner))
        if response.status_code == 200:
            return response
        assert_problem(response, 503)
        assert time.perf_counter() - back_at < within, "PostgreSQL is back, the service is not"
        await asyncio.sleep(0.1)


async def cached_profiles(
    client: httpx2.AsyncClient, auth: Authorizer, count: int
) -> list[uuid.UUID]:
    """Owners of ``count`` new profiles, each with bio "cached" and in the cache."""
    owners = [uuid.uuid4() for _ in range(count)]
    for owner in owners:
        assert (
            await client.patch("/users/me", json={"bio": "cached"}, headers=auth(owner))
        ).is_success
        for _ in range(2):  # the first read fills the cache, the second is a hit
            assert (await client.get("/users/me", headers=auth(owner))).status_code == 200
    return owners


async def test_postgres_down_gives_503_and_the_service_recovers_by_itself(
    client: httpx2.AsyncClient,
    auth: Authorizer,
    dedicated_postgres: PostgresContainer,
    database_url: str,
) -> None:
    owner = uuid.uuid4()
    for _ in range(POOL_SIZE):  # fill the pool with connections that the restart will break
        assert (await client.patch("/users/me", json={"bio": "up"}, headers=auth(owner))).is_success

    dedicated_postgres.get_wrapped_container().stop(timeout=1)
    try:
        for request in (
            client.patch("/users/me", json={"bio": "down"}, headers=auth(owner)),
            client.get(f"/users/{uuid.uuid4()}", headers=auth()),
            client.get("/users", headers=auth(scopes="admin")),
        ):
            response, elapsed = await timed(request)
            body = assert_problem(response, 503)
            assert body["dependency"] == "postgres"
            assert elapsed < POOL_TIMEOUT + 2
        ready = await client.get("/ready")
        assert assert_problem(ready, 503)["failing"] == ["postgres"]
    finally:
        dedicated_postgres.get_wrapped_container().start()
    await wait_until_accepting(database_url)

    patched = await patched_once_back(client, auth, owner, within=RETRY_INTERVAL + 3)
    assert patched.json()["bio"] == "back"
    assert (await client.get(f"/users/{owner}", headers=auth())).json()["bio"] == "back"
    assert (await client.get("/ready")).status_code == 200


FAST_TIMEOUT = 0.5
GATE_INTERVAL = 0.5
FAIL_FAST: dict[str, Any] = {
    "db_connect_timeout_seconds": FAST_TIMEOUT,
    "db_command_timeout_seconds": FAST_TIMEOUT,
    "db_pool_timeout_seconds": FAST_TIMEOUT,
    "db_retry_interval_seconds": GATE_INTERVAL,
    "cache_retry_interval_seconds": GATE_INTERVAL,
}


@pytest.mark.parametrize("client", [FAIL_FAST], indirect=True)
@pytest.mark.parametrize("fault", ["stop", "pause"])
async def test_postgres_down_or_frozen_cached_reads_answer_and_the_rest_fail_fast(
    client: httpx2.AsyncClient,
    auth: Authorizer,
    dedicated_postgres: PostgresContainer,
    database_url: str,
    fault: str,
) -> None:
    owners = await cached_profiles(client, auth, 3)

    container = dedicated_postgres.get_wrapped_container()
    if fault == "stop":
        container.stop(timeout=1)
    else:
        container.pause()
    try:
        # The first request to need PostgreSQL finds out, within its timeouts.
        first, elapsed = await timed(
            client.patch("/users/me", json={"bio": "lost"}, headers=auth(owners[0]))
        )
        assert_problem(first, 503)
        assert elapsed < 3 * FAST_TIMEOUT + 1

        # Every answer is at once: the gate probes PostgreSQL itself, no request is a trial.
        slow_answers = 0
        started = time.perf_counter()
        while time.perf_counter() - started < 3 * GATE_INTERVAL:
            for owner in owners:
                # Cached profiles need no PostgreSQL: not even the create-on-first-use of /me.
                own, elapsed = await timed(client.get("/users/me", headers=auth(owner)))
                assert own.status_code == 200, own.text
                assert own.json()["bio"] == "cached"
                assert elapsed < 1
                public, elapsed = await timed(client.get(f"/users/{owner}", headers=auth()))
                assert public.status_code == 200
                assert elapsed < 1
            for request in (
                client.get(f"/users/{uuid.uuid4()}", headers=auth()),
                client.get("/users/me", headers=auth()),  # a newcomer: not cached
                client.patch("/users/me", json={"bio": "x"}, headers=auth(owners[1])),
            ):
                response, elapsed = await timed(request)
                assert assert_problem(response, 503)["dependency"] == "postgres"
                assert int(response.headers["retry-after"]) >= 1
                assert elapsed < 1
                slow_answers += elapsed > FAST_TIMEOUT / 2
        assert slow_answers <= 4
        ready, elapsed = await timed(client.get("/ready"))
        assert assert_problem(ready, 503)["failing"] == ["postgres"]
        assert elapsed < 1
    finally:
        if fault == "stop":
            container.start()
        else:
            container.unpause()
    await wait_until_accepting(database_url)

    await patched_once_back(client, auth, owners[1], within=GATE_INTERVAL + 3)
    assert (await client.get(f"/users/{owners[1]}", headers=auth())).json()["bio"] == "back"
    assert (await client.get("/ready")).status_code == 200
