"""Domain events between services on Redis Streams (see docs/events.md).

Publish through an outbox (``OutboxRelay`` + ``EventPublisher``), consume with one consumer
group per service (``EventConsumer``), run the loops in the lifespan (``run_in_background``).
"""

from gatehouse_common.events.background import (
    BackgroundLoop,
    Backoff,
    repeat_until_cancelled,
    run_in_background,
)
from gatehouse_common.events.catalog import (
    AccountErased,
    AccountRegistered,
    LoginsRevoked,
    RevocationReason,
)
from gatehouse_common.events.channel import event_channel_check, open_event_redis
from gatehouse_common.events.consumer import EventConsumer, Handler, default_consumer_name
from gatehouse_common.events.envelope import (
    Event,
    EventPayload,
    MalformedEvent,
    decode,
    encode,
    event_type_of,
    payload_types,
    register_payload,
)
from gatehouse_common.events.names import (
    AUTH_STREAM,
    USERS_STREAM,
    dead_letter_stream,
    seen_key,
    stream_for,
)
from gatehouse_common.events.outbox import OutboxRelay, OutboxSource
from gatehouse_common.events.publisher import EventPublisher
from gatehouse_common.events.settings import EventSettings

__all__ = [
    "AUTH_STREAM",
    "USERS_STREAM",
    "AccountErased",
    "AccountRegistered",
    "BackgroundLoop",
    "Backoff",
    "Event",
    "EventConsumer",
    "EventPayload",
    "EventPublisher",
    "EventSettings",
    "Handler",
    "LoginsRevoked",
    "MalformedEvent",
    "OutboxRelay",
    "OutboxSource",
    "RevocationReason",
    "dead_letter_stream",
    "decode",
    "default_consumer_name",
    "encode",
    "event_channel_check",
    "event_type_of",
    "open_event_redis",
    "payload_types",
    "register_payload",
    "repeat_until_cancelled",
    "run_in_background",
    "seen_key",
    "stream_for",
]
