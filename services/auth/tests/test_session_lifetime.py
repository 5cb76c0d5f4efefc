"""Absolute session lifetime: refreshing never extends a login beyond it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from services.auth.tests.support import AuthApi, SettingsFactory, serving


async def test_refresh_fails_after_the_absolute_lifetime_however_recent_the_last_use(
    make_settings: SettingsFactory,
) -> None:
    # A sliding window far longer than the lifetime: only the absolute end can stop the login.
    settings = make_settings(session_absolute_lifetime_seconds=3, refresh_token_ttl_seconds=3600)
    async with serving(settings) as api:
        user = await api.register()
        refresh_token = (await api.tokens(user["email"]))["refresh_token"]

        # Refreshed every second: each use is recent, and each new token is fresh.
        for _ in range(2):
            await asyncio.sleep(1)
            refreshed = await api.refresh(refresh_token)
            assert refreshed.status_code == 200, refreshed.text
            refresh_token = refreshed.json()["refresh_token"]

        await asyncio.sleep(1.5)
        ended = await api.refresh(refresh_token)

        assert ended.status_code == 400
        assert ended.json()["error"] == "invalid_grant"
        # A new password login starts a new session.
        assert (await api.login(user["email"])).status_code == 200


async def test_the_session_end_is_set_by_the_login_and_kept_by_every_refresh(
    api: AuthApi, make_settings: SettingsFactory, mongo_url: str
) -> None:
    user = await api.register()
    logged_in_at = datetime.now(UTC)
    refresh_token = (await api.tokens(user["email"]))["refresh_token"]
    for _ in range(2):
        refresh_token = (await api.refresh(refresh_token)).json()["refresh_token"]

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        database = mongo[make_settings().mongo_database]  # the database the app of ``api`` uses
        stored = await database.refresh_tokens.find({}).to_list()
    finally:
        await mongo.close()

    assert len(stored) == 3
    session_ends = {document["session_expires_at"] for document in stored}
    assert len(session_ends) == 1
    session_end = session_ends.pop()
    assert abs(session_end - (logged_in_at + timedelta(days=30))) < timedelta(seconds=5)
    for document in stored:
        # The 14-day sliding window, which ends well before the session does.
        assert document["expires_at"] - document["created_at"] == timedelta(days=14)
