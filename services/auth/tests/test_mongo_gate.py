"""MongoDB stopped: after the first request's 503 the others get theirs at once (the gate),
and the service uses MongoDB again by itself soon after it is back.

Uses its own MongoDB container, on a fixed port so the service's URL still points at it after
a restart.
"""

from __future__ import annotations

import asyncio
import time

import httpx2
from pymongo import AsyncMongoClient
from testcontainers.community.mongodb import MongoDbContainer

from gatehouse_auth.main import create_app
from gatehouse_testing.problems import assert_problem
from services.auth.tests.support import AuthApi, SettingsFactory, running

# What a request waits for a server without the gate (longer than the default, 500 ms, so that
# the refusals' bound below tells the gate's answer from a server selection's).
SERVER_SELECTION_TIMEOUT_MS = 2000
RETRY_INTERVAL = 1.0  # AUTH_MONGO_RETRY_INTERVAL_SECONDS's default
FAST = 0.5  # a refused request's bound; a server selection alone takes SERVER_SELECTION_TIMEOUT_MS


async def _wait_until_accepting(url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=500
    )
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    await client.admin.command("ping")
                    return
                except Exception:  # noqa: BLE001 - any failure means not up yet
                    await asyncio.sleep(0.3)
    finally:
        await client.close()


async def _register(client: httpx2.AsyncClient, email: str) -> tuple[httpx2.Response, float]:
    started = time.perf_counter()
    response = await client.post(
        "/auth/register", json={"email": email, "password": "long enough pw"}
    )
    return response, time.perf_counter() - started


async def test_mongo_stopped_fails_fast_after_the_first_503_and_recovers_by_itself(
    dedicated_mongo: MongoDbContainer, make_settings: SettingsFactory
) -> None:
    url = dedicated_mongo.get_connection_url()
    settings = make_settings(
        mongo_url=url, mongo_server_selection_timeout_ms=SERVER_SELECTION_TIMEOUT_MS
    )
    async with running(create_app(settings)) as client:
        api = AuthApi(client)
        tokens = await api.tokens((await api.register())["email"])
        dedicated_mongo.get_wrapped_container().stop(timeout=1)

        first, _ = await _register(client, "first@example.com")
        assert_problem(first, 503)
        for attempt in range(5):
            refused, elapsed = await _register(client, f"refused{attempt}@example.com")
            assert_problem(refused, 503)
            assert refused.json()["dependency"] == "mongodb"
            assert 1 <= int(refused.headers["retry-after"]) <= RETRY_INTERVAL + 1
            assert elapsed < FAST, f"a refused request waited {elapsed:.2f} s"
            refresh = await api.refresh(tokens["refresh_token"])
            assert_problem(refresh, 503)
            await asyncio.sleep(0.05)

        dedicated_mongo.get_wrapped_container().start()
        await _wait_until_accepting(url)
        back_at = time.perf_counter()
        # The stand-in keeps its data in memory: after the restart only new data works.
        while (back := (await _register(client, "back@example.com"))[0]).status_code != 201:
            assert_problem(back, 503)
            # One trial per interval, plus PyMongo finding the server again (its monitor
            # checks every 0.5 s while a selection waits).
            assert time.perf_counter() - back_at < RETRY_INTERVAL + 3, "MongoDB back, auth not"
            await asyncio.sleep(0.1)
