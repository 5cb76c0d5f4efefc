"""Fail fast while a required datastore is down: a circuit breaker shared by a process's requests.

Without it every request that needs a dead or frozen datastore waits for its own connect or
server-selection timeout (seconds) before its 503; with it only one request per interval does,
and the others get their 503 with ``Retry-After`` at once. Users guards PostgreSQL with it,
auth MongoDB. Background loops (outbox relays, the mail worker) keep their own backoff: they
wait anyway, and nobody waits for them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from gatehouse_common.logging import get_logger
from gatehouse_common.problems import DependencyUnavailable

_log = get_logger(__name__)


class AvailabilityGate:
    """A half-open circuit breaker in front of one datastore, named ``dependency``.

    Closed, it admits everyone. A failure to reach the datastore opens it for
    ``retry_interval_seconds``: meanwhile ``admit`` raises ``DependencyUnavailable`` (503 with
    ``Retry-After``) at once. Past the interval it admits one request, the trial, and still
    refuses the others until the trial ends: its success closes the gate, its failure opens
    it again. So a dead or frozen datastore costs one timeout per interval, not one per
    request, and a datastore that is back is used within the interval.
    """

    def __init__(
        self,
        dependency: str,
        retry_interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dependency = dependency
        self._retry_interval = retry_interval_seconds
        self._clock = clock
        self._open_until: float | None = None  # None: closed
        self._trial_in_flight = False

    def admit(self) -> bool:
        """Let the caller use the datastore, or raise ``DependencyUnavailable``.

        True when the caller is the trial: it must report ``succeeded``, ``failed`` or
        ``abandoned``.
        """
        if self._open_until is None:
            return False
        now = self._clock()
        if now < self._open_until:
            raise DependencyUnavailable(self.dependency, retry_after_seconds=self._open_until - now)
        if self._trial_in_flight:
            raise DependencyUnavailable(self.dependency, retry_after_seconds=self._retry_interval)
        self._trial_in_flight = True
        return True

    def succeeded(self, *, trial: bool) -> None:
        if trial:
            self._trial_in_flight = False
        if self._open_until is not None:
            self._open_until = None
            _log.info("dependency_recovered", dependency=self.dependency)

    def failed(self, *, trial: bool) -> float:
        """Open (again) for the interval; returns the interval, for ``Retry-After``."""
        if trial:
            self._trial_in_flight = False
        self._open_until = self._clock() + self._retry_interval
        return self._retry_interval

    def abandoned(self, *, trial: bool) -> None:
        """The caller ended without learning whether the datastore answers (e.g. cancelled)."""
        if trial:
            self._trial_in_flight = False

    @asynccontextmanager
    async def passage(self, is_outage: Callable[[Exception], bool]) -> AsyncIterator[None]:
        """Admit the block (or raise ``DependencyUnavailable``) and report how it ended.

        An exception for which ``is_outage`` is true opens the gate; any other ends the
        caller's trial without a verdict; a block that completes closes the gate.
        """
        trial = self.admit()
        try:
            yield
        except Exception as exc:
            if is_outage(exc):
                self.failed(trial=trial)
            else:
                self.abandoned(trial=trial)
            raise
        except BaseException:
            self.abandoned(trial=trial)
            raise
        self.succeeded(trial=trial)
