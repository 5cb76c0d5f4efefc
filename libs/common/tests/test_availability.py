"""The availability gate: open after an outage error, every caller refused at once, closed by
its own probe once the datastore answers, never by a caller."""

from __future__ import annotations

import asyncio

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
