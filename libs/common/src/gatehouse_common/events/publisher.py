"""Appending events to a stream."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from gatehouse_common.events.envelope import Event, encode
from gatehouse_common.events.metrics import EVENTS_PUBLISHED


class EventPublisher:
    """``XADD`` to one stream, trimmed to about ``max_length`` entries.

    Trimming is approximate (``MAXLEN ~``), which lets Redis drop whole macro nodes: cheap,
    and the stream keeps at least ``max_length`` entries. Size it so that the slowest consumer
    group and the revocation replay window fit (see docs/events.md).
    """

    def __init__(self, redis: Redis, *, stream: str, max_length: int = 100_000) -> None:
        self._redis = redis
        self.stream = stream
        self._max_length = max_length

    async def publish(self, event: Event[Any]) -> str:
        """Append ``event``; returns the entry id. Raises a Redis error if it was not added."""
        entry_id = await self._redis.xadd(
            self.stream, encode(event), maxlen=self._max_length, approximate=True
        )
        EVENTS_PUBLISHED.labels(self.stream).inc()
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
