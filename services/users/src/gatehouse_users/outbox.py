"""users' transactional outbox: events are rows written in the transaction of their change.

``record`` adds the row in the caller's session, so the event commits or rolls back with the
change it describes. ``PostgresOutbox`` is the ``OutboxSource`` that ``OutboxRelay`` drains to
``events:users``: it locks the rows it hands out (``FOR UPDATE SKIP LOCKED``) until they are
marked published (deleted), so replicas relay disjoint batches, and a relay that dies before
marking leaves them to be published again (consumers skip the duplicate by its id).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gatehouse_common.events import Event, EventPayload, decode
from gatehouse_users.models import OutboxEvent

PRODUCER = "users"


def record(session: AsyncSession, payload: EventPayload) -> Event[Any]:
    """Add the event for ``payload`` to the session's transaction; returns it."""
    event = Event.of(payload, producer=PRODUCER)
    session.add(
        OutboxEvent(
            event_id=event.id,
            event_type=event.type,
            version=event.version,
            occurred_at=event.occurred_at,
            payload=payload.model_dump(mode="json"),
        )
    )
    return event


def _as_event(row: OutboxEvent) -> Event[Any]:
    # Through the kit's decoder, so an outbox row is read exactly as a stream entry would be.
    return decode(
        {
            "id": str(row.event_id),
            "type": row.event_type,
            "version": str(row.version),
            "producer": PRODUCER,
            "occurred_at": row.occurred_at.isoformat(),
            "payload": json.dumps(row.payload),
        }
    )


class PostgresOutbox:
    """The outbox table as an ``OutboxSource``.

    A batch is fetched in a transaction that stays open, holding the row locks, until
    ``mark_published`` deletes what was published and commits. If publishing failed before
    anything was published, the next fetch (or ``close``) rolls that transaction back.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._batch: AsyncSession | None = None

    async def fetch_unpublished(self, limit: int) -> Sequence[Event[Any]]:
        await self.close()
        session = self._sessions()
        try:
            rows = (
                await session.scalars(
                    select(OutboxEvent)
                    .order_by(OutboxEvent.position)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            events = [_as_event(row) for row in rows]
        except BaseException:
            await session.close()
            raise
        if events:
            self._batch = session
        else:
            await session.close()
        return events

    async def mark_published(self, event_ids: Sequence[uuid.UUID]) -> None:
        session, self._batch = self._batch, None
        if session is None:
            raise RuntimeError("mark_published without a fetched batch")
        try:
            await session.execute(delete(OutboxEvent).where(OutboxEvent.event_id.in_(event_ids)))
            await session.commit()
        finally:
            await session.close()

    async def close(self) -> None:
        """Release a fetched batch that was not marked (its rows are relayed again)."""
        session, self._batch = self._batch, None
        if session is not None:
            await session.close()  # rolls back, releasing the row locks
