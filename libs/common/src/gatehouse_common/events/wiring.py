"""The event channel's parts as a service's lifespan builds them from its ``EventSettings``.

Every service reads the ``<PREFIX>_EVENTS_*`` settings the same way; these functions are that
one way, so a lifespan names only what is its own: the streams, its group and its outbox.
"""

from __future__ import annotations

from redis.asyncio import Redis

from gatehouse_common.events.channel import open_event_redis
from gatehouse_common.events.consumer import EventConsumer
from gatehouse_common.events.outbox import OutboxRelay, OutboxSource
from gatehouse_common.events.publisher import EventPublisher
from gatehouse_common.events.settings import EventSettings


def open_event_channel(settings: EventSettings) -> Redis:
    """The Redis client of the event loops (``open_event_redis``); the caller closes it."""
    return open_event_redis(
        settings.events_redis_url.get_secret_value(),
        timeout_seconds=settings.events_redis_timeout_seconds,
        block_seconds=settings.events_block_seconds,
    )


def outbox_relay(
    settings: EventSettings, events_redis: Redis, outbox: OutboxSource, *, stream: str
) -> OutboxRelay:
    """The relay that publishes ``outbox`` to the service's own ``stream``."""
    return OutboxRelay(
        outbox,
        EventPublisher(events_redis, stream=stream, max_length=settings.events_stream_max_length),
        poll_interval_seconds=settings.events_outbox_poll_interval_seconds,
    )


def event_consumer(
    settings: EventSettings, events_redis: Redis, *, stream: str, group: str
) -> EventConsumer:
    """The consumer group ``group`` on ``stream``; the caller registers its handlers."""
    return EventConsumer(
        events_redis,
        stream=stream,
        group=group,
        block_seconds=settings.events_block_seconds,
        claim_min_idle_seconds=settings.events_claim_min_idle_seconds,
        max_deliveries=settings.events_max_deliveries,
        dedupe_ttl_seconds=settings.events_dedupe_ttl_seconds,
    )
