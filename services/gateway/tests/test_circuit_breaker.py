"""The circuit breaker recovers as soon as its upstream does: after a short cool-down one trial
request at a time goes through; its response closes the circuit, its failure re-opens it."""

from __future__ import annotations

import asyncio
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
