"""The event kit against a real Redis: delivery, duplicates, crashes, poison events, outages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from testcontainers.community.redis import RedisContainer

from gatehouse_common.events import (
    AccountErased,
    AccountRegistered,
    Backoff,
    Event,
    EventConsumer,
    EventPublisher,
    dead_letter_stream,
    encode,
    open_event_redis,
    run_in_background,
    seen_key,
)
from gatehouse_common.events.entries import range_entries, read_entries
from gatehouse_testing.containers import REDIS_IMAGE
from gatehouse_testing.network import free_port

Eventually = Callable[[Callable[[], bool | Awaitable[bool]]], Awaitable[None]]
FAST_BACKOFF_SECONDS = 0.05


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _registered(email: str = "ada@example.com") -> Event[AccountRegistered]:
    return Event.of(AccountRegistered(user_id=uuid.uuid4(), email=email), producer="auth")


def _consumer(redis: Redis, stream: str, group: str = "users", **options: object) -> EventConsumer:
    settings: dict[str, object] = {
        "block_seconds": 0.2,
        "claim_min_idle_seconds": 0.4,
        "backoff": Backoff(initial_seconds=FAST_BACKOFF_SECONDS, max_seconds=0.5),
    }
    settings.update(options)
    return EventConsumer(redis, stream=stream, group=group, **settings)  # type: ignore[arg-type]


def _recording_consumer(redis: Redis, stream: str) -> tuple[EventConsumer, list[uuid.UUID]]:
    """A consumer of ``stream`` and the ids of the registrations it has handled, in order."""
    received: list[uuid.UUID] = []

    async def handle(event: Event[AccountRegistered]) -> None:
        received.append(event.id)

    consumer = _consumer(redis, stream)
    consumer.on(AccountRegistered, handle)
    return consumer, received


async def _pending(redis: Redis, stream: str, group: str) -> int:
    summary = await redis.xpending(stream, group)
    return int(summary["pending"])


async def test_published_event_is_handled_once_and_acknowledged(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    publisher = EventPublisher(events_redis, stream=stream, max_length=1000)
    consumer = _consumer(events_redis, stream)
    received: list[Event[AccountRegistered]] = []

    async def handle(event: Event[AccountRegistered]) -> None:
        received.append(event)

    consumer.on(AccountRegistered, handle)
    event = _registered()

    async with run_in_background(consumer):
        await publisher.publish(event)
        await eventually(lambda: len(received) == 1)
        await eventually(lambda: _metric("events_handled_total", stream=stream, group="users") == 1)

    assert received[0] == event
    assert received[0].payload.email == "ada@example.com"
    assert _metric("events_published_total", stream=stream) == 1
    assert await _pending(events_redis, stream, "users") == 0
    assert await events_redis.get(seen_key("users", event.id)) == b"handled"


async def test_each_group_gets_every_event_and_other_types_are_acknowledged_unread(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    publisher = EventPublisher(events_redis, stream=stream)
    users, auth = _consumer(events_redis, stream, "users"), _consumer(events_redis, stream, "auth")
    seen: dict[str, list[str]] = {"users": [], "auth": []}

    async def users_handle(event: Event[AccountRegistered]) -> None:
        seen["users"].append(event.type)

    async def auth_handle(event: Event[AccountErased]) -> None:
        seen["auth"].append(event.type)

    users.on(AccountRegistered, users_handle)
    auth.on(AccountErased, auth_handle)

    async with run_in_background(users, auth):
        await publisher.publish(_registered())
        await publisher.publish(Event.of(AccountErased(user_id=uuid.uuid4()), producer="users"))
        await eventually(
            lambda: seen == {"users": ["account.registered"], "auth": ["account.erased"]}
        )
        await eventually(lambda: _both_done(events_redis, stream))


async def _both_done(redis: Redis, stream: str) -> bool:
    groups = await redis.xinfo_groups(stream)
    return all(group["pending"] == 0 and group["lag"] == 0 for group in groups)


async def test_the_same_event_delivered_twice_has_its_effect_once(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    publisher = EventPublisher(events_redis, stream=stream)
    first, second = _consumer(events_redis, stream), _consumer(events_redis, stream)
    profiles: dict[uuid.UUID, int] = {}

    async def handle(event: Event[AccountRegistered]) -> None:
        profiles[event.payload.user_id] = profiles.get(event.payload.user_id, 0) + 1

    first.on(AccountRegistered, handle)
    second.on(AccountRegistered, handle)
    event = _registered()

    async with run_in_background(first, second):
        # An outbox relay that died after XADD but before marking publishes it again.
        await publisher.publish(event)
        await publisher.publish(event)
        await publisher.publish(event)
        await eventually(lambda: _done(events_redis, stream, "users"))

    assert profiles == {event.payload.user_id: 1}
    assert _metric("events_handled_total", stream=stream, group="users") == 1


async def _done(redis: Redis, stream: str, group: str) -> bool:
    for info in await redis.xinfo_groups(stream):
        if info["name"] == group.encode():
            return bool(info["pending"] == 0 and info["lag"] == 0)
    return False


async def test_entry_of_a_consumer_killed_mid_handling_is_claimed_and_handled_once(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    publisher = EventPublisher(events_redis, stream=stream)
    effects: list[str] = []
    started = asyncio.Event()

    async def hang(event: Event[AccountRegistered]) -> None:
        started.set()
        await asyncio.Event().wait()  # the process dies in here
        effects.append("doomed")

    async def handle(event: Event[AccountRegistered]) -> None:
        effects.append("survivor")

    doomed = _consumer(
        events_redis, stream, claim_min_idle_seconds=2.0, handler_timeout_seconds=1.0
    )
    doomed.on(AccountRegistered, hang)
    event = _registered()
    async with run_in_background(doomed):
        await publisher.publish(event)
        await asyncio.wait_for(started.wait(), 5)
    # Cancelled before XACK: the entry is pending for the dead consumer.
    assert await _pending(events_redis, stream, "users") == 1

    survivor = _consumer(events_redis, stream, claim_min_idle_seconds=1.5)
    survivor.on(AccountRegistered, handle)
    async with run_in_background(survivor):
        await eventually(lambda: _done(events_redis, stream, "users"))
        await asyncio.sleep(0.5)  # time for a wrong second handling to show

    assert effects == ["survivor"]
    assert _metric("events_handled_total", stream=stream, group="users") == 1


# 60 s: a consumer waiting that long for new entries still retries on its claim schedule.
@pytest.mark.parametrize("block_seconds", [0.2, 60])
async def test_poison_event_goes_to_the_dead_letter_stream_after_max_deliveries(
    events_redis: Redis, stream: str, eventually: Eventually, block_seconds: float
) -> None:
    publisher = EventPublisher(events_redis, stream=stream)
    attempts: list[int] = []

    async def fail(event: Event[AccountRegistered]) -> None:
        attempts.append(1)
        raise ValueError("cannot handle this one")

    consumer = _consumer(
        events_redis,
        stream,
        block_seconds=block_seconds,
        claim_min_idle_seconds=0.2,
        max_deliveries=3,
    )
    consumer.on(AccountRegistered, fail)
    event = _registered()
    dead = dead_letter_stream(stream)

    async with run_in_background(consumer):
        await publisher.publish(event)
        await eventually(lambda: _has_entries(events_redis, dead, 1))
        await asyncio.sleep(0.5)  # no further attempt after dead-lettering

    assert len(attempts) == 3
    [(_, fields)] = range_entries(await events_redis.xrange(dead))
    assert fields[b"id"] == str(event.id).encode()
    assert fields[b"dead_letter_group"] == b"users"
    assert fields[b"dead_letter_deliveries"] == b"3"
    assert fields[b"dead_letter_reason"] == b"ValueError"
    assert _metric("events_dead_lettered_total", stream=stream, group="users") == 1
    assert _metric("events_failed_total", stream=stream, group="users") == 3
    assert await _pending(events_redis, stream, "users") == 0
    assert await events_redis.exists(seen_key("users", event.id)) == 0


async def _has_entries(redis: Redis, stream: str, count: int) -> bool:
    return bool(await redis.xlen(stream) == count)


async def test_unreadable_entry_of_a_handled_type_is_dead_lettered_at_once(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    consumer = _consumer(events_redis, stream)

    async def handle(event: Event[AccountRegistered]) -> None:
        raise AssertionError("must not be called")

    consumer.on(AccountRegistered, handle)
    fields = encode(_registered())
    fields["payload"] = '{"user_id": "not-a-uuid"}'

    async with run_in_background(consumer):
        await events_redis.xadd(stream, fields)
        await eventually(lambda: _has_entries(events_redis, dead_letter_stream(stream), 1))

    [(_, dead)] = range_entries(await events_redis.xrange(dead_letter_stream(stream)))
    assert dead[b"dead_letter_reason"] == b"malformed:ValidationError"
    assert dead[b"dead_letter_deliveries"] == b"1"


async def test_consumer_lag_counts_pending_and_undelivered_entries(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    publisher = EventPublisher(events_redis, stream=stream)
    release = asyncio.Event()

    async def slow(event: Event[AccountRegistered]) -> None:
        await release.wait()

    consumer = _consumer(events_redis, stream, batch_size=1, handler_timeout_seconds=30)
    consumer.on(AccountRegistered, slow)
    await consumer.ensure_group()
    for _ in range(3):
        await publisher.publish(_registered())

    async with run_in_background(consumer):
        # The first step measures the lag before it reads: nothing acknowledged yet.
        await eventually(lambda: _metric("events_consumer_lag", stream=stream, group="users") == 3)
        release.set()
        await eventually(lambda: _done(events_redis, stream, "users"))


async def test_consumer_recovers_when_its_connections_are_killed(
    events_redis: Redis, redis_url: str, stream: str, eventually: Eventually
) -> None:
    consumer_redis = Redis.from_url(redis_url)
    publisher = EventPublisher(events_redis, stream=stream)
    consumer, received = _recording_consumer(consumer_redis, stream)
    try:
        async with run_in_background(consumer):
            await publisher.publish(_registered())
            await eventually(lambda: len(received) == 1)
            killed = await events_redis.client_kill_filter(_type="normal", skipme=True)
            assert killed >= 1
            await publisher.publish(_registered())
            await eventually(lambda: len(received) == 2)
    finally:
        await consumer_redis.aclose()


async def test_consumer_recovers_after_redis_restarts_without_its_data(
    eventually: Eventually,
) -> None:
    port = free_port()
    # No persistence: after the restart the stream and the group are gone (NOGROUP).
    container = (
        RedisContainer(image=REDIS_IMAGE)
        .with_bind_ports(6379, port)
        .with_command("redis-server --save '' --appendonly no")
    )
    await asyncio.to_thread(container.start)
    url = f"redis://{container.get_container_host_ip()}:{port}/0"
    redis = open_event_redis(url, timeout_seconds=0.5, block_seconds=0.2)
    stream = "events:restart-test"
    publisher = EventPublisher(redis, stream=stream)
    consumer, received = _recording_consumer(redis, stream)
    component = consumer.name
    try:
        async with run_in_background(consumer):
            await publisher.publish(_registered())
            await eventually(lambda: len(received) == 1)

            await asyncio.to_thread(container.get_wrapped_container().stop)
            await eventually(lambda: _metric("events_channel_up", component=component) == 0)
            await asyncio.to_thread(container.get_wrapped_container().start)

            await eventually(lambda: _published(publisher, _registered()))
            await eventually(lambda: len(received) == 2)
            await eventually(lambda: _metric("events_channel_up", component=component) == 1)
    finally:
        await redis.aclose()
        await asyncio.to_thread(container.stop)


async def _published(publisher: EventPublisher, event: Event[AccountRegistered]) -> bool:
    try:
        await publisher.publish(event)
    except Exception:  # noqa: BLE001 - redis-py's ConnectionError while Redis starts
        return False
    return True


async def test_entry_that_keeps_killing_its_consumers_is_dead_lettered_without_a_new_try(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    event = _registered()
    await EventPublisher(events_redis, stream=stream).publish(event)
    await events_redis.xgroup_create(stream, "users", id="0")
    # Three consumers took it and died before acknowledging (each delivery counts).
    [(_, [(entry_id, _)])] = read_entries(
        await events_redis.xreadgroup("users", "crashed-1", {stream: ">"})
    )
    await events_redis.xclaim(stream, "users", "crashed-2", 0, [entry_id])
    await events_redis.xclaim(stream, "users", "crashed-3", 0, [entry_id])
    calls: list[uuid.UUID] = []

    async def handle(event: Event[AccountRegistered]) -> None:
        calls.append(event.id)

    consumer = _consumer(events_redis, stream, claim_min_idle_seconds=0.1, max_deliveries=3)
    consumer.on(AccountRegistered, handle)
    async with run_in_background(consumer):
        await eventually(lambda: _has_entries(events_redis, dead_letter_stream(stream), 1))

    [(_, dead)] = range_entries(await events_redis.xrange(dead_letter_stream(stream)))
    assert dead[b"dead_letter_reason"] == b"max_deliveries"
    assert dead[b"dead_letter_deliveries"] == b"4"
    assert calls == []
    assert await _pending(events_redis, stream, "users") == 0
