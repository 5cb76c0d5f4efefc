"""Password hashing is a bounded resource, and registration is throttled per client address."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid

import httpx2
import pytest

from gatehouse_auth.main import create_app
from gatehouse_auth.passwords import PasswordHasher, PasswordHashingBusy
from services.auth.tests.support import PASSWORD, AuthApi, SettingsFactory, running, serving

LOGIN_DEADLINE_SECONDS = 5


def _registration(email: str) -> dict[str, str]:
    return {"email": email, "password": PASSWORD}


def _assert_retry_later(response: httpx2.Response) -> None:
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1


async def test_logins_answer_in_time_during_a_registration_flood(
    make_settings: SettingsFactory,
) -> None:
    # Few slots, a short queue and the real Argon2 parameters: if every registration waited
    # for its turn, the flood would hold the logins far beyond the deadline. Bounded, a login
    # waits for at most three hashes (the running ones, the queue ahead of it, its own), which
    # keeps the deadline on a loaded machine too (with a queue of 4 it was four: 6 s there).
    settings = make_settings(
        password_hashing_concurrency=2,
        password_hashing_queue_limit=2,
        argon2_time_cost=3,
        argon2_memory_cost_kib=65536,
        argon2_parallelism=4,
        registration_max_per_address=10_000,
    )
    async with serving(settings) as api:
        user = await api.register()

        async def register(n: int) -> httpx2.Response:
            return await api.client.post(
                "/auth/register", json=_registration(f"flood-{n}-{uuid.uuid4().hex[:6]}@x.org")
            )

        async def login(delay: float) -> tuple[httpx2.Response, float]:
            await asyncio.sleep(delay)
            started = time.monotonic()
            # A login that hangs fails here rather than holding the test.
            async with asyncio.timeout(LOGIN_DEADLINE_SECONDS * 3):
                response = await api.login(user["email"])
            return response, time.monotonic() - started

        flood = asyncio.gather(*(register(n) for n in range(100)))
        logins = asyncio.gather(*(login(0.05 * n) for n in range(20)))
        registrations, answered = await asyncio.gather(flood, logins)

    registered = [response.status_code for response in registrations]
    assert set(registered) <= {201, 503}
    assert 503 in registered  # the bound was reached: the test is about what happens then
    for response in registrations:
        if response.status_code == 503:
            _assert_retry_later(response)
    for response, seconds in answered:
        assert response.status_code in {200, 429, 503}, response.text
        if response.status_code != 200:
            _assert_retry_later(response)
        assert seconds < LOGIN_DEADLINE_SECONDS


async def test_registrations_beyond_the_address_limit_are_429(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(registration_max_per_address=3, trusted_proxies="127.0.0.1")
    async with running(create_app(settings)) as client:

        async def register(address: str) -> httpx2.Response:
            return await client.post(
                "/auth/register",
                json=_registration(f"r-{uuid.uuid4().hex[:8]}@example.com"),
                headers={"x-forwarded-for": address},
            )

        results = await asyncio.gather(*(register("203.0.113.7") for _ in range(6)))
        other_address = await register("203.0.113.8")

    statuses = sorted(response.status_code for response in results)
    assert statuses == [201] * 3 + [429] * 3
    for response in results:
        if response.status_code == 429:
            _assert_retry_later(response)
            assert 1 <= int(response.headers["retry-after"]) <= 60
    assert other_address.status_code == 201


async def test_taken_email_is_409_without_hashing(
    api: AuthApi, client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await api.register()
    hashed: list[str] = []
    hash_password = PasswordHasher.hash

    async def counting_hash(self: PasswordHasher, password: str) -> str:
        hashed.append(password)
        return await hash_password(self, password)

    monkeypatch.setattr(PasswordHasher, "hash", counting_hash)

    response = await client.post("/auth/register", json=_registration(user["email"]))

    assert response.status_code == 409
    assert hashed == []


async def test_concurrent_registrations_of_one_email_make_one_account(
    client: httpx2.AsyncClient,
) -> None:
    # All pass the lookup before any inserts: the unique index is what refuses the rest.
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"

    responses = await asyncio.gather(
        *(client.post("/auth/register", json=_registration(email)) for _ in range(10))
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 9


class SlowArgon2:
    """Argon2 on a machine short of CPU: each hash takes a second."""

    def hash(self, password: str) -> str:
        time.sleep(1.0)
        return f"hashed {len(password)}"


async def test_a_hash_that_waits_too_long_for_a_slot_is_refused(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue has room, but the hash ahead takes long: the wait is bounded by time too."""
    settings = make_settings(
        password_hashing_concurrency=1,
        password_hashing_queue_limit=10,
        password_hashing_queue_timeout_seconds=0.3,
    )
    hasher = PasswordHasher(settings)
    monkeypatch.setattr(hasher, "_hash", SlowArgon2())
    ahead = asyncio.create_task(hasher.hash("first"))
    await asyncio.sleep(0.05)

    started = time.monotonic()
    with pytest.raises(PasswordHashingBusy):
        await hasher.hash("second")
    refused_after = time.monotonic() - started

    assert refused_after < 0.9  # at the queue timeout, not after the hash ahead of it
    assert await ahead == "hashed 5"


async def test_hashes_not_started_are_refused_once_shutdown_begins(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's drain waits for every request in flight: the ones queued for a slot are
    refused at once (503, Retry-After) instead of holding it; the running hash finishes."""
    hasher = PasswordHasher(
        make_settings(password_hashing_concurrency=1, password_hashing_queue_timeout_seconds=30)
    )
    monkeypatch.setattr(hasher, "_hash", SlowArgon2())
    running = asyncio.create_task(hasher.hash("first"))
    queued = [asyncio.create_task(hasher.hash(f"queued {n}")) for n in range(3)]
    await asyncio.sleep(0.1)  # the first holds the slot, the others wait for it

    hasher.refuse_queued()
    refused = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), timeout=0.5)

    assert all(isinstance(outcome, PasswordHashingBusy) for outcome in refused), refused
    with pytest.raises(PasswordHashingBusy):
        await hasher.hash("after")
    assert await running == "hashed 5"


class PolicyOfTheHashingThreads:
    """Stands in for Argon2 and answers the scheduling policy of the thread that runs it and
    of a thread it starts, as Argon2 starts one per lane."""

    def hash(self, password: str) -> str:
        policies: list[int] = []
        lane = threading.Thread(target=lambda: policies.append(os.sched_getscheduler(0)))
        lane.start()
        lane.join()
        return f"{os.sched_getscheduler(0)} {policies[0]}"


@pytest.mark.skipif(sys.platform != "linux", reason="SCHED_IDLE is Linux's")
async def test_hashes_run_below_every_other_thread(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = PasswordHasher(make_settings())
    monkeypatch.setattr(hasher, "_hash", PolicyOfTheHashingThreads())
    try:
        hashed_in, lane_in = map(int, (await hasher.hash("any password")).split())
    finally:
        hasher.close()

    assert (hashed_in, lane_in) == (os.SCHED_IDLE, os.SCHED_IDLE)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the event loop's thread is untouched
