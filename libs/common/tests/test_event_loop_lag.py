"""Event-loop lag: sampled while an app runs, a warning (rate-limited) when the loop stalls."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from gatehouse_common.app import ServiceInfo, create_app
from gatehouse_common.event_loop_lag import sample_event_loop_lag
from gatehouse_common.logging import configure_logging
from gatehouse_common.settings import ServiceSettings
from gatehouse_testing.app import started


def _lag_samples(above_seconds: float | None = None) -> float:
    """Lag observations so far; with ``above_seconds``, only those above that bucket bound."""
    total = REGISTRY.get_sample_value("event_loop_lag_seconds_count") or 0.0
    if above_seconds is None:
        return total
    within = REGISTRY.get_sample_value("event_loop_lag_seconds_bucket", {"le": str(above_seconds)})
    return total - (within or 0.0)


def _warnings(output: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "event_loop_lagged"]


async def test_a_running_app_samples_the_loop_and_sees_a_stall(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = create_app(
        ServiceInfo(name="test", title="test", version="0"),
        ServiceSettings(event_loop_lag_warning_seconds=0.1),
    )
    async with started(app):
        await asyncio.sleep(0.6)  # two samples at least, on an idle loop
        before_stall = _lag_samples()
        stalled_before = _lag_samples(above_seconds=0.25)
        assert before_stall >= 2
        # The stall this metric exists to catch; whenever in the 0.25 s sampling interval it
        # begins, the sampler wakes at least 0.35 s late.
        time.sleep(0.6)  # noqa: ASYNC251
        await asyncio.sleep(0.3)
        assert _lag_samples(above_seconds=0.25) == stalled_before + 1

    warnings = _warnings(capsys.readouterr().out)
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"
    assert float(str(warnings[0]["lag_seconds"])) >= 0.25


async def test_stalls_within_ten_seconds_log_one_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("test", "INFO")
    sampler = asyncio.create_task(sample_event_loop_lag(0.01, warn_above_seconds=0.05))
    try:
        for _ in range(4):
            await asyncio.sleep(0.03)
            time.sleep(0.1)  # noqa: ASYNC251 - a stall, on purpose
        await asyncio.sleep(0.03)
    finally:
        sampler.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sampler

    warnings = _warnings(capsys.readouterr().out)
    assert len(warnings) == 1, warnings
    assert warnings[0]["lags_above_threshold"] == 1


def _spin(seconds: float) -> None:
    """A CPU-heavy step on the loop's thread."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


@pytest.mark.parametrize(("stall", "busy"), [(_spin, True), (time.sleep, False)])
async def test_the_warning_tells_a_busy_loop_from_a_waiting_one(
    capsys: pytest.CaptureFixture[str], stall: Callable[[float], None], busy: bool
) -> None:
    """The loop's thread used the CPU through the stall (its own code) or did not (it waited
    for a CPU, or in a system call)."""
    configure_logging("test", "INFO")
    sampler = asyncio.create_task(sample_event_loop_lag(0.01, warn_above_seconds=0.1))
    try:
        await asyncio.sleep(0.03)
        stall(0.3)
        await asyncio.sleep(0.03)
    finally:
        sampler.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sampler

    [warning] = _warnings(capsys.readouterr().out)
    lag, cpu = float(str(warning["lag_seconds"])), float(str(warning["loop_cpu_seconds"]))
    assert lag >= 0.25
    if busy:
        assert cpu >= 0.2, warning
    else:
        assert cpu < 0.1, warning


async def test_the_sampler_stops_with_the_app() -> None:
    app = create_app(ServiceInfo(name="test", title="test", version="0"), ServiceSettings())
    async with started(app):
        await asyncio.sleep(0.3)
    stopped_at = _lag_samples()
    await asyncio.sleep(0.6)
    assert _lag_samples() == stopped_at
