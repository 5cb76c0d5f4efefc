"""Events users consumes: registrations make profiles; revocations refuse tokens.

Events are published with the kit, as auth does, to the real ``events:auth`` stream; the
app's own consumer group (``users``) and revocation feed pick them up.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatehouse_common.events import AUTH_STREAM, AccountRegistered, Event, dead_letter_stream
from gatehouse_common.events.entries import range_entries
from gatehouse_common.events.entries import text as entry_text
from gatehouse_testing.events import (
    account_erased,
    logins_revoked,
    logins_revoked_before,
    publish,
)
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.plugin import Eventually
from gatehouse_testing.problems import assert_problem, bearer
from services.users.tests.support import AppStarter, Authorizer, SettingsFactory

Handled = Callable[..., Awaitable[None]]


def registered(user_id: uuid.UUID, display_name: str | None = "Ada") -> Event[AccountRegistered]:
    return Event.of(
        AccountRegistered(
            user_id=user_id, email=f"ada-{user_id.hex[:6]}@example.com", display_name=display_name
        ),
        producer="auth",
    )


async def stored_profile(engine: AsyncEngine, user_id: uuid.UUID) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("select * from profiles where id = :id"), {"id": str(user_id)}
        )
        return [dict(row) for row in rows.mappings()]


@pytest.fixture
def handled(events_redis: Redis, users_engine: AsyncEngine, eventually: Eventually) -> Handled:
    """``await handled(*events)``: publish the events; return once users has handled them."""

    async def publish_and_wait(*events: Event[Any]) -> None:
        for event in events:
            await publish(events_redis, event)
        # One group reads the stream in order: once the marker's profile exists, every event
        # published before it has been handled.
        marker = uuid.uuid4()
        await publish(events_redis, registered(marker))

        async def marker_created() -> bool:
            return len(await stored_profile(users_engine, marker)) == 1

        await eventually(marker_created)

    return publish_and_wait


# --- account.registered ------------------------------------------------------------------------


async def test_a_registration_creates_the_profile_with_its_display_name(
    client: httpx2.AsyncClient, auth: Authorizer, events_redis: Redis, eventually: Eventually
) -> None:
    user_id = uuid.uuid4()

    await publish(events_redis, registered(user_id, display_name="Ada Lovelace"))

    async def created() -> bool:
        return (await client.get(f"/users/{user_id}", headers=auth())).status_code == 200

    await eventually(created)  # the contract allows 5 s; eventually fails after 10
    profile = (await client.get(f"/users/{user_id}", headers=auth())).json()
    assert profile["display_name"] == "Ada Lovelace"


async def test_a_registration_without_a_display_name_uses_the_email_local_part(
    client: httpx2.AsyncClient,
    users_engine: AsyncEngine,
    events_redis: Redis,
    eventually: Eventually,
) -> None:
    user_id = uuid.uuid4()
    event = registered(user_id, display_name=None)

    await publish(events_redis, event)

    async def created() -> bool:
        return len(await stored_profile(users_engine, user_id)) == 1

    await eventually(created)
    [row] = await stored_profile(users_engine, user_id)
    assert row["display_name"] == event.payload.email.split("@")[0]
    assert row["email"] == event.payload.email


async def test_the_same_registration_twice_makes_one_profile(
    client: httpx2.AsyncClient, users_engine: AsyncEngine, handled: Handled
) -> None:
    user_id = uuid.uuid4()
    event = registered(user_id)
    # A republished event (same id), and another event for the same user (another id).
    await handled(event, event, registered(user_id, display_name="Other"))
    [row] = await stored_profile(users_engine, user_id)
    assert row["display_name"] == "Ada"  # the first one made it; the others changed nothing


async def test_a_profile_made_by_a_first_request_is_kept(
    client: httpx2.AsyncClient, auth: Authorizer, handled: Handled
) -> None:
    user_id = uuid.uuid4()
    await client.patch("/users/me", json={"display_name": "Mine"}, headers=auth(user_id))

    await handled(registered(user_id, display_name="From auth"))
    assert (await client.get("/users/me", headers=auth(user_id))).json()["display_name"] == "Mine"


async def test_a_registration_after_the_erasure_creates_nothing(
    client: httpx2.AsyncClient, auth: Authorizer, users_engine: AsyncEngine, handled: Handled
) -> None:
    """Events are not ordered across streams: an erasure may overtake its registration."""
    user_id = uuid.uuid4()
    assert (await client.delete("/users/me", headers=auth(user_id))).status_code == 204

    await handled(registered(user_id))
    assert await stored_profile(users_engine, user_id) == []


async def dead_letters(redis: Redis, event_id: uuid.UUID) -> list[dict[str, str]]:
    entries = range_entries(await redis.xrange(dead_letter_stream(AUTH_STREAM)))
    letters = [
        {entry_text(key): entry_text(value) for key, value in fields.items()}
        for _, fields in entries
    ]
    return [letter for letter in letters if letter.get("id") == str(event_id)]


async def test_an_unreadable_registration_goes_to_the_dead_letter_stream(
    client: httpx2.AsyncClient, events_redis: Redis, eventually: Eventually
) -> None:
    event_id = uuid.uuid4()
    await events_redis.xadd(
        AUTH_STREAM,
        {
            "id": str(event_id),
            "type": AccountRegistered.event_type,
            "version": "1",
            "producer": "auth",
            "occurred_at": datetime.now(UTC).isoformat(),
            "payload": '{"user_id": "not-a-uuid", "email": "x@example.com"}',
        },
    )

    async def dead_lettered() -> bool:
        return len(await dead_letters(events_redis, event_id)) == 1

    await eventually(dead_lettered)
    [letter] = await dead_letters(events_redis, event_id)
    assert letter["dead_letter_group"] == "users"
    assert letter["dead_letter_reason"].startswith("malformed")


async def test_a_registration_that_keeps_failing_goes_to_the_dead_letter_stream(
    make_settings: SettingsFactory,
    start_app: AppStarter,
    users_engine: AsyncEngine,
    events_redis: Redis,
    eventually: Eventually,
) -> None:
    """A display name users refuses (auth should never send one): retried, then given up."""
    settings = make_settings(events_claim_min_idle_seconds=0.2, events_max_deliveries=2)
    user_id = uuid.uuid4()
    event = registered(user_id, display_name=" ")  # empty once trimmed

    async with start_app(settings):
        await publish(events_redis, event)

        async def dead_lettered() -> bool:
            return len(await dead_letters(events_redis, event.id)) == 1

        await eventually(dead_lettered)
    [letter] = await dead_letters(events_redis, event.id)
    assert letter["dead_letter_reason"] == "InvalidRegisteredDisplayName"
    assert int(letter["dead_letter_deliveries"]) >= 2
    assert await stored_profile(users_engine, user_id) == []


# --- revocation ---------------------------------------------------------------------------------


async def test_a_revoked_login_is_refused_within_seconds(
    client: httpx2.AsyncClient, issuer: TestIssuer, events_redis: Redis, eventually: Eventually
) -> None:
    user_id, session_id = uuid.uuid4(), str(uuid.uuid4())
    revoked = issuer.mint(str(user_id), claims={"sid": session_id})
    other_login = issuer.mint(str(user_id), claims={"sid": str(uuid.uuid4())})
    assert (await client.get("/users/me", headers=bearer(revoked))).status_code == 200

    await publish(events_redis, logins_revoked(user_id, session_id))

    async def refused() -> bool:
        return (await client.get("/users/me", headers=bearer(revoked))).status_code == 401

    await eventually(refused)
    response = await client.get("/users/me", headers=bearer(revoked))
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert (await client.get("/users/me", headers=bearer(other_login))).status_code == 200


async def test_an_erased_account_has_every_earlier_token_refused(
    client: httpx2.AsyncClient, issuer: TestIssuer, events_redis: Redis, eventually: Eventually
) -> None:
    """``account.erased`` from the stream (another replica erased the account)."""
    user_id = uuid.uuid4()
    tokens = [issuer.mint(str(user_id), claims={"sid": str(uuid.uuid4())}) for _ in range(2)]
    # As users' relay publishes it, from another replica.
    await publish(events_redis, account_erased(user_id))

    async def refused() -> bool:
        # A read that creates nothing: 404 while the token is accepted, 401 once refused.
        statuses = {
            (await client.get(f"/users/{user_id}", headers=bearer(token))).status_code
            for token in tokens
        }
        return statuses == {401}

    await eventually(refused)


async def test_a_whole_user_revocation_refuses_tokens_issued_before_it(
    client: httpx2.AsyncClient, issuer: TestIssuer, events_redis: Redis, eventually: Eventually
) -> None:
    user_id = uuid.uuid4()
    now = int(datetime.now(UTC).timestamp())
    before = issuer.mint(str(user_id), claims={"iat": now - 60, "exp": now + 600})
    after = issuer.mint(str(user_id), claims={"iat": now, "exp": now + 600})

    await publish(
        events_redis, logins_revoked_before(user_id, datetime.fromtimestamp(now - 1, UTC))
    )

    async def refused() -> bool:
        return (await client.get("/users/me", headers=bearer(before))).status_code == 401

    await eventually(refused)
    assert (await client.get("/users/me", headers=bearer(after))).status_code == 200


async def test_a_service_started_after_the_revocation_refuses_the_token(
    make_settings: SettingsFactory, start_app: AppStarter, issuer: TestIssuer, events_redis: Redis
) -> None:
    user_id, session_id = uuid.uuid4(), str(uuid.uuid4())
    token = issuer.mint(str(user_id), claims={"sid": session_id})
    await publish(events_redis, logins_revoked(user_id, session_id, reason="revoked"))

    async with start_app(make_settings()) as client:  # replays the stream before serving
        response = await client.get("/users/me", headers=bearer(token))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
