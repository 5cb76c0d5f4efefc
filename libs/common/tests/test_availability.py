"""The availability gate: open after an outage error, every caller refused at once, closed by
its own probe once the datastore answers, never by a caller."""

from __future__ import annotations

import asyncio
import time

import pytest

from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.problems import DependencyUnavailable

INTERVAL = 0.05


class Datastore:
    """A datastore the test switches; counts the gate's probes."""

    def __init__(self) -> None:
        self.up = False
        self.probes = 0

    async def ping(self) -> None:
        self.probes += 1
        if not self.up:
            raise ConnectionError("down")


def _is_outage(error: Exception) -> bool:
    return isinstance(error, ConnectionError)


async def test_an_outage_opens_the_gate_and_only_the_probe_closes_it() -> None:
    datastore = Datastore()
    async with AvailabilityGate("store", INTERVAL, probe=datastore.ping) as gate:
        with pytest.raises(ConnectionError):
            async with gate.passage(_is_outage):
                raise ConnectionError("the request met the outage")

        await asyncio.sleep(INTERVAL * 4)
        with pytest.raises(DependencyUnavailable) as refused:
            async with gate.passage(_is_outage):
                pytest.fail("admitted while the datastore is down")
        assert refused.value.headers["Retry-After"] == "1"
        assert refused.value.extra == {"dependency": "store"}
        assert datastore.probes >= 2  # once an interval, while down

        datastore.up = True
        await asyncio.sleep(INTERVAL * 3)
        assert not gate.is_open
        probes = datastore.probes
        async with gate.passage(_is_outage):
            pass
        await asyncio.sleep(INTERVAL * 2)
        assert datastore.probes == probes  # closed: no more probing


async def test_other_errors_leave_the_gate_closed() -> None:
    datastore = Datastore()
    async with AvailabilityGate("store", INTERVAL, probe=datastore.ping) as gate:
        with pytest.raises(ValueError, match="a bug"):
            async with gate.passage(_is_outage):
                raise ValueError("a bug")
        assert not gate.is_open
        await asyncio.sleep(INTERVAL * 2)
        assert datastore.probes == 0


async def test_callers_in_flight_stop_waiting_when_another_one_finds_the_datastore_gone() -> None:
    datastore = Datastore()
    frozen = asyncio.Event()  # never set: a datastore that does not answer
    async with AvailabilityGate("store", INTERVAL, probe=datastore.ping) as gate:

        async def waiting_caller() -> None:
            async with gate.passage(_is_outage):
                await frozen.wait()

        async def caller_not_yet_using_it() -> str:
            async with gate.watch():  # never started: not the datastore's to cut short
                await asyncio.sleep(INTERVAL * 2)
            return "finished"

        waiting = [asyncio.create_task(waiting_caller()) for _ in range(3)]
        unstarted = asyncio.create_task(caller_not_yet_using_it())
        await asyncio.sleep(0)  # every caller is waiting now

        with pytest.raises(ConnectionError):
            async with gate.passage(_is_outage):
                raise ConnectionError("this caller's timeout or refused connect")

        async with asyncio.timeout(INTERVAL):  # at once, not after a timeout of their own
            outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(outcome, DependencyUnavailable) for outcome in outcomes)
        assert await unstarted == "finished"


async def test_a_gate_that_does_not_interrupt_lets_callers_in_flight_end_by_themselves() -> None:
    """For a client that breaks when cancelled mid-operation (PyMongo's async API on 3.11)."""
    datastore = Datastore()
    answer = asyncio.Event()
    async with AvailabilityGate(
        "store", INTERVAL, probe=datastore.ping, interrupts_in_flight=False
    ) as gate:

        async def caller_in_flight() -> str:
            async with gate.passage(_is_outage):
                await answer.wait()  # the client's own timeout or answer, whichever comes
            return "ended by itself"

        in_flight = asyncio.create_task(caller_in_flight())
        await asyncio.sleep(0)
        with pytest.raises(ConnectionError):
            async with gate.passage(_is_outage):
                raise ConnectionError("this caller's refused connect")

        with pytest.raises(DependencyUnavailable):  # a caller after the failure: at once
            async with gate.passage(_is_outage):
                pytest.fail("admitted while the gate is open")
        await asyncio.sleep(INTERVAL * 2)
        assert not in_flight.done()
        answer.set()
        assert await in_flight == "ended by itself"


async def test_a_blocks_own_timeout_is_not_taken_for_the_gate() -> None:
    async with AvailabilityGate("store", INTERVAL, probe=Datastore().ping) as gate:

        async def block_with_its_own_timeout() -> None:
            async with gate.watch() as start:
                start()
                async with asyncio.timeout(0.01):
                    await asyncio.Event().wait()

        with pytest.raises(TimeoutError):
            await block_with_its_own_timeout()
        assert not gate.is_open


async def test_a_block_waiting_on_a_datastore_that_does_not_answer_probes_and_opens_it() -> None:
    frozen = asyncio.Event()  # never set: the datastore and its ping hang
    probes: list[int] = []

    async def hanging_ping() -> None:
        probes.append(1)
        await frozen.wait()

    async with AvailabilityGate(
        "store", INTERVAL, probe=hanging_ping, stall_seconds=INTERVAL
    ) as gate:

        async def waiting_caller() -> None:
            async with gate.passage(_is_outage):
                await frozen.wait()

        waiting = [asyncio.create_task(waiting_caller()) for _ in range(3)]
        # After the stall and the probe's bound, not after a client timeout of its own.
        async with asyncio.timeout(INTERVAL * 6):
            outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(outcome, DependencyUnavailable) for outcome in outcomes)
        assert gate.is_open
        assert len(probes) == 1  # one check for all the stalled blocks


async def test_the_probe_of_a_stall_check_has_a_bound_of_its_own() -> None:
    """Suspicion early (a block waiting ``stall_seconds``), the verdict after the probe's own,
    longer bound: a datastore slower to answer than the first but within the second is fine;
    one that never answers opens the gate after the sum."""
    stall, probe_bound = INTERVAL, INTERVAL * 4
    frozen = asyncio.Event()
    answer_after = [INTERVAL * 2]  # slower than the stall, within the probe's bound

    async def ping() -> None:
        if not answer_after:
            await frozen.wait()
        await asyncio.sleep(answer_after.pop())

    async with AvailabilityGate(
        "store", INTERVAL, probe=ping, stall_seconds=stall, stall_probe_seconds=probe_bound
    ) as gate:
        async with gate.passage(_is_outage):
            await asyncio.sleep(stall + INTERVAL * 3)  # checked, and found answering
        assert not gate.is_open

        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            async with gate.passage(_is_outage):
                await frozen.wait()
        assert time.monotonic() - started >= stall + probe_bound
        assert gate.is_open


async def test_a_loop_that_turns_slowly_does_not_take_itself_for_a_stalled_datastore() -> None:
    """The datastore answers at once, but each of the probe's steps needs a turn of a loop
    that other work keeps busy: the probe outlasts the bound in time, not in turns."""
    turn_seconds = INTERVAL / 2  # every turn of the loop takes this long

    async def ping() -> None:  # two round trips: a step each to send and to read
        for _ in range(4):
            await asyncio.sleep(0)

    async def busy_process() -> None:
        while True:
            time.sleep(turn_seconds)  # noqa: ASYNC251 - the other requests' CPU work on this loop
            await asyncio.sleep(0)

    async with AvailabilityGate("store", INTERVAL, probe=ping, stall_seconds=INTERVAL) as gate:
        busy = asyncio.create_task(busy_process())
        try:
            async with gate.passage(_is_outage):
                await asyncio.sleep(INTERVAL * 6)  # a slow request: the gate checks the store
        finally:
            busy.cancel()
        assert not gate.is_open


async def test_a_stalled_probe_slow_to_give_up_does_not_delay_the_verdict() -> None:
    """A probe cancelled at its bound may take long to clean up (SQLAlchemy closes an asyncpg
    connection gracefully, up to 2 s on a frozen server): the gate opens at the bound."""
    frozen = asyncio.Event()
    cleanups_done: list[int] = []

    async def ping_slow_to_give_up() -> None:
        try:
            await frozen.wait()
        finally:
            await asyncio.sleep(INTERVAL * 20)  # closing the connection "gracefully"
            cleanups_done.append(1)

    async with AvailabilityGate(
        "store", INTERVAL * 100, probe=ping_slow_to_give_up, stall_seconds=INTERVAL
    ) as gate:

        async def waiting_caller() -> None:
            async with gate.passage(_is_outage):
                await frozen.wait()

        async with asyncio.timeout(INTERVAL * 8):
            with pytest.raises(DependencyUnavailable):
                await waiting_caller()
        assert gate.is_open
        assert not cleanups_done  # still cleaning up on its own
    assert cleanups_done == [1]  # and the gate's end waited for it


async def test_a_block_that_is_only_slow_is_left_alone_when_the_datastore_answers() -> None:
    datastore = Datastore()
    datastore.up = True
    async with AvailabilityGate(
        "store", INTERVAL, probe=datastore.ping, stall_seconds=INTERVAL
    ) as gate:

        async def slow_caller() -> str:
            async with gate.passage(_is_outage):
                await asyncio.sleep(INTERVAL * 4)  # a slow statement on a healthy datastore
            return "answered"

        assert await slow_caller() == "answered"
        assert datastore.probes == 1
        assert not gate.is_open
        async with gate.passage(_is_outage):  # a fast block: no check at all
            pass
        await asyncio.sleep(INTERVAL * 2)
        assert datastore.probes == 1
