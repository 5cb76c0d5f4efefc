"""Event-loop lag: how late the loop runs what is due, sampled all the time.

Anything that blocks the loop (a synchronous call, a CPU-heavy step, a full stdout pipe)
delays every request of the process at once, and no request metric says why. A task sleeps
``interval`` seconds again and again; how much later than asked it wakes is the lag, observed
in ``event_loop_lag_seconds``. Above a threshold it also logs a warning, at most one per
``_WARNING_EVERY_SECONDS`` (with the number of lags above the threshold since the last one),
so a stalled process cannot flood its own log. The warning says how much CPU the loop's thread
used meanwhile (``loop_cpu_seconds``, of ``interval + lag``): about all of it, and the loop was
busy (a blocking call, a CPU-heavy step); little, and it was waiting, for a CPU the machine
did not give it (noisy neighbours, a CPU limit) or in a system call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from prometheus_client import Histogram

from gatehouse_common.logging import get_logger

_log = get_logger(__name__)
_WARNING_EVERY_SECONDS = 10.0
# How often ``create_app``'s sampler wakes: four wake-ups a second cost nothing measurable.
LAG_SAMPLE_INTERVAL_SECONDS = 0.25

# Fine below 50 ms, where a healthy loop lives (the chaos run checks p99 < 50 ms), coarse
# above it, where a stall only needs its order of magnitude.
EVENT_LOOP_LAG = Histogram(
    "event_loop_lag_seconds",
    "How late the event loop woke a task sleeping a fixed interval (sampled continuously).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5),
)


async def sample_event_loop_lag(interval_seconds: float, warn_above_seconds: float) -> None:
    """Observe the loop's lag every ``interval_seconds`` until cancelled."""
    loop = asyncio.get_running_loop()
    last_warning = float("-inf")
    unreported = 0
    while True:
        asked_at, cpu_at = loop.time(), time.thread_time()
        await asyncio.sleep(interval_seconds)
        woke_at = loop.time()
        lag = max(0.0, woke_at - asked_at - interval_seconds)
        EVENT_LOOP_LAG.observe(lag)
        if lag <= warn_above_seconds:
            continue
        unreported += 1
        if woke_at - last_warning >= _WARNING_EVERY_SECONDS:
            _log.warning(
                "event_loop_lagged",
                lag_seconds=round(lag, 3),
                loop_cpu_seconds=round(time.thread_time() - cpu_at, 3),
                threshold_seconds=warn_above_seconds,
                lags_above_threshold=unreported,
            )
            last_warning = woke_at
            unreported = 0


@asynccontextmanager
async def event_loop_lag_sampled(
    interval_seconds: float, warn_above_seconds: float
) -> AsyncIterator[None]:
    """Run ``sample_event_loop_lag`` for the duration of a lifespan."""
    task = asyncio.create_task(
        sample_event_loop_lag(interval_seconds, warn_above_seconds), name="event-loop-lag"
    )
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
