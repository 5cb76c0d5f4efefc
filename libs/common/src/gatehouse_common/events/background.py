"""Running the event loops (consumers, feeds, relays) as tasks of a service's lifespan."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from prometheus_client import Gauge
from redis.exceptions import RedisError

from gatehouse_common.events.metrics import EVENTS_CHANNEL_UP
from gatehouse_common.logging import get_logger

_log = get_logger(__name__)
_jitter = random.SystemRandom()
_CANCEL_ROUND_SECONDS = 0.1

# What "the event channel is down" looks like from redis-py.
CHANNEL_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)


class BackgroundLoop(Protocol):
    """Something that runs until cancelled and recovers from outages by itself."""

    name: str

    async def run(self) -> None: ...


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a client library turned into another error.

    A task cancelled while redis-py waits on a socket can see a ``TimeoutError`` or
    ``ConnectionError`` instead of ``CancelledError``; a loop that retries on those would then
    outlive its cancellation, and shutdown would hang.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Backoff:
    """Exponential backoff with full jitter, reset after a success.

    Capped at 2 s: a loop retries a Redis that is back within 2 s. A loop's retry is one
    connect attempt, so trying that often costs a down Redis nothing.
    """

    def __init__(self, initial_seconds: float = 0.2, max_seconds: float = 2.0) -> None:
        self._initial = initial_seconds
        self._max = max_seconds
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._max, self._initial * 2**self._attempt)
        self._attempt += 1
        return _jitter.uniform(ceiling / 2, ceiling)


class DependencyOutage(Exception):
    """Raised by a loop's iteration when a dependency other than the event channel failed
    (an outbox's store), after the iteration reported it: the loop backs off, and the event
    channel is marked neither down nor up, as the iteration never reached it."""


class OutageReport:
    """Whether a background loop reaches one dependency: a warning when it goes down
    (``<dependency>_unavailable``), info when it is back (``<dependency>_recovered``), and
    ``up_gauge{component}`` 1 or 0 where the dependency has one.

    One line per transition rather than one per retry, and never the URL (it may carry a
    password): only the error's type.
    """

    def __init__(self, component: str, dependency: str, up_gauge: Gauge | None = None) -> None:
        self._component = component
        self._dependency = dependency
        self._up_gauge = up_gauge
        self._up = True
        if up_gauge is not None:
            up_gauge.labels(component).set(1)

    def succeeded(self) -> None:
        if not self._up:
            self._up = True
            _log.info(f"{self._dependency}_recovered", component=self._component)
        if self._up_gauge is not None:
            self._up_gauge.labels(self._component).set(1)

    def failed(self, error: BaseException, retry_in: float | None = None) -> None:
        if self._up:
            self._up = False
            retry = {} if retry_in is None else {"retry_in_seconds": round(retry_in, 2)}
            _log.warning(
                f"{self._dependency}_unavailable",
                component=self._component,
                error=type(error).__name__,
                **retry,
            )
        if self._up_gauge is not None:
            self._up_gauge.labels(self._component).set(0)


async def repeat_until_cancelled(
    iteration: Callable[[], Awaitable[None]],
    *,
    component: str,
    backoff: Backoff,
    outage_errors: tuple[type[Exception], ...] = CHANNEL_ERRORS,
) -> None:
    """Run ``iteration`` again and again until cancelled, backing off after a failure.

    An ``outage_errors`` failure is an outage of the event channel: one warning when it starts,
    one info line when it ends, ``events_channel_up{component}`` 0 meanwhile. A
    ``DependencyOutage`` is another dependency's, which the iteration reported: the loop backs
    off only. Any other exception is a bug: logged with its traceback, and the loop carries on
    after the backoff instead of dying silently.
    """
    state = OutageReport(component, "event_channel", EVENTS_CHANNEL_UP)
    while True:
        try:
            await iteration()
        except DependencyOutage:
            raise_if_cancelled()
            await asyncio.sleep(backoff.next_delay())
            continue
        except outage_errors as exc:
            raise_if_cancelled()
            delay = backoff.next_delay()
            state.failed(exc, delay)
            await asyncio.sleep(delay)
            continue
        except Exception:  # noqa: BLE001 - a bug must not stop the loop for good
            raise_if_cancelled()
            _log.exception("event_loop_failed", component=component)
            await asyncio.sleep(backoff.next_delay())
            continue
        state.succeeded()
        backoff.reset()


@asynccontextmanager
async def run_in_background(*loops: BackgroundLoop) -> AsyncIterator[None]:
    """Start each loop as a task; on exit cancel them and wait until they have stopped."""
    tasks = [asyncio.create_task(loop.run(), name=loop.name) for loop in loops]
    try:
        yield
    finally:
        pending = set(tasks)
        while pending:
            for task in pending:
                # Again each round: redis-py can swallow a cancellation that arrives while it
                # sends a command, and then block in the read that follows.
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=_CANCEL_ROUND_SECONDS)
        for loop, task in zip(loops, tasks, strict=True):
            if not task.cancelled() and task.exception() is not None:
                _log.error(
                    "background_loop_crashed",
                    loop=loop.name,
                    error=type(task.exception()).__name__,
                )
