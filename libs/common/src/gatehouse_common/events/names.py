"""Redis key names of the event channel, one prefix per purpose so ACLs can be per service.

- ``events:<producer>``: the stream a service publishes to (``events:auth``, ``events:users``).
  Only its producer writes entries (``XADD``); consumers read it and keep their consumer
  group's state on it (``XREADGROUP``, ``XACK``, ``XAUTOCLAIM`` write that state).
- ``events:<producer>:dead``: entries of that stream that no consumer group could handle.
- ``events:seen:<group>:<event id>``: a consumer group's record of an event it handled (or is
  handling), so a redelivered event is not handled twice.
"""

from __future__ import annotations

from uuid import UUID

STREAM_PREFIX = "events:"
DEAD_LETTER_SUFFIX = ":dead"
SEEN_PREFIX = "events:seen:"


def stream_for(producer: str) -> str:
    """The stream ``producer`` publishes to."""
    return f"{STREAM_PREFIX}{producer}"


def dead_letter_stream(stream: str) -> str:
    return f"{stream}{DEAD_LETTER_SUFFIX}"


def seen_key(group: str, event_id: UUID) -> str:
    return f"{SEEN_PREFIX}{group}:{event_id}"


AUTH_STREAM = stream_for("auth")
USERS_STREAM = stream_for("users")
