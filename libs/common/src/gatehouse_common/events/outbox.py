"""Relaying events from a service's outbox to its stream.

A producer records each event in the same atomic write as the change it describes (users: a
row of an outbox table in the same PostgreSQL transaction; auth: the event inside the same
MongoDB document write), so a crash after the write cannot lose it. The relay then publishes
what is not yet marked published and marks it only after ``XADD`` succeeded: a crash between
the two publishes the event again, which consumers skip by its id (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from gatehouse_common.events.background import (
    Backoff,
    DependencyOutage,
    OutageReport,
    repeat_until_cancelled,
)
from gatehouse_common.events.envelope import Event
from gatehouse_common.events.publisher import EventPublisher


class OutboxSource(Protocol):
    """A service's store of recorded events, oldest first."""

    async def fetch_unpublished(self, limit: int) -> Sequence[Event[Any]]:
        """Up to ``limit`` events not yet marked published, in the order they occurred."""
        ...

    async def mark_published(self, event_ids: Sequence[uuid.UUID]) -> None:
        """Record that these events are on the stream (or delete them from the outbox)."""
        ...


class OutboxStoreFailed(Exception):
    """The outbox's store (the producer's database) failed to read or mark events; the
    store's own exception is the cause."""


class OutboxRelay:
    """Publishes an outbox's events in order, in batches, every ``poll_interval_seconds``
    or as soon as ``notify()`` is called (after a commit that recorded an event)."""

    def __init__(
        self,
        source: OutboxSource,
        publisher: EventPublisher,
        *,
        batch_size: int = 100,
        poll_interval_seconds: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._source = source
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval = poll_interval_seconds
        self._backoff = backoff or Backoff()
        self._wake = asyncio.Event()
        self.name = f"outbox-relay:{publisher.stream}"
        # Reported apart from the event channel: a database that is away is not a Redis that is.
        self._store = OutageReport(self.name, "outbox_store")

    def notify(self) -> None:
        """Relay now rather than at the next poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch; returns how many were published and marked.

        Stops at the first failed ``XADD`` (keeping the order) and re-raises after marking
        the events published before it. A failure of the outbox's store raises
        ``OutboxStoreFailed``.
        """
        try:
            events = await self._source.fetch_unpublished(self._batch_size)
        except Exception as exc:
            raise OutboxStoreFailed from exc
        published: list[uuid.UUID] = []
        try:
            for event in events:
                await self._publisher.publish(event)
                published.append(event.id)
        finally:
            if published:
                try:
                    await self._source.mark_published(published)
                except Exception as exc:
                    raise OutboxStoreFailed from exc
        return len(published)

    async def run(self) -> None:
        """Relay until cancelled; while the stream or the outbox fails, retry with backoff.

        A failure of the outbox's store is reported as such (``outbox_store_unavailable``),
        not as the event channel's: ``events_channel_up`` stays as the channel last was.
        """
        await repeat_until_cancelled(self._iteration, component=self.name, backoff=self._backoff)

    async def _iteration(self) -> None:
        try:
            relayed = await self.relay_once()
        except OutboxStoreFailed as failure:
            self._store.failed(failure.__cause__ or failure)
            raise DependencyOutage from failure
        except Exception:
            self._store.succeeded()  # it answered; what failed was the event channel
            raise
        self._store.succeeded()
        if relayed < self._batch_size:
            await self._wait_for_work()

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
        self._wake.clear()
