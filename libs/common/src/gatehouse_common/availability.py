"""Fail fast while a required datastore is down: a circuit breaker shared by a process's requests.

Without it every request that needs a dead or frozen datastore waits for its own connect or
statement timeout (seconds) before its 503; with it only the requests in flight when the
datastore failed do, and the others get their 503 with ``Retry-After`` at once. Those in
flight stop waiting too: a block in ``watch`` (``passage`` is one) ends with
``DependencyUnavailable`` as soon as another caller's failure opens the gate, instead of
waiting for a timeout of its own that can only fail the same way. A frozen datastore is
noticed before any client timeout if the gate has a ``stall_seconds``: a block waiting that
long makes the gate probe the datastore, bounded by ``stall_probe_seconds`` (by default the
same time), and a probe without an answer opens it; a block that is only slow (a busy
machine) finds it answering and goes on. Suspicion can come early, as it costs one probe;
the verdict needs the longer bound, as a wrong one refuses everyone for an interval.
No request is ever a trial: a background probe finds the datastore back, so while it is away
every answer is immediate, and once it answers the gate closes within an interval. Users
guards PostgreSQL (with a stall check) and its cache's Redis with it, auth MongoDB and its
throttles' Redis (with a stall check, and a ``RedisConnectionWatch`` that opens the gate when
Redis closes its connections: gatehouse_common.redis_watch). Background loops (outbox relays,
the mail worker) keep their own backoff: nobody waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

from gatehouse_common.logging import get_logger
from gatehouse_common.problems import DependencyUnavailable

_log = get_logger(__name__)


class AvailabilityGate:
    """A circuit breaker in front of one datastore, named ``dependency``, with a probe.

    Closed, it admits everyone. A failure to reach the datastore (``failed``) opens it:
    ``admit`` then raises ``DependencyUnavailable`` (503 with ``Retry-After``) at once, and a
    task calls ``probe`` every ``retry_interval_seconds`` until it succeeds, which closes the
    gate. ``probe`` must be cheap and bounded by its client's own timeouts (a ping). The
    probing ends with ``aclose``, or the ``async with`` block of the gate. So a dead or
    frozen datastore costs a timeout only to the requests in flight when it failed (or, with
    ``stall_seconds``, at most that plus ``stall_probe_seconds``), and a datastore that is
    back is used again within about an interval.

    ``interrupts_in_flight=False`` is for a client that must not be cancelled mid-operation:
    the blocks in flight when the gate opens then end by the client's own timeouts, and only
    the callers that come after are refused at once.
    """

    def __init__(  # noqa: PLR0913 - the stall check's two figures and the flag are keyword-only
        self,
        dependency: str,
        retry_interval_seconds: float,
        probe: Callable[[], Awaitable[object]],
        *,
        stall_seconds: float | None = None,
        stall_probe_seconds: float | None = None,
        interrupts_in_flight: bool = True,
    ) -> None:
        self.dependency = dependency
        self._interrupts_in_flight = interrupts_in_flight
        self._retry_interval = retry_interval_seconds
        self._probe = probe
        self._stall_seconds = stall_seconds
        # The bound of the probe of ``suspect`` (a stall check's, or a timed-out client's).
        self._stall_probe_seconds = (
            stall_probe_seconds if stall_probe_seconds is not None else (stall_seconds or 0.0)
        )
        self._next_probe_at: float | None = None  # None: closed
        self._prober: asyncio.Task[None] | None = None
        self._stall_check: asyncio.Task[None] | None = None
        # Stall checks' probes cancelled at their bound and still cleaning up.
        self._abandoned_probes: set[asyncio.Future[object]] = set()
        # The scopes of the blocks in ``watch`` that use the datastore now, with their tasks
        # and the timers of their stall checks.
        self._watched: dict[asyncio.Timeout, tuple[asyncio.Task[Any], asyncio.TimerHandle | None]]
        self._watched = {}

    @property
    def is_open(self) -> bool:
        return self._next_probe_at is not None

    def admit(self) -> None:
        """Return while the gate is closed; raise ``DependencyUnavailable`` while it is open."""
        if self._next_probe_at is not None:
            raise DependencyUnavailable(
                self.dependency, retry_after_seconds=self._next_probe_at - time.monotonic()
            )

    def failed(self) -> float:
        """Open the gate (if closed) and probe until the datastore answers; returns the
        interval, for ``Retry-After``."""
        if self._next_probe_at is None:
            self._next_probe_at = time.monotonic() + self._retry_interval
            self._prober = asyncio.get_running_loop().create_task(
                self._probe_until_back(), name=f"probe {self.dependency}"
            )
            if self._interrupts_in_flight:
                self._cut_short_watched()
        return self._retry_interval

    def _cut_short_watched(self) -> None:
        """Expire the scope of every watched block but the caller's own (it is failing already)."""
        now = asyncio.get_running_loop().time()
        failing = asyncio.current_task()
        for scope, (task, _) in self._watched.items():
            if task is not failing and not scope.expired():
                scope.reschedule(now)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop probing (the end of the lifespan)."""
        for task in (self._prober, self._stall_check):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # Probes cancelled at their bound may still be cleaning up: let them finish, whatever
        # they raise (their failure was the stall, reported already).
        await asyncio.gather(*self._abandoned_probes, return_exceptions=True)

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[Callable[[], None]]:
        """A block that stops waiting on the datastore once another caller finds it gone.

        Yields ``start``: from its call on (when the block first uses the datastore; a request
        that may not need it at all calls it late), the gate opening cancels whatever the block
        awaits, and the block ends with ``DependencyUnavailable``. Whatever the block does on
        its way out (``finally``, ``except BaseException``) runs after the cancellation, so it
        must not wait on the datastore again: drop a connection rather than roll it back.
        With ``stall_seconds``, a block still running that long after ``start`` has the gate
        check the datastore (``suspect``).
        """
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("AvailabilityGate.watch needs a running task")
        scope = asyncio.timeout(None)

        def start() -> None:
            timer = None
            if self._stall_seconds is not None:
                timer = task.get_loop().call_later(self._stall_seconds, self.suspect)
            self._watched[scope] = (task, timer)

        try:
            async with scope:
                yield start
        except TimeoutError as exc:
            if not scope.expired():
                raise  # the block's own timeout, not the gate's
            raise DependencyUnavailable(
                self.dependency, retry_after_seconds=self._retry_interval
            ) from exc
        finally:
            _, timer = self._watched.pop(scope, (task, None))
            if timer is not None:
                timer.cancel()

    def suspect(self) -> None:
        """Check the datastore, once at a time: a probe bounded by ``stall_probe_seconds``,
        and the gate opens only if it gets no answer (``_check_stalled``).

        A watched block that has waited ``stall_seconds`` calls it, and so may a client whose
        own timeout expired: on a busy machine a healthy datastore's reply can wait past that
        for its turn on the event loop, and opening the gate on the timeout alone refused (or
        bypassed) the datastore for an interval though nothing was wrong with it.
        """
        if self.is_open or (self._stall_check is not None and not self._stall_check.done()):
            return
        self._stall_check = asyncio.get_running_loop().create_task(
            self._check_stalled(self._stall_probe_seconds), name=f"stall check {self.dependency}"
        )

    async def _check_stalled(self, bound_seconds: float) -> None:
        """Probe within ``bound_seconds``; no answer opens the gate, cutting the blocks short.

        A machine too busy to answer a ping in that time would open it too; so the bound
        should be well above the datastore's latency under load, and the probe a command on
        a connection of its own, which no request can keep busy.

        The verdict does not wait for the probe to finish: a probe cancelled at its bound may
        still be cleaning up (SQLAlchemy closes an asyncpg connection it drops gracefully, for
        up to 2 s, which a frozen server spends in full), and that cleanup runs on its own.
        """
        probe = asyncio.ensure_future(self._probe())
        try:
            done = await _answered_within(probe, bound_seconds)
        finally:
            if not probe.done():  # no answer in time, or the gate is closing
                probe.cancel()
                self._abandoned_probes.add(probe)
                probe.add_done_callback(self._forget_abandoned)
        error = probe.exception() if done else TimeoutError()
        if error is None:
            return
        if not self.is_open:
            _log.warning(
                "dependency_stalled",
                dependency=self.dependency,
                probe_bound_seconds=bound_seconds,
                error=type(error).__name__,
            )
            self.failed()

    def _forget_abandoned(self, probe: asyncio.Future[object]) -> None:
        self._abandoned_probes.discard(probe)
        if not probe.cancelled():
            probe.exception()  # retrieved: its failure is the outage already reported

    @asynccontextmanager
    async def passage(self, is_outage: Callable[[Exception], bool]) -> AsyncIterator[None]:
        """Admit the block (or raise ``DependencyUnavailable``) and watch it (``watch``); an
        exception for which ``is_outage`` is true opens the gate."""
        self.admit()
        async with self.watch() as start:
            start()
            try:
                yield
            except Exception as exc:
                if is_outage(exc):
                    self.failed()
                raise

    async def _probe_until_back(self) -> None:
        while True:
            await asyncio.sleep(self._retry_interval)
            try:
                await self._probe()
            except Exception:  # noqa: BLE001 - whatever a ping raises, the datastore is still away
                self._next_probe_at = time.monotonic() + self._retry_interval
                continue
            self._next_probe_at = None
            _log.info("dependency_recovered", dependency=self.dependency)
            return


async def _answered_within(probe: asyncio.Future[object], seconds: float) -> bool:
    """Whether ``probe`` is done within ``seconds`` and, after them, a few more turns of the
    event loop.

    A probe's round trips each need a turn of the loop to be read and answered. A loop that
    turns slowly (a busy process on a machine short of CPU, 0.1-0.6 s a turn in a chaos run)
    gives a healthy datastore's answer no chance within the bound, and the gate opened on a
    PostgreSQL that was fine, for a second at a time, again and again. The turns after the
    bound cost nothing when the loop is idle (a frozen datastore is still called so at the
    bound) and wait out the loop's own slowness when it is not.
    """
    await asyncio.wait({probe}, timeout=seconds)
    for _ in range(_TURNS_AFTER_THE_BOUND):
        if probe.done():
            break
        await asyncio.sleep(0)
    return probe.done()


# Enough for a probe of two round trips (a pre-ping and the query) to be read and answered.
_TURNS_AFTER_THE_BOUND = 4
