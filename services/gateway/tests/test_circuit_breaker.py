"""The circuit breaker recovers as soon as its upstream does: after a short cool-down one trial
request at a time goes through; its response closes the circuit, its failure re-opens it."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx2
import pytest

from gatehouse_gateway.upstream import CircuitBreaker, CircuitOpen
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.servers import ServerThread
from services.gateway.tests.support import GatewayFactory

COOL_DOWN = 1.0
# A gateway to the restartable upstream whose breaker opens after this many failures.
BreakerGatewayFactory = Callable[[int], AbstractAsyncContextManager[httpx2.AsyncClient]]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def opened(clock: Clock) -> CircuitBreaker:
    breaker = CircuitBreaker("users", threshold=2, cool_down_seconds=COOL_DOWN, clock=clock)
    for _ in range(2):
        with breaker.admission():
            breaker.record_failure()
    return breaker


def test_an_open_circuit_refuses_until_the_cool_down_has_passed() -> None:
    clock = Clock()
    breaker = opened(clock)
    with pytest.raises(CircuitOpen) as refused, breaker.admission():
        pass
    assert refused.value.retry_after == 1
    clock.now += COOL_DOWN
    with breaker.admission():
        pass  # the trial


def test_half_open_admits_one_trial_at_a_time_and_its_response_closes_the_circuit() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += COOL_DOWN
    with breaker.admission():
        for _ in range(3):
            with pytest.raises(CircuitOpen), breaker.admission():
                pass
        assert breaker.record_success()
    for _ in range(3):
        with breaker.admission():
            pass  # closed: everything goes through


def test_a_failed_trial_reopens_for_another_cool_down() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += COOL_DOWN
    with breaker.admission():
        breaker.record_failure()
    clock.now += COOL_DOWN / 2
    with pytest.raises(CircuitOpen), breaker.admission():
        pass
    clock.now += COOL_DOWN / 2
    with breaker.admission():
        pass


def test_a_trial_without_a_verdict_lets_the_next_request_try() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += COOL_DOWN
    with pytest.raises(TimeoutError), breaker.admission():
        raise TimeoutError  # a slow answer or a cancelled request says nothing of the upstream
    with breaker.admission(), pytest.raises(CircuitOpen), breaker.admission():
        pass  # the next request is the new trial, and the one after it waits


def bearer(issuer: TestIssuer) -> dict[str, str]:
    return {"authorization": f"Bearer {issuer.mint()}"}


@pytest.fixture
def breaker_gateway(
    make_gateway: GatewayFactory, restartable_upstream: ServerThread
) -> BreakerGatewayFactory:
    def make(failure_threshold: int) -> AbstractAsyncContextManager[httpx2.AsyncClient]:
        return make_gateway(
            users_url=restartable_upstream.url,
            circuit_failure_threshold=failure_threshold,
            circuit_open_seconds=COOL_DOWN,
        )

    return make


async def test_half_open_lets_exactly_one_request_through_while_others_get_503_fast(
    breaker_gateway: BreakerGatewayFactory, issuer: TestIssuer, restartable_upstream: ServerThread
) -> None:
    async with breaker_gateway(1) as gateway:
        assert (await gateway.get("/users/me", headers=bearer(issuer))).status_code == 502
        restartable_upstream.start()
        await asyncio.sleep(COOL_DOWN)
        # The trial is slow, so the others arrive while it runs.
        trial = asyncio.create_task(gateway.get("/users/slow?seconds=1", headers=bearer(issuer)))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        others = await asyncio.gather(
            *(gateway.get("/users/me", headers=bearer(issuer)) for _ in range(5))
        )
        refused_within = time.monotonic() - started
        assert (await trial).status_code == 200
        closed = await asyncio.gather(
            *(gateway.get("/users/me", headers=bearer(issuer)) for _ in range(5))
        )

    assert [response.status_code for response in others] == [503] * 5
    assert all(response.headers["retry-after"] == "1" for response in others)
    assert refused_within < 0.5
    assert [response.status_code for response in closed] == [200] * 5


async def test_an_upstream_that_returns_is_used_again_within_a_cool_down(
    breaker_gateway: BreakerGatewayFactory, issuer: TestIssuer, restartable_upstream: ServerThread
) -> None:
    """A restart: the upstream goes away while requests keep coming, then comes back."""
    async with breaker_gateway(5) as gateway:
        for _ in range(10):
            await gateway.get("/users/me", headers=bearer(issuer))  # opens the circuit
        restartable_upstream.start()
        back = time.monotonic()
        while (await gateway.get("/users/me", headers=bearer(issuer))).status_code != 200:
            assert time.monotonic() - back < 10, "never recovered"
            await asyncio.sleep(0.05)
        recovered_after = time.monotonic() - back

    # At most one cool-down plus a round trip (generous for a loaded machine).
    assert recovered_after < COOL_DOWN + 1.5


def test_failing_for_counts_from_the_first_failure_in_a_row_until_a_response() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now += 3 * COOL_DOWN
    with breaker.admission():
        breaker.record_failure()  # a failed trial: the same outage
    assert breaker.failing_for() == 3 * COOL_DOWN
    clock.now += COOL_DOWN
    with breaker.admission():
        assert breaker.record_success()
    assert breaker.failing_for() == 0


async def test_the_response_that_ends_the_failures_wakes_the_requests_waiting_for_it() -> None:
    clock = Clock()
    breaker = opened(clock)
    waiting = [asyncio.create_task(breaker.wait_until_back()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting)
    clock.now += COOL_DOWN
    with breaker.admission():
        assert breaker.record_success()
    async with asyncio.timeout(1):
        await asyncio.gather(*waiting)
    # The next outage has waiters of its own.
    with breaker.admission():
        breaker.record_failure()
    again = asyncio.create_task(breaker.wait_until_back())
    await asyncio.sleep(0.05)
    assert not again.done()
    again.cancel()


RESTART_GRACE = 5.0


async def test_requests_that_arrive_during_a_restart_wait_for_the_upstream_within_the_grace(
    make_gateway: GatewayFactory, issuer: TestIssuer, restartable_upstream: ServerThread
) -> None:
    """A restart shorter than the grace costs no request, of any method: each was refused
    before anything was sent, and is sent once the upstream answers a trial."""
    bodies = [f'{{"n": {n}}}'.encode() for n in range(5)]
    async with make_gateway(
        users_url=restartable_upstream.url,
        circuit_failure_threshold=2,
        circuit_open_seconds=0.25,
        upstream_restart_grace_seconds=RESTART_GRACE,
    ) as gateway:
        requests = [
            *(
                asyncio.create_task(gateway.get("/users/me", headers=bearer(issuer)))
                for _ in bodies
            ),
            *(
                asyncio.create_task(gateway.post("/users/me", headers=bearer(issuer), content=body))
                for body in bodies
            ),
        ]
        await asyncio.sleep(1.0)
        assert not any(task.done() for task in requests), "held, not answered"
        await asyncio.to_thread(restartable_upstream.start)
        back = time.monotonic()
        responses = await asyncio.gather(*requests)
        answered_after = time.monotonic() - back

    assert [response.status_code for response in responses] == [200] * len(requests)
    posted = [response.json()["body_sha256"] for response in responses[len(bodies) :]]
    assert posted == [hashlib.sha256(body).hexdigest() for body in bodies]
    # Woken by the trial that found the upstream back, not at the end of the grace.
    assert answered_after < COOL_DOWN + 1.5


async def test_an_upstream_still_refusing_after_the_grace_is_answered_then(
    make_gateway: GatewayFactory, issuer: TestIssuer, closed_port_url: str
) -> None:
    grace = 0.5
    async with make_gateway(
        users_url=closed_port_url,
        circuit_failure_threshold=2,
        circuit_open_seconds=0.1,
        upstream_restart_grace_seconds=grace,
        upstream_restart_max_seconds=1.5,
    ) as gateway:
        answers: list[tuple[float, float, int]] = []  # (since the first, took, status)
        first = time.monotonic()
        while time.monotonic() - first < 2.5:
            started = time.monotonic()
            response = await gateway.get("/users/me", headers=bearer(issuer))
            answers.append((started - first, time.monotonic() - started, response.status_code))

    assert {status for _, _, status in answers} <= {502, 503}
    held = [took for since, took, _ in answers if since < 1.0]
    assert held
    assert all(grace <= took < grace + 1.0 for took in held), held
    # Refusing for longer than upstream_restart_max_seconds: down, answered at once.
    down = [took for since, took, _ in answers if since >= 2.0]
    assert down
    assert all(took < grace / 2 for took in down), down
