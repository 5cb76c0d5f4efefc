"""A consumer group on one stream: at-least-once delivery, idempotent handling, dead letters.

Each consuming service has one group per stream it reads (the group is named after the
service), and each of its processes is one consumer of that group, so an entry is handled by
one replica. The loop:

1. ``XAUTOCLAIM`` entries pending for longer than ``claim_min_idle_seconds``: left by a
   consumer that died, or whose handler failed (that is how failures are retried);
2. ``XREADGROUP`` new entries, blocking up to ``block_seconds`` (or until the next claim);
3. for each entry: skip it if the group's ``events:seen:<group>:<id>`` key says it was
   handled, else take that key (``SET NX`` with a lease) and run the handler within
   ``handler_timeout_seconds``; on success mark the key handled for ``dedupe_ttl_seconds``
   and ``XACK`` in one transaction; on failure release the key and leave the entry pending;
4. an entry delivered ``max_deliveries`` times without success, or unreadable, goes to
   ``<stream>:dead`` (with the group, delivery count and error type) and is acknowledged.

The ``events:seen`` key makes a duplicate (the same event published twice by an outbox relay,
or redelivered after a crash between the handler and ``XACK``) a no-op, and stops two
consumers from running the same event at once. It cannot make a handler's effect atomic with
the key: a process killed after the handler's effect but before the key is written runs the
handler again, so handlers must also be idempotent in effect (upsert, delete-if-exists).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from gatehouse_common.events.background import Backoff, repeat_until_cancelled
from gatehouse_common.events.entries import Fields, range_entries, read_entries, text
from gatehouse_common.events.envelope import (
    Event,
    MalformedEvent,
    PayloadT,
    decode,
    event_type_of,
)
from gatehouse_common.events.metrics import (
    EVENTS_CONSUMER_LAG,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
    EVENTS_HANDLED,
)
from gatehouse_common.events.names import dead_letter_stream, seen_key
from gatehouse_common.logging import get_logger

Handler = Callable[[Event[Any]], Awaitable[None]]

_log = get_logger(__name__)
_HANDLED = "handled"
_LAG_INTERVAL_SECONDS = 5.0


def default_consumer_name() -> str:
    """Unique per process: the host (the pod's name in Kubernetes), the pid and a random tag."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class EventConsumer:
    """One consumer of ``group`` on ``stream``; register handlers with ``on``, then ``run``."""

    def __init__(  # noqa: PLR0913 - keyword-only tuning knobs with defaults
        self,
        redis: Redis,
        *,
        stream: str,
        group: str,
        consumer_name: str | None = None,
        block_seconds: float = 5.0,
        batch_size: int = 16,
        claim_min_idle_seconds: float = 60.0,
        max_deliveries: int = 5,
        dedupe_ttl_seconds: int = 7 * 24 * 3600,
        handler_timeout_seconds: float | None = None,
        dead_letter_max_length: int = 10_000,
        backoff: Backoff | None = None,
    ) -> None:
        self._redis = redis
        self.stream = stream
        self.group = group
        self.consumer_name = consumer_name or default_consumer_name()
        self.name = f"event-consumer:{stream}:{group}"
        self._block_ms = int(block_seconds * 1000)
        self._batch_size = batch_size
        self._min_idle_ms = int(claim_min_idle_seconds * 1000)
        self._max_deliveries = max_deliveries
        self._dedupe_ttl = dedupe_ttl_seconds
        # Shorter than the claim idle time, so no other consumer claims an entry whose handler
        # is still running; the lease on its seen key lasts as long as the handler may.
        self._handler_timeout = handler_timeout_seconds or claim_min_idle_seconds / 2
        self._lease_ms = max(1, int(self._handler_timeout * 1000))
        self._dead_letter_max_length = dead_letter_max_length
        self._backoff = backoff or Backoff()
        self._handlers: dict[str, Handler] = {}
        self._group_ready = False
        self._claim_cursor = "0-0"
        self._next_claim_at = 0.0
        self._next_lag_at = 0.0
        self._handled = EVENTS_HANDLED.labels(stream, group)
        self._failed = EVENTS_FAILED.labels(stream, group)
        self._dead_lettered = EVENTS_DEAD_LETTERED.labels(stream, group)
        self._lag = EVENTS_CONSUMER_LAG.labels(stream, group)

    def on(
        self, payload_type: type[PayloadT], handler: Callable[[Event[PayloadT]], Awaitable[None]]
    ) -> None:
        """Handle events of ``payload_type``; entries of other types are acknowledged unread."""
        self._handlers[payload_type.event_type] = handler

    async def run(self) -> None:
        """Consume until cancelled; while Redis is unreachable, retry with backoff."""
        await repeat_until_cancelled(self._iteration, component=self.name, backoff=self._backoff)

    async def _iteration(self) -> None:
        if not self._group_ready:
            await self.ensure_group()
            self._group_ready = True
        try:
            await self._step()
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                # The stream or group is gone (Redis lost its data): create them again.
                self._group_ready = False
            raise

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing. New groups start at the beginning."""
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _step(self) -> None:
        """One iteration: claim abandoned entries when due, then read and handle new ones."""
        now = time.monotonic()
        if now >= self._next_claim_at:
            await self._claim_abandoned()
            self._next_claim_at = now + max(self._min_idle_ms / 2000, 0.05)
        if now >= self._next_lag_at:
            await self._update_lag()
            self._next_lag_at = now + _LAG_INTERVAL_SECONDS
        # Wake up when the next claim is due, so a failed handler is retried on its schedule
        # and not a whole block later. At least 1 ms: ``BLOCK 0`` waits forever.
        until_claim_ms = int((self._next_claim_at - time.monotonic()) * 1000)
        response = await self._redis.xreadgroup(
            self.group,
            self.consumer_name,
            {self.stream: ">"},
            count=self._batch_size,
            block=max(1, min(self._block_ms, until_claim_ms)),
        )
        for _stream, entries in read_entries(response):
            for entry_id, fields in entries:
                await self._process(entry_id, fields, deliveries=1)

    async def _claim_abandoned(self) -> None:
        next_cursor, claimed, deleted = await self._redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer_name,
            min_idle_time=self._min_idle_ms,
            start_id=self._claim_cursor,
            count=self._batch_size,
        )
        self._claim_cursor = text(next_cursor)
        if deleted:
            # Trimmed by MAXLEN before the group acknowledged them: these events are lost.
            _log.warning(
                "event_entries_trimmed_while_pending",
                stream=self.stream,
                group=self.group,
                entries=len(deleted),
            )
        entries = range_entries(claimed)
        if not entries:
            return
        deliveries = await self._delivery_counts([entry_id for entry_id, _ in entries])
        for entry_id, fields in entries:
            count = deliveries.get(entry_id)
            if count is None:
                continue  # acknowledged by its previous owner meanwhile
            if count > self._max_deliveries:
                await self._dead_letter(entry_id, fields, count, "max_deliveries")
            else:
                await self._process(entry_id, fields, deliveries=count)

    async def _delivery_counts(self, entry_ids: list[str]) -> dict[str, int]:
        """How often each entry was delivered (``XAUTOCLAIM`` does not say; ``XPENDING`` does)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
            replies = await pipe.execute()
        counts: dict[str, int] = {}
        for reply in replies:
            for pending in reply:
                counts[text(pending["message_id"])] = int(pending["times_delivered"])
        return counts

    async def _process(self, entry_id: str, fields: Fields, *, deliveries: int) -> None:
        try:
            event = decode(fields)
        except MalformedEvent as exc:
            if event_type_of(fields) not in self._handlers:
                # Not ours (a type this service does not know): nothing to retry.
                await self._redis.xack(self.stream, self.group, entry_id)
                return
            await self._dead_letter(entry_id, fields, deliveries, f"malformed:{exc}")
            return
        handler = self._handlers.get(event.type)
        if handler is None:
            await self._redis.xack(self.stream, self.group, entry_id)
            return
        key = seen_key(self.group, event.id)
        if not await self._redis.set(key, self.consumer_name, nx=True, px=self._lease_ms):
            if text(await self._redis.get(key) or b"") == _HANDLED:
                await self._redis.xack(self.stream, self.group, entry_id)
            # Else another consumer is handling it now; it stays pending until that ends.
            return
        try:
            async with asyncio.timeout(self._handler_timeout):
                await handler(event)
        except Exception as exc:  # noqa: BLE001 - any handler failure means "retry later"
            await self._handler_failed(entry_id, fields, event, deliveries, exc)
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, _HANDLED, ex=self._dedupe_ttl)
            pipe.xack(self.stream, self.group, entry_id)
            await pipe.execute()
        self._handled.inc()

    async def _handler_failed(
        self,
        entry_id: str,
        fields: Fields,
        event: Event[Any],
        deliveries: int,
        exc: Exception,
    ) -> None:
        self._failed.inc()
        _log.warning(
            "event_handler_failed",
            stream=self.stream,
            group=self.group,
            event_type=event.type,
            event_id=str(event.id),
            deliveries=deliveries,
            error=type(exc).__name__,
        )
        await self._redis.delete(seen_key(self.group, event.id))
        if deliveries >= self._max_deliveries:
            await self._dead_letter(entry_id, fields, deliveries, type(exc).__name__)

    async def _dead_letter(
        self, entry_id: str, fields: Fields, deliveries: int, reason: str
    ) -> None:
        record: dict[FieldT, EncodableT] = {text(key): value for key, value in fields.items()}
        record.update(
            {
                "dead_letter_source_id": entry_id,
                "dead_letter_group": self.group,
                "dead_letter_deliveries": str(deliveries),
                "dead_letter_reason": reason,
            }
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                dead_letter_stream(self.stream),
                record,
                maxlen=self._dead_letter_max_length,
                approximate=True,
            )
            pipe.xack(self.stream, self.group, entry_id)
            await pipe.execute()
        self._dead_lettered.inc()
        _log.warning(
            "event_dead_lettered",
            stream=self.stream,
            group=self.group,
            entry_id=entry_id,
            event_type=event_type_of(fields),
            deliveries=deliveries,
            reason=reason,
        )

    async def _update_lag(self) -> None:
        """Pending plus not yet delivered. ``lag`` is nil when Redis cannot tell (after some
        deletions); then only the pending count is known."""
        for info in await self._redis.xinfo_groups(self.stream):
            if text(info["name"]) == self.group:
                self._lag.set(int(info["pending"]) + int(info.get("lag") or 0))
                return
