"""Read cache of profiles on Redis (redis-py), consistent under concurrent writes and fail-open.

Consistency: versioned entries. Each profile has a version token in Redis and one entry,
stored under a fixed key together with the version it was filled under. A read gets both in
one ``MGET`` (one round trip) *before* it reads PostgreSQL; the entry is a hit only if its
version is the version the read got, and a miss fills the entry with the version the read
got. A write, after its commit, sets a new random version. An entry with the current version
was therefore filled by a read that got that version, i.e. that read the database after the
write that set it had committed: it holds that write or a newer one. A late fill by a read
that began before a write carries an older version: it can overwrite a newer entry, which
only costs a miss, but it is never served.

Availability: every Redis command is bounded by ``timeout``; a failure or timeout logs a
warning, counts in ``users_cache_errors_total`` and skips the cache for that command. A
failure opens an ``AvailabilityGate`` (gatehouse_common.availability): while it is open the
cache is skipped and requests go straight to PostgreSQL, and the gate pings Redis once every
``retry_interval`` until it answers, which closes it. A timeout, or a command waiting
``stall_seconds``, only has the gate ping Redis on a connection of its own, bounded by
``stall_probe_seconds``: no answer opens it (a frozen Redis), an answer leaves it closed (a
busy process whose replies waited for their turn on the event loop, which used to send every
read to PostgreSQL for an interval). A dead or frozen Redis costs a timeout only to the
commands in flight when it failed, never a request per interval. A pooled connection that
Redis closed (a restart) is replaced and its command retried once, so a restart does not fail
one command per pooled connection.

Writes made while Redis cannot be told are remembered and their versions are replaced, all
in one batch by one request, before this process uses the cache again, so an entry cached
before an outage is not served after it. Readers never wait for that batch: while it is
being announced they skip the cache. (Each reader announcing the whole backlog itself, one
write after the other, was a thundering herd that timed out and reopened the circuit again
and again after Redis came back; meanwhile every read went to PostgreSQL.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.logging import get_logger
from gatehouse_common.problems import DependencyUnavailable
from gatehouse_common.redis_retry import retry_once_on_broken_connection
from gatehouse_users.metrics import CACHE_BYPASSED, CACHE_ERRORS, CACHE_HITS, CACHE_MISSES
from gatehouse_users.profiles.schemas import ProfileRead
from gatehouse_users.settings import UsersSettings

T = TypeVar("T")

_log = get_logger(__name__)
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)
# Our bound around each command (asyncio's) and redis-py's socket timeout.
_TIMEOUTS = (TimeoutError, RedisTimeoutError)
# Version used while a profile has never been written (or its version key expired).
_INITIAL_VERSION = "v0"
_MAX_CONNECTIONS = 32


def _version_key(profile_id: uuid.UUID) -> str:
    return f"users:profile-version:{profile_id}"


def _entry_key(profile_id: uuid.UUID) -> str:
    return f"users:profile-entry:{profile_id}"


class _Entry(BaseModel):
    """What Redis holds for a profile: the profile and the version it was filled under."""

    version: str
    profile: ProfileRead


class _CacheSkipped(Exception):
    """Redis failed or the circuit is open: go on without the cache."""


@dataclass(frozen=True, slots=True)
class CachedRead:
    """The result of a cache lookup and the version a later fill must be stored under.

    ``version`` is None when the cache could not be read; then nothing may be filled.
    """

    profile: ProfileRead | None
    version: str | None


class ProfileCache:
    def __init__(  # noqa: PLR0913 - keyword-only figures from the settings
        self,
        *,
        ttl_seconds: int,
        timeout_seconds: float,
        retry_interval_seconds: float,
        stall_seconds: float,
        stall_probe_seconds: float,
        enabled: bool = True,
    ) -> None:
        self._enabled = enabled
        self._ttl = ttl_seconds
        # A version must outlive every entry a slow read may still fill under the version
        # before it; else the key falls back to the initial version and could meet such an entry.
        self._version_ttl = 2 * ttl_seconds + 60
        self._timeout = timeout_seconds
        self._probe_timeout = stall_probe_seconds
        self._retry_interval = retry_interval_seconds
        self._redis: Redis | None = None
        # The gate's probe has a connection of its own: the pool's may all be busy under load.
        self._probe_redis: Redis | None = None
        self._connecting_probe: asyncio.Task[None] | None = None
        # Closed while Redis answers; after a failure the cache is skipped until its probe does.
        self._gate = AvailabilityGate(
            "redis",
            retry_interval_seconds,
            probe=self._ping,
            stall_seconds=stall_seconds,
            stall_probe_seconds=stall_probe_seconds,
        )
        # Each remembered write with its sequence number: a batch forgets only the writes it
        # announced, not one made again while its commands were in flight.
        self._unannounced_writes: dict[uuid.UUID, int] = {}
        self._write_sequence = itertools.count()
        self._announcing = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: UsersSettings) -> ProfileCache:
        """The cache as the service configures it (``start`` it with the Redis URL)."""
        return cls(
            ttl_seconds=settings.cache_ttl_seconds,
            timeout_seconds=settings.cache_timeout_seconds,
            retry_interval_seconds=settings.cache_retry_interval_seconds,
            stall_seconds=settings.cache_stall_seconds,
            stall_probe_seconds=settings.cache_stall_probe_seconds,
            enabled=settings.cache_enabled,
        )

    def start(self, redis_url: str) -> None:
        """Make the Redis client; connections are opened lazily, so Redis may be down."""
        if not self._enabled:
            return
        # Values are JSON bytes, read and written as they are (no decoding, never unpickled).
        # A blocking pool: under load a command waits for a free connection, up to the timeout.
        self._redis = Redis.from_pool(
            _pool(redis_url, _MAX_CONNECTIONS, "users-cache", self._timeout)
        )
        # Bounded by the ping's bound, not the commands': an answer later than a command may
        # wait for still says Redis is there.
        self._probe_redis = Redis.from_pool(
            _pool(redis_url, 1, "users-cache-probe", self._probe_timeout)
        )
        self._connecting_probe = asyncio.get_running_loop().create_task(
            self._connect_probe(), name="connect the cache's probe"
        )

    async def _connect_probe(self) -> None:
        """Open the probe's connection now rather than in its first check, whose bound a
        connect (TCP, the client name, ACL authentication) under load could outlast."""
        with contextlib.suppress(*_REDIS_FAILURES):  # down at start: a command finds out
            await self._ping()

    async def close(self) -> None:
        if self._connecting_probe is not None:
            self._connecting_probe.cancel()
        await self._gate.aclose()
        for client in (self._redis, self._probe_redis):
            if client is None:
                continue
            try:
                await client.aclose()
            except _REDIS_FAILURES as exc:
                _log.info("cache_close_failed", error=type(exc).__name__)

    async def read(self, profile_id: uuid.UUID) -> CachedRead:
        redis = self._redis
        if redis is None:
            # The cache is disabled: no version either, so nothing is filled.
            return CachedRead(profile=None, version=None)
        try:
            await self._announce_writes("read")
            stored_version, raw_entry = await self._run(
                "read", lambda: redis.mget(_version_key(profile_id), _entry_key(profile_id))
            )
        except _CacheSkipped:
            CACHE_MISSES.inc()
            return CachedRead(profile=None, version=None)
        version = _as_text(stored_version) or _INITIAL_VERSION
        profile = _current_profile(raw_entry, version)
        if profile is None:
            CACHE_MISSES.inc()
        else:
            CACHE_HITS.inc()
        return CachedRead(profile=profile, version=version)

    async def fill(self, lookup: CachedRead, profile: ProfileRead) -> None:
        """Cache ``profile`` with the version ``lookup`` saw before the database was read."""
        redis = self._redis
        if redis is None or lookup.version is None:
            return
        entry = _Entry(version=lookup.version, profile=profile).model_dump_json().encode()
        try:
            await self._announce_writes("fill")
            await self._run("fill", lambda: redis.set(_entry_key(profile.id), entry, ex=self._ttl))
        except _CacheSkipped:
            return

    async def invalidate(self, profile_id: uuid.UUID) -> None:
        """Make every entry of this profile unreadable; call after the write has committed.

        Waits for a batch being announced (the next one carries this write), so that when
        the write's response is sent, other processes no longer serve the old entry either.
        """
        if self._redis is None:
            return
        self._unannounced_writes[profile_id] = next(self._write_sequence)
        try:
            await self._announce_writes("invalidate", wait=True)
        except _CacheSkipped:
            # Kept in _unannounced_writes: announced before this process reads the cache again.
            return

    async def _announce_writes(self, operation: str, *, wait: bool = False) -> None:
        """Give every remembered write a new version, in one batch (two round trips).

        Without ``wait``, a batch already being announced skips the cache for ``operation``.
        """
        redis = self._redis
        if redis is None or not self._unannounced_writes:
            return
        if self._announcing.locked() and not wait:
            CACHE_BYPASSED.labels(operation).inc()
            raise _CacheSkipped
        async with self._announcing:
            batch = dict(self._unannounced_writes)
            if not batch:
                return  # announced by the batch this call waited for
            # Random versions, never a counter: a counter could restart after its key expired
            # and meet an entry cached under the same number before.
            versions = {_version_key(profile_id): _new_version() for profile_id in batch}
            await self._run("invalidate", lambda: _set_all(redis, versions, self._version_ttl))
            # The entries, filled under older versions, can no longer be hits; free them now
            # rather than at their TTL.
            entries = [_entry_key(profile_id) for profile_id in batch]
            await self._run("invalidate", lambda: redis.unlink(*entries))
            for profile_id, sequence in batch.items():
                if self._unannounced_writes.get(profile_id) == sequence:
                    del self._unannounced_writes[profile_id]

    async def _run(self, operation: str, command: Callable[[], Awaitable[T]]) -> T:
        if self._gate.is_open:
            CACHE_BYPASSED.labels(operation).inc()
            raise _CacheSkipped
        try:
            async with self._gate.watch() as start:
                start()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps each command in
                # a task.
                async with asyncio.timeout(self._timeout):
                    return await command()
        except DependencyUnavailable:
            # Another command found Redis gone while this one waited for it.
            CACHE_BYPASSED.labels(operation).inc()
            raise _CacheSkipped from None
        except _TIMEOUTS as exc:
            # Slow is not down: the gate's own ping decides (``suspect``).
            self._gate.suspect()
            CACHE_ERRORS.labels(operation).inc()
            _log.warning("cache_timed_out", operation=operation, error=type(exc).__name__)
            raise _CacheSkipped from exc
        except _REDIS_FAILURES as exc:
            self._gate.failed()
            CACHE_ERRORS.labels(operation).inc()
            _log.warning(
                "cache_unavailable",
                operation=operation,
                error=type(exc).__name__,
                retry_in_seconds=self._retry_interval,
            )
            raise _CacheSkipped from exc

    async def _ping(self) -> None:
        """The gate's probe (it only runs after a command, so the client exists)."""
        if self._probe_redis is not None:
            async with asyncio.timeout(self._probe_timeout):
                await self._probe_redis.ping()


def _pool(
    redis_url: str, connections: int, client_name: str, timeout_seconds: float
) -> BlockingConnectionPool:
    """Connections bounded in every wait: the pool's, the connect and each reply."""
    return BlockingConnectionPool.from_url(
        redis_url,
        max_connections=connections,
        timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        client_name=client_name,
        # A connection Redis closed while pooled (a restart) is replaced, not an error.
        retry=retry_once_on_broken_connection(),
    )


async def _set_all(redis: Redis, values: dict[str, bytes], ttl_seconds: int) -> None:
    """``SET`` each key with its TTL, pipelined: one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for key, value in values.items():
            pipe.set(key, value, ex=ttl_seconds)
        await pipe.execute()


def _new_version() -> bytes:
    return f"v{uuid.uuid4().hex}".encode()


def _as_text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return None


def _current_profile(raw_entry: object, version: str) -> ProfileRead | None:
    """The cached profile if the entry was filled under ``version``, else None (a miss)."""
    if not isinstance(raw_entry, bytes):
        return None
    try:
        entry = _Entry.model_validate_json(raw_entry)
    except ValidationError:
        # An entry of an older shape after a deploy: treat it as a miss.
        return None
    return entry.profile if entry.version == version else None
