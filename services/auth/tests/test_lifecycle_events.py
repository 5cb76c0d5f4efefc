"""auth's events: the outbox survives a stop between the write and the publish; account.erased
from users erases the identity (also when auth was stopped while it was published)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import httpx2
from pydantic import SecretStr
from redis.asyncio import Redis

from gatehouse_auth.account_email.repository import EmailTokenRepository
from gatehouse_auth.database import AuthDatabase
from gatehouse_auth.erasure import AccountEraser
from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_auth.main import create_app
from gatehouse_auth.sessions.repository import SessionRepository
from gatehouse_auth.settings import AuthSettings
from gatehouse_common.events import USERS_STREAM, AccountErased, Event, EventPublisher
from gatehouse_testing.mail import MailCatcher, token_in
from gatehouse_testing.network import free_port
from gatehouse_testing.problems import bearer
from services.auth.tests.support import (
    PASSWORD,
    AuthApi,
    SettingsFactory,
    auth_events,
    eventually,
    running,
    serving,
)

# Nothing listens here: the event channel is down.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


async def _publish_erasure(redis: Redis, user_id: str) -> Event[AccountErased]:
    """What users publishes when an account is erased."""
    event = Event.of(AccountErased(user_id=uuid.UUID(user_id)), producer="users")
    await EventPublisher(redis, stream=USERS_STREAM).publish(event)
    return event


async def test_registration_publishes_account_registered_with_the_display_name(
    api: AuthApi, events_redis: Redis
) -> None:
    user = await api.register(display_name="Ada Lovelace")

    async def published() -> bool:
        return bool(await auth_events(events_redis, user["id"], "account.registered"))

    await eventually(published, "account.registered is on events:auth")
    (event,) = await auth_events(events_redis, user["id"], "account.registered")
    assert event.producer == "auth"
    assert event.payload.email == user["email"]
    assert event.payload.display_name == "Ada Lovelace"


async def test_an_event_recorded_while_the_channel_is_down_is_published_after_a_restart(
    make_settings: SettingsFactory,
    database: AuthDatabase,
    events_redis: Redis,
) -> None:
    # The first process writes the change, cannot publish, and is stopped: as good as a crash
    # between the write and the publish, since nothing of it survives but MongoDB.
    async with serving(make_settings(events_redis_url=UNREACHABLE_REDIS)) as api:
        user = await api.register()
        tokens = await api.tokens(user["email"])
        assert (await api.revoke(tokens["refresh_token"])).status_code == 200
        ready = await api.client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["events"] == "degraded"
    stored = await database.identities.find_one({"_id": user["id"]})
    assert stored is not None
    assert stored["outbox_pending"] == 1
    assert await auth_events(events_redis, user["id"], "account.registered") == []

    async with running(create_app(make_settings())):

        async def published() -> bool:
            registered = await auth_events(events_redis, user["id"], "account.registered")
            revoked = await auth_events(events_redis, user["id"], "logins.revoked")
            return len(registered) == 1 and len(revoked) == 1

        await eventually(published, "the new process's relay publishes both events")

    stored = await database.identities.find_one({"_id": user["id"]})
    assert stored is not None
    assert stored["outbox_pending"] == 0
    assert stored["outbox"] == {}


async def test_a_process_killed_between_the_write_and_the_publish_loses_no_event(
    make_settings: SettingsFactory, database: AuthDatabase, events_redis: Redis
) -> None:
    settings = make_settings()
    port = free_port()
    # A real auth process whose event channel is down, so its relay cannot publish: the
    # registration is written, then the process is killed (SIGKILL, no shutdown at all).
    environment = {
        **os.environ,
        **{f"AUTH_{name.upper()}": str(value) for name, value in _environment(settings).items()},
        "AUTH_EVENTS_REDIS_URL": UNREACHABLE_REDIS,
        "AUTH_REVOCATION_REPLAY_WAIT_SECONDS": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "gatehouse_auth.main:create_app",
        "--port",
        str(port),
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def answers() -> bool:
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx2.TransportError:
                    return False

            await eventually(answers, "the auth process serves", seconds=30)
            response = await client.post(
                "/auth/register",
                json={"email": f"killed-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
            )
            assert response.status_code == 201, response.text
            user_id = response.json()["id"]
    finally:
        process.kill()
        await process.wait()
    assert await auth_events(events_redis, user_id, "account.registered") == []

    async with running(create_app(settings)):

        async def published() -> bool:
            return len(await auth_events(events_redis, user_id, "account.registered")) == 1

        await eventually(published, "the next process's relay publishes the event")


def _environment(settings: AuthSettings) -> dict[str, object]:
    """The settings as the process reads them: secrets revealed, everything a string."""
    values = settings.model_dump(
        include={
            "mongo_url",
            "mongo_database",
            "redis_url",
            "redis_key_prefix",
            "signing_keys_file",
            "issuer",
            "audience",
            "argon2_time_cost",
            "argon2_memory_cost_kib",
            "argon2_parallelism",
        }
    )
    return {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in values.items()
    }


async def test_account_erased_removes_the_identity_and_every_login(
    api: AuthApi, events_redis: Redis, database: AuthDatabase
) -> None:
    user = await api.register()
    tokens = await api.tokens(user["email"])

    await _publish_erasure(events_redis, user["id"])

    async def erased() -> bool:
        # Looked at in the database: a login attempt made while the erasure runs could start
        # a login after it (refused everywhere, but a leftover document for the test).
        return await database.email_tokens.count_documents({"user_id": user["id"]}) == 0

    await eventually(erased, "the erasure is handled")
    assert (await api.login(user["email"])).json()["error"] == "invalid_grant"
    assert (await api.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"
    refused = await api.sessions(tokens["access_token"])
    assert refused.status_code == 401
    assert await database.login_families.count_documents({"user_id": user["id"]}) == 0
    assert await database.refresh_tokens.count_documents({"user_id": user["id"]}) == 0
    assert await database.email_tokens.count_documents({"user_id": user["id"]}) == 0

    async def announced() -> bool:
        revoked = await auth_events(events_redis, user["id"], "logins.revoked")
        return [event.payload.reason for event in revoked] == ["erasure"]

    await eventually(announced, "logins.revoked (erasure) is on events:auth")
    again = await api.register(user["email"])
    assert again["id"] != user["id"]
    assert (await api.login(user["email"])).status_code == 200


async def test_an_erasure_published_while_auth_is_stopped_is_applied_when_it_starts(
    make_settings: SettingsFactory, events_redis: Redis
) -> None:
    settings = make_settings()
    async with serving(settings) as api:  # joins the group, then stops
        user = await api.register()
        tokens = await api.tokens(user["email"])

    await _publish_erasure(events_redis, user["id"])

    async with serving(settings) as api:

        async def erased() -> bool:
            response = await api.login(user["email"])
            return response.status_code == 400

        await eventually(erased, "the restarted auth applies the erasure")
        assert (await api.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"
        assert (await api.sessions(tokens["access_token"])).status_code == 401


async def test_handling_an_erasure_twice_changes_nothing_more(
    api: AuthApi, database: AuthDatabase
) -> None:
    user = await api.register()
    await api.tokens(user["email"])
    eraser = AccountEraser(
        database,
        IdentityRepository(database.identities),
        SessionRepository(database),
        EmailTokenRepository(database),
    )
    event = Event.of(AccountErased(user_id=uuid.UUID(user["id"])), producer="users")

    await eraser.handle(event)
    record = await database.erasures.find_one({"_id": user["id"]})
    await eraser.handle(event)

    assert await database.identities.find_one({"_id": user["id"]}) is None
    assert await database.erasures.find_one({"_id": user["id"]}) == record
    assert record is not None
    assert len(record["outbox"]) <= 1  # one event, unless the relay published it already


async def test_a_password_reset_revokes_every_login_and_announces_it(
    api: AuthApi, maildev: MailCatcher, events_redis: Redis, email_worker: object
) -> None:
    del email_worker  # running: it sends the reset email
    user = await api.register()
    tokens = await api.tokens(user["email"])
    assert (await api.forgot(user["email"])).status_code == 202
    emails = await maildev.wait_for_emails(user["email"], count=2)  # verification and reset
    (email,) = [e for e in emails if e["subject"] == "Reset your Gatehouse password"]

    assert (await api.reset(token_in(email), "a reset correct horse")).status_code == 204

    assert (await api.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"

    async def refused() -> bool:
        response = await api.client.get("/auth/sessions", headers=bearer(tokens["access_token"]))
        return response.status_code == 401

    await eventually(refused, "the old access token is refused")
    (revoked,) = [
        event.payload for event in await auth_events(events_redis, user["id"], "logins.revoked")
    ]
    assert revoked.reason == "password_reset"
    assert (await api.login(user["email"], "a reset correct horse")).status_code == 200
    assert (await api.login(user["email"], PASSWORD)).status_code == 400
