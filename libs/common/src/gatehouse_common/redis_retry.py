"""How every Redis client of Gatehouse retries: once, at once, and only on a broken connection.

A Redis restart leaves each pooled connection dead without the client knowing; the next
command on it fails. redis-py disconnects a connection before it retries a command, so one
retry replaces it and the command succeeds: without it, each pooled connection fails one
command after Redis is back. A timeout is never retried: on a frozen Redis it would only
double the wait. And never redis-py's default (ten retries with backoff, timeouts included),
which turned a frozen Redis into a request that waited over ten seconds.
"""

from __future__ import annotations

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def retry_once_on_broken_connection() -> Retry:
    """A new ``Retry`` for one client (redis-py copies it per connection)."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
