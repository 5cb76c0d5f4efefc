"""Events in tests as their producers publish them: with the kit, to the producer's stream."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from gatehouse_common.events import (
    AccountErased,
    Event,
    EventPublisher,
    LoginsRevoked,
    RevocationReason,
    stream_for,
)


async def publish(redis: Redis, event: Event[Any]) -> None:
    """Publish ``event`` to the stream of its producer, as that service does."""
    await EventPublisher(redis, stream=stream_for(event.producer)).publish(event)


def logins_revoked(
    user_id: uuid.UUID, *session_ids: str, reason: RevocationReason = "sign_out"
) -> Event[LoginsRevoked]:
    """``logins.revoked`` as auth publishes it when the logins ``session_ids`` end."""
    payload = LoginsRevoked(user_id=user_id, session_ids=session_ids, reason=reason)
    return Event.of(payload, producer="auth")


def logins_revoked_before(user_id: uuid.UUID, moment: datetime) -> Event[LoginsRevoked]:
    """``logins.revoked`` as auth publishes it on a password reset: every token of ``user_id``
    issued at or before ``moment``."""
    payload = LoginsRevoked(user_id=user_id, issued_at_or_before=moment, reason="password_reset")
    return Event.of(payload, producer="auth")


def account_erased(user_id: uuid.UUID) -> Event[AccountErased]:
    """``account.erased`` as users' outbox relay publishes it."""
    return Event.of(AccountErased(user_id=user_id), producer="users")
