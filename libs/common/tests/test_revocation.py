"""The revocation set (by sid, by sub and iat, bounded) and its feed from the streams."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from gatehouse_common.events import (
    AccountErased,
    AccountRegistered,
    Event,
    EventPublisher,
    LoginsRevoked,
    encode,
    run_in_background,
)
from gatehouse_common.revocation import RevocationFeed, RevocationSet

Eventually = Callable[[Callable[[], bool | Awaitable[bool]]], Awaitable[None]]
RETENTION = 930.0  # 15-minute tokens plus 30 s of leeway
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _revoked(user_id: uuid.UUID, **fields: object) -> Event[LoginsRevoked]:
    payload = LoginsRevoked(user_id=user_id, reason="sign_out", **fields)
    return Event.of(payload, producer="auth", occurred_at=_at(T0))


def test_revoked_login_refuses_its_tokens_only() -> None:
    revocations = RevocationSet(retention_seconds=RETENTION, clock=Clock())
    user = str(uuid.uuid4())
    revocations.revoke_session("sid-1", revoked_at=T0)

    assert revocations.is_revoked(user, "sid-1", T0 - 10)
    assert not revocations.is_revoked(user, "sid-2", T0 - 10)
    assert not revocations.is_revoked(user, None, T0 - 10)


def test_revoked_user_refuses_tokens_issued_at_or_before_the_time() -> None:
    revocations = RevocationSet(retention_seconds=RETENTION, clock=Clock())
    user, other = str(uuid.uuid4()), str(uuid.uuid4())
    revocations.revoke_subject(user, issued_at_or_before=T0, revoked_at=T0)

    assert revocations.is_revoked(user, "any", T0 - 600)
    assert revocations.is_revoked(user, "any", T0)
    assert not revocations.is_revoked(user, "any", T0 + 1)
    assert not revocations.is_revoked(other, "any", T0 - 600)


def test_a_later_revocation_of_a_user_extends_the_earlier_one() -> None:
    revocations = RevocationSet(retention_seconds=RETENTION, clock=Clock())
    user = str(uuid.uuid4())
    revocations.revoke_subject(user, issued_at_or_before=T0 + 60, revoked_at=T0 + 60)
    revocations.revoke_subject(user, issued_at_or_before=T0, revoked_at=T0)  # arrives late

    assert revocations.is_revoked(user, None, T0 + 30)


def test_events_feed_the_set() -> None:
    revocations = RevocationSet(retention_seconds=RETENTION, clock=Clock())
    signed_out, reset, erased = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    revocations.apply(_revoked(signed_out, session_ids=("sid-a", "sid-b")))
    revocations.apply(_revoked(reset, issued_at_or_before=_at(T0)))
    revocations.apply(Event.of(AccountErased(user_id=erased), producer="users"))
    revocations.apply(
        Event.of(AccountRegistered(user_id=uuid.uuid4(), email="a@example.com"), producer="auth")
    )

    assert revocations.is_revoked(str(signed_out), "sid-b", T0)
    assert not revocations.is_revoked(str(signed_out), "sid-c", T0)
    assert revocations.is_revoked(str(reset), "sid-x", T0 - 1)
    assert not revocations.is_revoked(str(reset), "sid-x", T0 + 1)
    # Erased: every token, also one issued after the erasure (auth had not heard of it yet).
    assert revocations.is_revoked(str(erased), "sid-y", math.floor(T0) + 5)
    assert len(revocations) == 4


def test_entries_expire_after_the_retention_and_are_pruned() -> None:
    clock = Clock()
    revocations = RevocationSet(retention_seconds=RETENTION, clock=clock)
    user = str(uuid.uuid4())
    revocations.revoke_session("old", revoked_at=T0)
    revocations.revoke_subject(user, issued_at_or_before=T0, revoked_at=T0)
    clock.now = T0 + 100
    revocations.revoke_session("newer", revoked_at=clock.now)

    clock.now = T0 + RETENTION + 1
    revocations.prune()

    assert len(revocations) == 1
    assert not revocations.is_revoked(user, "old", T0)
    assert revocations.is_revoked(user, "newer", T0)
    assert REGISTRY.get_sample_value("revocation_entries", {"kind": "login"}) == 1
    assert REGISTRY.get_sample_value("revocation_entries", {"kind": "user"}) == 0

    clock.now = T0 + 100 + RETENTION + 1
    revocations.revoke_session("latest", revoked_at=clock.now)  # inserting prunes too
    assert len(revocations) == 1


def test_an_event_older_than_the_retention_adds_nothing() -> None:
    clock = Clock(T0 + RETENTION + 1)
    revocations = RevocationSet(retention_seconds=RETENTION, clock=clock)

    revocations.apply(_revoked(uuid.uuid4(), session_ids=("sid-a",)))

    assert len(revocations) == 0


async def test_feed_replays_recent_revocations_at_start_and_follows_new_ones(
    events_redis: Redis, stream: str, eventually: Eventually
) -> None:
    publisher = EventPublisher(events_redis, stream=stream)
    before, after = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    await publisher.publish(
        Event.of(
            LoginsRevoked(user_id=before, session_ids=("sid-before",), reason="revoked"),
            producer="auth",
            occurred_at=now,
        )
    )
    await publisher.publish(
        Event.of(AccountRegistered(user_id=after, email="a@example.com"), producer="auth")
    )

    # A process that starts after the revocation: it replays the stream.
    revocations = RevocationSet(retention_seconds=RETENTION)
    feed = RevocationFeed(events_redis, revocations, streams=[stream], block_seconds=0.2)
    async with run_in_background(feed):
        assert await feed.wait_caught_up(timeout_seconds=5)
        assert revocations.is_revoked(str(before), "sid-before", now.timestamp())
        assert len(revocations) == 1

        await publisher.publish(
            Event.of(AccountErased(user_id=after), producer="users", occurred_at=now)
        )
        await eventually(lambda: revocations.is_revoked(str(after), None, now.timestamp()))


async def test_feed_replays_only_the_range_that_can_still_matter(
    events_redis: Redis, stream: str
) -> None:
    user = uuid.uuid4()
    revoked = LoginsRevoked(user_id=user, session_ids=("sid-old",), reason="revoked")
    fields = encode(Event.of(revoked, producer="auth", occurred_at=_at(T0)))
    # An entry appended long ago (its id is the time of the XADD, 1970 here).
    await events_redis.xadd(stream, fields, id="1000-0")

    revocations = RevocationSet(retention_seconds=RETENTION, clock=Clock(T0))
    feed = RevocationFeed(events_redis, revocations, streams=[stream], clock=Clock(T0))
    async with run_in_background(feed):
        assert await feed.wait_caught_up(timeout_seconds=5)

    assert len(revocations) == 0


async def test_feed_stops_promptly_at_shutdown_even_in_a_blocking_read(
    events_redis: Redis, stream: str
) -> None:
    for _ in range(3):
        feed = RevocationFeed(
            events_redis,
            RevocationSet(retention_seconds=RETENTION),
            streams=[stream],
            block_seconds=5,
        )
        async with run_in_background(feed):
            assert await feed.wait_caught_up(timeout_seconds=5)
            started = time.perf_counter()  # the feed is sending its first blocking read
        assert time.perf_counter() - started < 2.5  # well under the 5 s read
