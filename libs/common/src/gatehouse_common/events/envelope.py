"""The event envelope and its encoding as a Redis stream entry.

An entry holds the envelope as flat fields (``id``, ``type``, ``version``, ``producer``,
``occurred_at``, ``payload`` as JSON), so ``XRANGE`` in redis-cli stays readable.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from redis.typing import EncodableT, FieldT

from gatehouse_common.events.entries import text


class EventPayload(BaseModel):
    """Base of every payload: subclasses name their event type and schema version."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    version: ClassVar[int] = 1


PayloadT = TypeVar("PayloadT", bound=EventPayload)


class Event(BaseModel, Generic[PayloadT]):
    """One domain event. ``id`` is the idempotency key: a redelivery carries the same id."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int
    occurred_at: AwareDatetime
    producer: str
    payload: PayloadT

    @classmethod
    def of(
        cls, payload: PayloadT, *, producer: str, occurred_at: datetime | None = None
    ) -> Event[PayloadT]:
        """A new event for ``payload``; its type and version come from the payload class."""
        return cls(
            type=payload.event_type,
            version=payload.version,
            producer=producer,
            occurred_at=occurred_at or datetime.now(UTC),
            payload=payload,
        )


class MalformedEvent(Exception):
    """A stream entry that is not an event this code can read; retrying cannot help."""


_PAYLOAD_TYPES: dict[str, type[EventPayload]] = {}


def register_payload(payload_type: type[PayloadT]) -> type[PayloadT]:
    """Class decorator: make ``decode`` parse entries of this event type into this payload."""
    _PAYLOAD_TYPES[payload_type.event_type] = payload_type
    return payload_type


def payload_types() -> Mapping[str, type[EventPayload]]:
    """Every registered event type and its payload model (the catalogue)."""
    return dict(_PAYLOAD_TYPES)


def encode(event: Event[Any]) -> dict[FieldT, EncodableT]:
    return {
        "id": str(event.id),
        "type": event.type,
        "version": str(event.version),
        "producer": event.producer,
        "occurred_at": event.occurred_at.isoformat(),
        "payload": event.payload.model_dump_json(),
    }


def decode(fields: Mapping[Any, Any]) -> Event[Any]:
    """Parse a stream entry; raises ``MalformedEvent`` for an unknown type or a bad field."""
    try:
        entry = {text(key): text(value) for key, value in fields.items()}
        payload_type = _PAYLOAD_TYPES[entry["type"]]
        return Event[payload_type].model_validate(  # type: ignore[valid-type]
            {
                "id": entry["id"],
                "type": entry["type"],
                "version": entry["version"],
                "producer": entry["producer"],
                "occurred_at": entry["occurred_at"],
                "payload": payload_type.model_validate_json(entry["payload"]),
            }
        )
    except (KeyError, UnicodeDecodeError, ValidationError) as exc:
        raise MalformedEvent(type(exc).__name__) from None


def event_type_of(fields: Mapping[Any, Any]) -> str | None:
    """The ``type`` field of an entry, without parsing the rest."""
    value = fields.get("type", fields.get(b"type"))
    return None if value is None else text(value)
