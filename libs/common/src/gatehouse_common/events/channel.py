"""The Redis connection of the event channel, and how it takes part in readiness.

The event channel is not a required dependency: while it is down, a service keeps serving
(``/ready`` stays 200, the check shows ``degraded``) and what degrades is only what travels by
events (see docs/events.md, "Failure modes"). Each loop reports ``events_channel_up``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from redis.asyncio import Redis

from gatehouse_common.health import ReadinessCheck
from gatehouse_common.redis_retry import retry_once_on_broken_connection

R = TypeVar("R")

READINESS_CHECK = "events"


def open_event_redis(url: str, *, timeout_seconds: float, block_seconds: float) -> Redis:
    """A client for the event loops. Connections open lazily, so Redis may be down at start.

    The socket timeout covers a blocking read (``block_seconds``) plus ``timeout_seconds``,
    so a silent network failure ends a blocked read instead of hanging it. One immediate
    retry replaces a pooled connection that Redis closed (a restart); longer outages are
    the loops' business (backoff).
    """
    return Redis.from_url(
        url,
        socket_timeout=block_seconds + timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        retry=retry_once_on_broken_connection(),
    )


def event_channel_check(redis_of: Callable[[R], Redis]) -> dict[str, ReadinessCheck[R]]:
    """The channel's readiness check, to pass as ``Readiness(optional=...)``: ``/ready`` shows
    it as ``ok`` or ``degraded``, never as not ready."""

    async def ping(resources: R) -> None:
        await redis_of(resources).ping()

    return {READINESS_CHECK: ping}
