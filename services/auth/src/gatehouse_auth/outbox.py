"""Auth's event outbox: each event is written inside the document whose change it describes.

MongoDB writes one document atomically, and auth has no multi-document transactions (the
stand-in has none, a single ``mongod`` neither), so an event is recorded by the very write
that makes the change: the identity's insert records ``account.registered``; the update that
revokes a login records its ``logins.revoked``; the update that bumps an identity's login
generation (sign-out everywhere, password change or reset) records the ``logins.revoked`` for
all of them. A crash after that write cannot lose the event, and no event exists for a change
that was not written.

Each such document holds its unpublished events in ``outbox`` (a sub-document keyed by event
id, each value the stream fields of ``gatehouse_common.events.encode``) and their number in
``outbox_pending``. ``MongoOutbox`` is the relay's ``OutboxSource``: it reads the documents
with ``outbox_pending > 0`` and, after the publish, removes each event with one conditional
update. Why this shape: docs/decisions/0009-auth-outbox-in-mongo.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from gatehouse_auth.database import AuthDatabase, Document
from gatehouse_common.events import Event, EventPayload, MalformedEvent, decode, encode
from gatehouse_common.logging import get_logger

PRODUCER = "auth"
OUTBOX = "outbox"
PENDING = "outbox_pending"

# Wakes the relay after a write that recorded an event (``OutboxRelay.notify``); without it
# (the admin CLI) the service's relay still finds the event at its next poll.
Notify = Callable[[], None]

_log = get_logger(__name__)


def new_event(payload: EventPayload) -> Event[Any]:
    return Event.of(payload, producer=PRODUCER)


def outbox_document(event: Event[Any]) -> Document:
    """The fields of a new document that records ``event``."""
    return {OUTBOX: {str(event.id): _stored(event)}, PENDING: 1}


def record(event: Event[Any], changes: Document) -> Document:
    """An update that makes ``changes`` (a ``$set``) and records ``event``, in one write."""
    return {
        "$set": {**changes, f"{OUTBOX}.{event.id}": _stored(event)},
        "$inc": {PENDING: 1},
    }


def _stored(event: Event[Any]) -> dict[str, str]:
    # The stream entry's own fields, all strings: the event reads back exactly as recorded.
    return {str(name): str(value) for name, value in encode(event).items()}


class MongoOutbox:
    """The unpublished events of auth's collections, oldest first (an ``OutboxSource``).

    Several auth replicas may relay the same event at once; consumers skip the duplicate by
    its id, and ``mark_published`` counts each event off once.
    """

    def __init__(self, database: AuthDatabase) -> None:
        self._collections: tuple[AsyncCollection[Document], ...] = (
            database.identities,
            database.login_families,
            database.erasures,
        )
        # Where each fetched event lives: (collection, document id).
        self._homes: dict[uuid.UUID, tuple[AsyncCollection[Document], Any]] = {}

    async def fetch_unpublished(self, limit: int) -> Sequence[Event[Any]]:
        self._homes.clear()
        events: list[Event[Any]] = []
        for collection in self._collections:
            cursor = collection.find({PENDING: {"$gt": 0}}, {OUTBOX: 1}).limit(limit)
            async for document in cursor:
                for fields in dict(document.get(OUTBOX) or {}).values():
                    try:
                        event = decode(fields)
                    except MalformedEvent as exc:
                        # Written by this code, so a bug: say so, and keep relaying the rest.
                        _log.error("outbox_event_unreadable", error=str(exc))
                        continue
                    events.append(event)
                    self._homes[event.id] = (collection, document["_id"])
        events.sort(key=lambda event: event.occurred_at)
        return events[:limit]

    async def mark_published(self, event_ids: Sequence[uuid.UUID]) -> None:
        for event_id in event_ids:
            home = self._homes.pop(event_id, None)
            if home is None:
                continue
            collection, document_id = home
            field = f"{OUTBOX}.{event_id}"
            await collection.update_one(
                {"_id": document_id, field: {"$exists": True}},
                {"$unset": {field: ""}, "$inc": {PENDING: -1}},
            )
