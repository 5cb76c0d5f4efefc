"""Sessions: list, end one, sign out everywhere, change the password; each revocation is
announced on events:auth and refused by auth's own bearer endpoints within 5 seconds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from joserfc import jws
from redis.asyncio import Redis

from gatehouse_auth.database import AuthDatabase
from gatehouse_auth.sessions.repository import SessionRepository
from gatehouse_common.events import LoginsRevoked
from gatehouse_testing.problems import assert_problem
from services.auth.tests.support import (
    PASSWORD,
    AuthApi,
    SettingsFactory,
    auth_events,
    eventually,
    serving,
)

NEW_PASSWORD = "a brand new correct horse"


def _sid(access_token: str) -> str:
    claims: dict[str, Any] = json.loads(jws.extract_compact(access_token.encode()).payload)
    return str(claims["sid"])


async def _refused_within_5s(api: AuthApi, access_token: str) -> None:
    async def refused() -> bool:
        response = await api.sessions(access_token)
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
            return True
        assert response.status_code == 200, response.text
        return False

    await eventually(refused, "the revoked access token is refused by auth")


async def _revocations(redis: Redis, user_id: str) -> list[LoginsRevoked]:
    return [event.payload for event in await auth_events(redis, user_id, "logins.revoked")]


async def test_two_logins_are_listed_newest_first_with_the_presenting_one_current(
    api: AuthApi,
) -> None:
    user = await api.register()
    first = await api.tokens(user["email"])
    second = await api.tokens(user["email"])

    response = await api.sessions(first["access_token"])

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    items = response.json()["items"]
    assert [item["id"] for item in items] == [
        _sid(second["access_token"]),
        _sid(first["access_token"]),
    ]
    assert [item["current"] for item in items] == [False, True]
    for item in items:
        assert datetime.fromisoformat(item["last_used_at"]) >= datetime.fromisoformat(
            item["created_at"]
        )


async def test_a_refresh_keeps_the_sid_and_moves_last_used_at(api: AuthApi) -> None:
    user = await api.register()
    tokens = await api.tokens(user["email"])
    (before,) = (await api.sessions(tokens["access_token"])).json()["items"]
    await asyncio.sleep(0.05)

    refreshed = (await api.refresh(tokens["refresh_token"])).json()

    assert _sid(refreshed["access_token"]) == _sid(tokens["access_token"])
    (after,) = (await api.sessions(refreshed["access_token"])).json()["items"]
    assert after["id"] == before["id"]
    assert after["created_at"] == before["created_at"]
    assert datetime.fromisoformat(after["last_used_at"]) > datetime.fromisoformat(
        before["last_used_at"]
    )


async def test_ending_one_login_revokes_it_alone_and_announces_it(
    api: AuthApi, events_redis: Redis
) -> None:
    user = await api.register()
    ended = await api.tokens(user["email"])
    kept = await api.tokens(user["email"])
    ended_sid = _sid(ended["access_token"])

    response = await api.end_session(kept["access_token"], ended_sid)

    assert response.status_code == 204, response.text
    assert (await api.refresh(ended["refresh_token"])).json()["error"] == "invalid_grant"
    items = (await api.sessions(kept["access_token"])).json()["items"]
    assert [item["id"] for item in items] == [_sid(kept["access_token"])]
    await _refused_within_5s(api, ended["access_token"])
    assert (await api.refresh(kept["refresh_token"])).status_code == 200
    revoked = await _revocations(events_redis, user["id"])
    assert [(event.session_ids, event.reason) for event in revoked] == [((ended_sid,), "sign_out")]


async def test_ending_an_unknown_or_another_users_login_is_404(api: AuthApi) -> None:
    mine = await api.tokens((await api.register())["email"])
    theirs = await api.tokens((await api.register())["email"])

    assert_problem(await api.end_session(mine["access_token"], _sid(theirs["access_token"])), 404)
    assert_problem(await api.end_session(mine["access_token"], "no-such-login"), 404)
    assert (await api.refresh(theirs["refresh_token"])).status_code == 200


async def test_sign_out_everywhere_revokes_every_login_and_a_new_login_works_at_once(
    api: AuthApi, events_redis: Redis
) -> None:
    user = await api.register()
    logins = [await api.tokens(user["email"]) for _ in range(2)]

    response = await api.end_every_session(logins[0]["access_token"])

    assert response.status_code == 204, response.text
    for login in logins:
        assert (await api.refresh(login["refresh_token"])).json()["error"] == "invalid_grant"
        await _refused_within_5s(api, login["access_token"])
    (revoked,) = await _revocations(events_redis, user["id"])
    assert set(revoked.session_ids) == {_sid(login["access_token"]) for login in logins}
    assert revoked.reason == "sign_out"
    # The event names the logins, so a login in the same second is not caught by it.
    fresh = await api.tokens(user["email"])
    listed = await api.sessions(fresh["access_token"])
    assert [item["id"] for item in listed.json()["items"]] == [_sid(fresh["access_token"])]


async def test_password_change_starts_a_new_login_and_revokes_the_earlier_ones(
    api: AuthApi, events_redis: Redis
) -> None:
    user = await api.register()
    earlier = [await api.tokens(user["email"]) for _ in range(2)]

    response = await api.change_password(earlier[0]["access_token"], PASSWORD, NEW_PASSWORD)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    fresh = response.json()
    assert fresh["token_type"] == "Bearer"
    assert fresh["refresh_token"]
    for login in earlier:
        assert (await api.refresh(login["refresh_token"])).json()["error"] == "invalid_grant"
        await _refused_within_5s(api, login["access_token"])
    assert (await api.login(user["email"], PASSWORD)).json()["error"] == "invalid_grant"
    assert (await api.login(user["email"], NEW_PASSWORD)).status_code == 200
    listed = await api.sessions(fresh["access_token"])
    assert listed.status_code == 200
    assert _sid(fresh["access_token"]) in [item["id"] for item in listed.json()["items"]]
    assert (await api.refresh(fresh["refresh_token"])).status_code == 200
    (revoked,) = await _revocations(events_redis, user["id"])
    assert set(revoked.session_ids) == {_sid(login["access_token"]) for login in earlier}
    assert revoked.reason == "password_change"
    assert revoked.issued_at_or_before is None


async def test_a_wrong_current_password_is_400_and_counts_as_a_failed_login(
    make_settings: SettingsFactory,
) -> None:
    async with serving(make_settings(login_max_failures_per_email=2)) as api:
        user = await api.register()
        tokens = await api.tokens(user["email"])

        for _ in range(2):
            wrong = await api.change_password(tokens["access_token"], "not my password", "x" * 12)
            assert_problem(wrong, 400)

        throttled = await api.login(user["email"])
        assert throttled.status_code == 429
        assert "retry-after" in throttled.headers
        assert_problem(
            await api.change_password(tokens["access_token"], PASSWORD, NEW_PASSWORD), 429
        )
        # Nothing changed: the old password and the login still hold.
        assert (await api.refresh(tokens["refresh_token"])).status_code == 200


async def test_session_endpoints_need_a_token_and_the_scope(api: AuthApi) -> None:
    assert (await api.client.get("/auth/sessions")).status_code == 401
    assert (await api.client.delete("/auth/sessions")).status_code == 401
    assert (await api.client.post("/auth/password", json={})).status_code == 401
    user = await api.register()
    tokens = await api.tokens(user["email"])
    invalid = await api.change_password(tokens["access_token"], PASSWORD, "short")
    assert invalid.status_code == 422


async def test_revoke_and_refresh_reuse_announce_the_login(
    api: AuthApi, events_redis: Redis
) -> None:
    user = await api.register()
    revoked = await api.tokens(user["email"])
    reused = await api.tokens(user["email"])

    assert (await api.revoke(revoked["refresh_token"])).status_code == 200
    assert (await api.refresh(reused["refresh_token"])).status_code == 200
    assert (await api.refresh(reused["refresh_token"])).status_code == 400  # reuse

    async def announced() -> bool:
        events = await _revocations(events_redis, user["id"])
        return {(event.session_ids, event.reason) for event in events} == {
            ((_sid(revoked["access_token"]),), "revoked"),
            ((_sid(reused["access_token"]),), "refresh_reuse"),
        }

    await eventually(announced, "both revocations are on events:auth")
    await _refused_within_5s(api, revoked["access_token"])
    await _refused_within_5s(api, reused["access_token"])


async def test_a_login_not_named_by_the_generation_bump_gets_its_own_event(
    api: AuthApi, database: AuthDatabase, events_redis: Redis
) -> None:
    user = await api.register()
    named = await api.tokens(user["email"])
    unnamed = await api.tokens(user["email"])
    # As if ``unnamed`` started while the bump was being written: its event names only one.
    await database.identities.update_one({"_id": user["id"]}, {"$inc": {"login_generation": 1}})

    await SessionRepository(database).revoke_older(
        user["id"],
        below_generation=1,
        reason="password_change",
        now=datetime.now(UTC),
        announced=frozenset({_sid(named["access_token"])}),
    )

    async def announced() -> bool:
        revoked = await _revocations(events_redis, user["id"])
        return [(event.session_ids, event.reason) for event in revoked] == [
            ((_sid(unnamed["access_token"]),), "password_change")
        ]

    await eventually(announced, "the unnamed login's own event is relayed")
    families = database.login_families.find({"user_id": user["id"]})
    assert [family["revoked_at"] async for family in families].count(None) == 0
    for login in (named, unnamed):
        assert (await api.refresh(login["refresh_token"])).json()["error"] == "invalid_grant"
