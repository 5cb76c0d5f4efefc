"""Feeding a ``RevocationSet`` from the event streams, in every process that checks tokens.

Not a consumer group: a group shares entries out among its consumers, while every replica of
every service needs every revocation. So each process reads the streams itself (``XRANGE``,
then ``XREAD``), which needs only read access and no acknowledgement; applying an event twice
changes nothing.

At start the feed replays the range that can still matter (entries from now minus the set's
retention: stream ids are the Redis server's time of the ``XADD``, never earlier than the
event), so a restarted process refuses tokens revoked before it started. Then it follows the
streams from where the replay ended, blocking, and after an outage it resumes from there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from gatehouse_common.events import (
    AUTH_STREAM,
    USERS_STREAM,
    AccountErased,
    Backoff,
    LoginsRevoked,
    MalformedEvent,
    decode,
    event_type_of,
    repeat_until_cancelled,
)
from gatehouse_common.events.entries import Fields, range_entries, read_entries
from gatehouse_common.logging import get_logger
from gatehouse_common.revocation.revocation_set import RevocationSet

_log = get_logger(__name__)
_REVOCATION_TYPES = frozenset({LoginsRevoked.event_type, AccountErased.event_type})


class RevocationFeed:
    def __init__(  # noqa: PLR0913 - keyword-only tuning knobs with defaults
        self,
        redis: Redis,
        revocations: RevocationSet,
        *,
        streams: Sequence[str] = (AUTH_STREAM, USERS_STREAM),
        block_seconds: float = 5.0,
        batch_size: int = 500,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._revocations = revocations
        self._streams = tuple(streams)
        self._block_ms = int(block_seconds * 1000)
        self._batch_size = batch_size
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._cursors: dict[str, str] | None = None
        self._caught_up = asyncio.Event()
        self.name = "revocation-feed"

    async def wait_caught_up(self, timeout_seconds: float) -> bool:
        """Wait until the start-up replay is done; False (and a warning) after the timeout.

        A lifespan awaits this before serving, so a restarted process refuses revoked tokens
        from its first request, but does not wait for ever while Redis is down.
        """
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout_seconds)
        except TimeoutError:
            _log.warning("revocation_replay_pending", waited_seconds=timeout_seconds)
            return False
        return True

    async def run(self) -> None:
        """Replay, then follow the streams until cancelled; retry with backoff while Redis
        is unreachable (resuming from the last entry read)."""
        await repeat_until_cancelled(self._iteration, component=self.name, backoff=self._backoff)

    async def _iteration(self) -> None:
        if self._cursors is None:
            self._cursors = await self._replay()
            self._caught_up.set()
        await self._follow_once(self._cursors)

    async def _replay(self) -> dict[str, str]:
        start_ms = int((self._clock() - self._revocations.retention_seconds) * 1000)
        cursors: dict[str, str] = {}
        replayed = 0
        for stream in self._streams:
            cursor = f"{max(start_ms, 0)}-0"
            lower = cursor
            while True:
                entries = range_entries(
                    await self._redis.xrange(stream, lower, "+", count=self._batch_size)
                )
                for entry_id, fields in entries:
                    self._apply(fields)
                    cursor = entry_id
                    replayed += 1
                if not entries or len(entries) < self._batch_size:
                    break
                lower = f"({cursor}"  # exclusive: after the last entry read
            cursors[stream] = cursor
        _log.info("revocation_replayed", entries=replayed, revoked=len(self._revocations))
        return cursors

    async def _follow_once(self, cursors: dict[str, str]) -> None:
        streams: dict[KeyT, StreamIdT] = dict(cursors.items())
        response = await self._redis.xread(streams, count=self._batch_size, block=self._block_ms)
        for stream, entries in read_entries(response):
            for entry_id, fields in entries:
                self._apply(fields)
                cursors[stream] = entry_id

    def _apply(self, fields: Fields) -> None:
        if event_type_of(fields) not in _REVOCATION_TYPES:
            return
        try:
            event = decode(fields)
        except MalformedEvent as exc:
            _log.warning("revocation_event_unreadable", error=str(exc))
            return
        self._revocations.apply(event)
