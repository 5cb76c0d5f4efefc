"""The outbox relay: at least once, marked published only after XADD succeeded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gatehouse_common.events import (
    AccountRegistered,
    Backoff,
    Event,
    EventConsumer,
    EventPublisher,
    OutboxRelay,
    open_event_redis,
    run_in_background,
)
from gatehouse_common.events.entries import range_entries
from gatehouse_common.events.outbox import OutboxStoreFailed

Eventually = Callable[[Callable[[], bool | Awaitable[bool]]], Awaitable[None]]


class InMemoryOutbox:
    """An outbox as a producer's datastore would keep it (the datastore is outside this test)."""

    def __init__(self, events: Sequence[Event[Any]] = ()) -> None:
        self.events: list[Event[Any]] = list(events)
        self.published: set[uuid.UUID] = set()
        self.fail_marking = False
        self.fail_fetching = False

    async def fetch_unpublished(self, limit: int) -> Sequence[Event[Any]]:
        if self.fail_fetching:
            raise TimeoutError("outbox store not answering")
        return [event for event in self.events if event.id not in self.published][:limit]

    async def mark_published(self, event_ids: Sequence[uuid.UUID]) -> None:
        if self.fail_marking:
            raise ConnectionError("outbox store down")
        self.published.update(event_ids)


def _registered() -> Event[AccountRegistered]:
    return Event.of(
        AccountRegistered(user_id=uuid.uuid4(), email="ada@example.com"), producer="users"
    )


async def test_relay_publishes_in_order_and_then_marks_published(
    events_redis: Redis, stream: str
) -> None:
    events = [_registered() for _ in range(3)]
    outbox = InMemoryOutbox(events)
    relay = OutboxRelay(outbox, EventPublisher(events_redis, stream=stream), batch_size=2)

    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0

    entries = range_entries(await events_redis.xrange(stream))
    assert [fields[b"id"].decode() for _, fields in entries] == [str(e.id) for e in events]
    assert outbox.published == {event.id for event in events}


async def test_nothing_is_marked_published_when_xadd_fails(stream: str) -> None:
    unreachable = open_event_redis("redis://127.0.0.1:1/0", timeout_seconds=0.2, block_seconds=0.1)
    outbox = InMemoryOutbox([_registered()])
    relay = OutboxRelay(outbox, EventPublisher(unreachable, stream=stream))
    try:
        with pytest.raises(RedisConnectionError):
            await relay.relay_once()
    finally:
        await unreachable.aclose()

    assert outbox.published == set()
    assert len(await outbox.fetch_unpublished(10)) == 1


async def test_event_published_but_not_marked_is_published_again_and_handled_once(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    event = _registered()
    outbox = InMemoryOutbox([event])
    relay = OutboxRelay(outbox, EventPublisher(events_redis, stream=stream))
    outbox.fail_marking = True  # the producer dies between XADD and marking
    with pytest.raises(OutboxStoreFailed):
        await relay.relay_once()
    outbox.fail_marking = False
    assert await relay.relay_once() == 1
    assert await events_redis.xlen(stream) == 2

    handled: list[uuid.UUID] = []

    async def handle(event: Event[AccountRegistered]) -> None:
        handled.append(event.id)

    consumer = EventConsumer(events_redis, stream=stream, group="auth", block_seconds=0.2)
    consumer.on(AccountRegistered, handle)
    async with run_in_background(consumer):
        await eventually(lambda: _nothing_pending(events_redis, stream, "auth"))

    assert handled == [event.id]


async def _nothing_pending(redis: Redis, stream: str, group: str) -> bool:
    groups = await redis.xinfo_groups(stream)
    return any(
        info["name"] == group.encode() and info["pending"] == 0 and info["lag"] == 0
        for info in groups
    )


async def test_running_relay_publishes_when_notified_and_retries_after_failures(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    outbox = InMemoryOutbox()
    relay = OutboxRelay(
        outbox,
        EventPublisher(events_redis, stream=stream),
        poll_interval_seconds=30,  # longer than the test: only notify() can wake it
        backoff=Backoff(initial_seconds=0.05, max_seconds=0.2),
    )
    async with run_in_background(relay):
        await asyncio.sleep(0.1)
        outbox.events.append(_registered())
        relay.notify()
        await eventually(lambda: len(outbox.published) == 1)

        outbox.fail_marking = True
        outbox.events.append(_registered())
        relay.notify()
        await eventually(
            lambda: _has_entries(events_redis, stream, 3)
        )  # published, not marked: again
        outbox.fail_marking = False
        await eventually(lambda: len(outbox.published) == 2)


async def _has_entries(redis: Redis, stream: str, at_least: int) -> bool:
    return bool(await redis.xlen(stream) >= at_least)


async def test_an_outbox_store_outage_is_not_reported_as_the_event_channel(
    events_redis: Redis, stream: str, eventually: Eventually, capsys: pytest.CaptureFixture[str]
) -> None:
    outbox = InMemoryOutbox()
    outbox.fail_fetching = True  # the producer's database does not answer; Redis does
    relay = OutboxRelay(
        outbox,
        EventPublisher(events_redis, stream=stream),
        poll_interval_seconds=0.05,
        backoff=Backoff(initial_seconds=0.05, max_seconds=0.1),
    )
    logged: list[str] = []

    def log_has(event: str) -> bool:
        logged.append(capsys.readouterr().out)
        return event in "".join(logged)

    async with run_in_background(relay):
        await eventually(lambda: log_has("outbox_store_unavailable"))
        await asyncio.sleep(0.3)  # several failed rounds
        # A timeout of the store used to count as the channel's: 0 here, and its warning.
        assert REGISTRY.get_sample_value("events_channel_up", {"component": relay.name}) == 1
        assert not log_has("event_channel_unavailable")

        outbox.fail_fetching = False
        outbox.events.append(_registered())
        await eventually(lambda: len(outbox.published) == 1)
        await eventually(lambda: log_has("outbox_store_recovered"))
