"""Erasure: DELETE /users/me and the admin DELETE /users/{id}, through the outbox.

The profile is deleted and ``account.erased`` recorded in one transaction; the relay publishes
it to ``events:users``, also when it could not when the request committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx2
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatehouse_common.events import USERS_STREAM, AccountErased, decode
from gatehouse_common.events.entries import range_entries
from gatehouse_testing.plugin import Eventually
from gatehouse_testing.problems import assert_problem
from gatehouse_users import outbox
from gatehouse_users.database import open_database
from gatehouse_users.outbox import PostgresOutbox
from services.users.tests.support import AppStarter, Authorizer, SettingsFactory

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"

ErasureRelayed = Callable[[uuid.UUID], Awaitable[None]]
Eraser = Callable[[httpx2.AsyncClient, Authorizer, uuid.UUID], Awaitable[httpx2.Response]]


async def erasures_of(redis: Redis, user_id: uuid.UUID) -> list[AccountErased]:
    """The ``account.erased`` events for ``user_id`` on events:users."""
    found = []
    for _, fields in range_entries(await redis.xrange(USERS_STREAM)):
        event = decode(fields)
        if isinstance(event.payload, AccountErased) and event.payload.user_id == user_id:
            found.append(event.payload)
    return found


async def count(engine: AsyncEngine, sql: str, user_id: uuid.UUID) -> int:
    async with engine.connect() as connection:
        value = await connection.scalar(text(sql), {"id": str(user_id)})
    return int(value or 0)


async def profile_count(engine: AsyncEngine, user_id: uuid.UUID) -> int:
    return await count(engine, "select count(*) from profiles where id = :id", user_id)


async def outbox_count(engine: AsyncEngine, user_id: uuid.UUID) -> int:
    return await count(
        engine, "select count(*) from outbox where payload->>'user_id' = :id", user_id
    )


@pytest.fixture
def erasure_relayed(
    users_engine: AsyncEngine, events_redis: Redis, eventually: Eventually
) -> ErasureRelayed:
    """``await erasure_relayed(user_id)``: wait until the relay has published the erasure once."""

    async def wait(user_id: uuid.UUID) -> None:
        async def published() -> bool:
            return len(await erasures_of(events_redis, user_id)) == 1

        await eventually(published)

        async def outbox_emptied() -> bool:  # the outbox row is deleted once published
            return await outbox_count(users_engine, user_id) == 0

        await eventually(outbox_emptied)

    return wait


async def erase_yourself(
    client: httpx2.AsyncClient, auth: Authorizer, owner: uuid.UUID
) -> httpx2.Response:
    return await client.delete("/users/me", headers=auth(owner))


async def erase_as_administrator(
    client: httpx2.AsyncClient, auth: Authorizer, owner: uuid.UUID
) -> httpx2.Response:
    return await client.delete(f"/users/{owner}", headers=auth(scopes="admin"))


@pytest.mark.parametrize("erase", [erase_yourself, erase_as_administrator])
async def test_an_erasure_deletes_the_profile_and_publishes_the_erasure(
    client: httpx2.AsyncClient,
    auth: Authorizer,
    users_engine: AsyncEngine,
    erasure_relayed: ErasureRelayed,
    erase: Eraser,
) -> None:
    owner = uuid.uuid4()
    await client.get("/users/me", headers=auth(owner))
    # Read twice: the second answer comes from the cache, which the erasure must invalidate.
    for _ in range(2):
        assert (await client.get(f"/users/{owner}", headers=auth())).status_code == 200

    response = await erase(client, auth, owner)

    assert response.status_code == 204
    assert response.content == b""
    assert await profile_count(users_engine, owner) == 0
    assert_problem(await client.get(f"/users/{owner}", headers=auth()), 404)
    # Gone for everyone: nothing left for an administrator to erase; the owner's token refused.
    assert_problem(await client.delete(f"/users/{owner}", headers=auth(scopes="admin")), 404)
    assert_problem(await client.get("/users/me", headers=auth(owner)), 401)
    await erasure_relayed(owner)


async def test_erasing_yourself_without_a_profile_still_erases_the_account(
    client: httpx2.AsyncClient, auth: Authorizer, erasure_relayed: ErasureRelayed
) -> None:
    owner = uuid.uuid4()

    assert (await erase_yourself(client, auth, owner)).status_code == 204

    await erasure_relayed(owner)


async def test_a_token_of_an_erased_account_never_recreates_the_profile(
    client: httpx2.AsyncClient, auth: Authorizer, users_engine: AsyncEngine
) -> None:
    owner = uuid.uuid4()
    await client.patch("/users/me", json={"bio": "old"}, headers=auth(owner))
    assert (await client.delete("/users/me", headers=auth(owner))).status_code == 204

    # A token issued before the erasure: refused whether or not the revocation arrived yet.
    for response in (
        await client.get("/users/me", headers=auth(owner)),
        await client.patch("/users/me", json={"bio": "new"}, headers=auth(owner)),
    ):
        body = assert_problem(response, 401)
        assert "invalid_token" in response.headers["www-authenticate"]
        assert body["type"].endswith("invalid-token")
    assert await profile_count(users_engine, owner) == 0


async def test_erasing_twice_records_one_erasure(
    client: httpx2.AsyncClient, auth: Authorizer, events_redis: Redis, eventually: Eventually
) -> None:
    owner = uuid.uuid4()
    token = auth(owner)
    assert (await client.delete("/users/me", headers=token)).status_code == 204
    second = await client.delete("/users/me", headers=token)
    assert second.status_code in {204, 401}  # 401 once the revocation has arrived

    async def published() -> bool:
        return len(await erasures_of(events_redis, owner)) >= 1

    await eventually(published)
    assert len(await erasures_of(events_redis, owner)) == 1


async def test_an_administrator_erasing_nobody_gets_404_and_records_nothing(
    client: httpx2.AsyncClient, auth: Authorizer, users_engine: AsyncEngine
) -> None:
    nobody = uuid.uuid4()
    assert_problem(await client.delete(f"/users/{nobody}", headers=auth(scopes="admin")), 404)
    assert await outbox_count(users_engine, nobody) == 0
    assert (
        await count(
            users_engine, "select count(*) from erased_accounts where user_id = :id", nobody
        )
        == 0
    )
    # Not erased: the user can still get a profile.
    assert (await client.get("/users/me", headers=auth(nobody))).status_code == 200


async def test_an_erasure_committed_while_the_channel_is_down_is_published_after_a_restart(
    make_settings: SettingsFactory,
    start_app: AppStarter,
    auth: Authorizer,
    *,
    users_engine: AsyncEngine,
    events_redis: Redis,
    erasure_relayed: ErasureRelayed,
) -> None:
    """The process stops between the commit and the publish: the event waits in the outbox."""
    owner = uuid.uuid4()
    cut_off = make_settings(
        events_redis_url=UNREACHABLE_REDIS,
        events_redis_timeout_seconds=0.2,
        revocation_replay_wait_seconds=0.2,
    )
    async with start_app(cut_off) as client:
        await client.get("/users/me", headers=auth(owner))
        assert (await client.delete("/users/me", headers=auth(owner))).status_code == 204
    assert await profile_count(users_engine, owner) == 0
    assert await outbox_count(users_engine, owner) == 1
    assert await erasures_of(events_redis, owner) == []

    async with start_app(make_settings()):
        await erasure_relayed(owner)


async def test_two_relays_never_hold_the_same_outbox_rows(make_settings: SettingsFactory) -> None:
    """SKIP LOCKED: rows fetched by one relay are invisible to another until released."""
    async with open_database(make_settings()) as database:
        first, second = PostgresOutbox(database.sessions), PostgresOutbox(database.sessions)
        # Recorded directly: no app (and so no other relay) runs in this test.
        async with database.sessions.begin() as session:
            recorded = {
                outbox.record(session, AccountErased(user_id=uuid.uuid4())).id for _ in range(3)
            }
        try:
            held = {event.id for event in await first.fetch_unpublished(1)}
            seen_by_second = {event.id for event in await second.fetch_unpublished(1000)}
            assert len(held) == 1
            assert held.isdisjoint(seen_by_second)
            assert recorded <= held | seen_by_second
            await second.mark_published(list(seen_by_second))
            await first.close()  # released without being marked: relayed again later
            assert {event.id for event in await first.fetch_unpublished(1000)} == held
            await first.mark_published(list(held))
        finally:
            await first.close()
            await second.close()
