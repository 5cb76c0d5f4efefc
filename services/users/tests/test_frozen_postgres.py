"""PostgreSQL frozen (``docker pause``) under steady requests, with the service's default
timeouts: once a request has waited ``db_stall_seconds`` and the gate's probe has gone unanswered
for ``db_stall_probe_seconds`` (within the first second, well before any statement timeout), every
answer is
immediate (a 503, or a cached read), and the service follows PostgreSQL back within seconds of
the unpause (issue 18's targets).

Uses its own PostgreSQL container, on a fixed port like the outage tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx2
from testcontainers.community.postgres import PostgresContainer

from gatehouse_testing.targets import FAST_ANSWER_SECONDS, RECOVERY_SECONDS
from services.users.tests.support import AppStarter, Authorizer, SettingsFactory, alembic
from services.users.tests.test_database_outage import (
    cached_profiles,
    patched_once_back,
    wait_until_accepting,
)

FROZEN_SECONDS = 5.0
CLIENTS = 4


async def test_frozen_postgres_costs_its_timeouts_then_answers_fast_and_recovers(
    dedicated_postgres: PostgresContainer,
    make_settings: SettingsFactory,
    start_app: AppStarter,
    auth: Authorizer,
) -> None:
    database_url: str = dedicated_postgres.get_connection_url()
    await alembic(database_url, "upgrade", "head")
    # (seconds after the freeze the request began, its duration, its status)
    answers: list[tuple[float, float, int]] = []

    async def keep_asking(client: httpx2.AsyncClient, owner: uuid.UUID, since: float) -> None:
        while time.perf_counter() - since < FROZEN_SECONDS:
            for method, path, body in (
                ("GET", "/users/me", None),  # cached: 200 without PostgreSQL
                ("PATCH", "/users/me", {"bio": "frozen"}),  # needs PostgreSQL: 503
                ("GET", f"/users/{uuid.uuid4()}", None),  # a miss: 503
            ):
                began = time.perf_counter()
                response = await client.request(method, path, json=body, headers=auth(owner))
                answers.append((began - since, time.perf_counter() - began, response.status_code))

    settings = make_settings(database_url=database_url)
    # What the freeze can cost the requests in flight: the stall, then the probe's bound.
    noticed_within = settings.db_stall_seconds + settings.db_stall_probe_seconds
    assert noticed_within <= 1.0  # the target: fast answers after the freeze's first second
    async with start_app(settings) as client:
        owners = await cached_profiles(client, auth, CLIENTS)

        container = dedicated_postgres.get_wrapped_container()
        container.pause()
        try:
            frozen_at = time.perf_counter()
            await asyncio.gather(*(keep_asking(client, owner, frozen_at) for owner in owners))
        finally:
            container.unpause()
        await wait_until_accepting(database_url)
        await patched_once_back(client, auth, owners[0], within=RECOVERY_SECONDS)

    assert {status for _, _, status in answers} == {200, 503}
    late = [(began, took, status) for began, took, status in answers if began >= noticed_within]
    slow = [answer for answer in late if answer[1] > FAST_ANSWER_SECONDS]
    assert len(late) > 10 * CLIENTS
    assert not slow, f"slow answers once noticed (began, took, status): {slow}"
