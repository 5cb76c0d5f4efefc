"""Refresh rotation is one atomic conditional update."""

from __future__ import annotations

import asyncio
from collections import Counter

from services.auth.tests.support import AuthApi


async def test_twenty_concurrent_refreshes_of_one_token_yield_at_most_one_success(
    api: AuthApi,
) -> None:
    user = await api.register()
    tokens = await api.tokens(user["email"])

    responses = await asyncio.gather(*(api.refresh(tokens["refresh_token"]) for _ in range(20)))

    statuses = Counter(response.status_code for response in responses)
    # One request spends the token. The others presented a spent token, so reuse detection
    # revokes the login, the winner's new token included: if that happens before the winner
    # has checked its login after storing the new token, the winner is refused too.
    assert statuses[200] <= 1
    assert statuses[400] >= 19
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}
    for winner in (r.json() for r in responses if r.status_code == 200):
        assert (await api.refresh(winner["refresh_token"])).status_code == 400


async def test_concurrent_refreshes_of_different_logins_all_succeed(api: AuthApi) -> None:
    user = await api.register()
    logins = [await api.tokens(user["email"]) for _ in range(5)]

    responses = await asyncio.gather(*(api.refresh(t["refresh_token"]) for t in logins))

    assert [r.status_code for r in responses] == [200] * 5
