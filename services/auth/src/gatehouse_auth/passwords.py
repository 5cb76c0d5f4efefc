"""Password hashing with Argon2id: off the event loop, and a bounded resource."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from gatehouse_auth.metrics import PASSWORD_HASHING_REFUSED
from gatehouse_auth.settings import IdentityStoreSettings
from gatehouse_common.logging import get_logger
from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError

T = TypeVar("T")

_log = get_logger(__name__)


class PasswordHashingBusy(ProblemError):
    """Every password-hashing slot and queue place is taken: try again in a moment."""

    status = 503
    problem_type = f"{PROBLEM_TYPE_BASE}overloaded"

    def __init__(self) -> None:
        super().__init__(
            "The service is busy checking passwords; try again shortly.",
            headers={"Retry-After": "1", "Cache-Control": "no-store"},
        )


class PasswordHasher:
    """Hashes and verifies passwords; rehashes when the configured parameters change.

    At most ``password_hashing_concurrency`` hashes run at once (each takes the Argon2 memory
    cost) and at most ``password_hashing_queue_limit`` wait for a slot; one more is refused at
    once with ``PasswordHashingBusy`` (503, ``Retry-After``), and so is one that has waited
    ``password_hashing_queue_timeout_seconds``: a flood of registrations or logins costs
    others at most one queue's worth of waiting, and a machine short of CPU at most that time.

    The hashes run in a pool of their own whose threads have Linux's idle scheduling policy
    (``SCHED_IDLE``; the Argon2 lane threads a hash starts inherit it): whenever another
    thread of the machine becomes ready on their CPU it runs at once, so the loop of a busy
    auth, and those of the services beside it, no longer queue behind four hashes of four
    lanes each. Hashes still take every cycle nothing else wants, and their container keeps
    its CPU share against the others. At the same priority as the loop, four hashes made
    requests wait 40 ms at the median and 150-200 ms at the 99th percentile; niced, 2 ms and
    10 ms; idle, the chaos run's loops lag less than niced, the other services' too
    (docs/auth.md, "Passwords").

    Verifying for an unknown account checks the password against a throwaway hash made with
    the same parameters, so a login for an unknown email takes as long as one for a known
    email (no account discovery by timing).
    """

    def __init__(self, settings: IdentityStoreSettings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.argon2_time_cost,
                    memory_cost=settings.argon2_memory_cost_kib,
                    parallelism=settings.argon2_parallelism,
                ),
            )
        )
        self._threads = ThreadPoolExecutor(
            settings.password_hashing_concurrency,
            thread_name_prefix="argon2",
            initializer=_run_below_every_other_thread,
        )
        self._slots = asyncio.Semaphore(settings.password_hashing_concurrency)
        self._queue_limit = settings.password_hashing_queue_limit
        self._queue_timeout = settings.password_hashing_queue_timeout_seconds
        # The hashes waiting for a slot (their waits' timeout scopes), and whether to refuse them.
        self._queued: set[asyncio.Timeout] = set()
        self._refusing = False
        self._decoy_hash = self._hash.hash(secrets.token_urlsafe(32))

    def close(self) -> None:
        """Let the hashing threads end (a hash still running finishes first)."""
        self._threads.shutdown(wait=False)

    def refuse_queued(self) -> None:
        """Refuse every hash that has not started, from now on (``PasswordHashingBusy``, a 503
        with ``Retry-After``), those waiting for a slot at once; the running ones finish.

        Called when the server's shutdown begins: the drain waits for every request in flight,
        and a login queued behind a full hashing pool would hold it (and the restart) for up to
        the queue timeout. One chaos run's auth restart took 4.2 s, its drain 4.4 s of it.
        """
        self._refusing = True
        now = asyncio.get_running_loop().time()
        for scope in self._queued:
            scope.reschedule(now)

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """(matches, new hash to store or None). ``stored_hash`` None means no such account."""
        if stored_hash is None:
            await self._run(self._hash.verify, password, self._decoy_hash)
            return False, None
        try:
            return await self._run(self._hash.verify_and_update, password, stored_hash)
        except UnknownHashError:
            return False, None

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        if self._refusing or (self._slots.locked() and len(self._queued) >= self._queue_limit):
            PASSWORD_HASHING_REFUSED.inc()
            raise PasswordHashingBusy
        queued = asyncio.timeout(self._queue_timeout)
        self._queued.add(queued)
        try:
            async with queued:
                await self._slots.acquire()
        except TimeoutError:
            PASSWORD_HASHING_REFUSED.inc()
            raise PasswordHashingBusy from None
        finally:
            self._queued.discard(queued)
        # The slot is freed when the thread finishes, not when the request does: a client that
        # disconnects mid-hash cannot start another hash while its thread still runs.
        work = asyncio.get_running_loop().run_in_executor(self._threads, function, *args)
        work.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(work)


def _run_below_every_other_thread() -> None:
    """Give the calling thread the idle scheduling policy (Linux; per thread, and inherited by
    the threads it starts). Any thread may lower its own policy: no capability is needed."""
    if sys.platform != "linux":
        return
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
    except OSError as exc:  # a sandbox that forbids it: hash at the loop's priority
        _log.warning("password_hashing_priority_not_lowered", error=str(exc))
