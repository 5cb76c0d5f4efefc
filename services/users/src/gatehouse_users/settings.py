"""Configuration of the users service, from ``USERS_*`` environment variables only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from gatehouse_common.events import EventSettings
from gatehouse_common.revocation import RevocationSettings
from gatehouse_common.settings import GatehouseSettings, ServiceSettings, TokenVerificationSettings

_ENV_PREFIX = "USERS_"


class MigrationSettings(GatehouseSettings):
    """What ``alembic upgrade head`` needs: the database URL and nothing else.

    The migration step runs before the service and must not require token or cache settings.
    """

    model_config = SettingsConfigDict(env_prefix=_ENV_PREFIX)

    database_url: SecretStr
    """PostgreSQL URL for SQLAlchemy's asyncpg driver: postgresql+asyncpg://..."""

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: SecretStr) -> SecretStr:
        # The message must not echo the value: the URL carries the password.
        if not value.get_secret_value().startswith("postgresql+asyncpg://"):
            raise ValueError("must be a postgresql+asyncpg:// URL")
        return value


class UsersSettings(
    ServiceSettings,
    TokenVerificationSettings,
    EventSettings,
    RevocationSettings,
    MigrationSettings,
):
    model_config = SettingsConfigDict(env_prefix=_ENV_PREFIX)

    redis_url: SecretStr
    """Redis URL of the read cache: redis:// or rediss://"""

    cache_enabled: bool = True
    """False: every read goes to PostgreSQL and Redis is never used (benchmarks)."""
    cache_ttl_seconds: int = Field(default=300, gt=0)
    """Lifetime of a cached profile."""
    # Wall time, so it includes the wait for the event loop: on a saturated worker a reply
    # waits its turn (docs/performance.md), and a tighter bound would turn overload into a
    # cache outage that sends every read to PostgreSQL.
    cache_timeout_seconds: float = Field(default=1.0, gt=0, le=5)
    """Bound on each Redis command; past it the read or write goes on without cache."""
    # Short: a returning Redis is used again within it; the probe, not a request, pays for
    # trying a Redis that is still away (gatehouse_common.availability).
    cache_retry_interval_seconds: float = Field(default=1.0, gt=0)
    """After a Redis failure, how often the gate's probe tries it while the cache is skipped."""
    # As PostgreSQL's gate (db_stall_seconds): a frozen Redis is skipped by 0.75 s, before the
    # commands' own timeout, and a command that timed out on a healthy Redis (its reply waited
    # for a busy event loop) no longer sends every read to PostgreSQL for an interval.
    cache_stall_seconds: float = Field(default=0.25, gt=0)
    """A command waiting on Redis this long, or timing out, has the cache's gate ping Redis on a
    connection of its own (``cache_stall_probe_seconds``); no answer opens the gate."""
    cache_stall_probe_seconds: float = Field(default=0.5, gt=0)
    """The bound of that ping: long enough for a healthy Redis on a busy machine."""

    db_pool_class: Literal["queue", "null"] = "queue"
    """'queue': a connection pool; 'null': a new connection per session (NullPool)."""
    db_pool_size: int = Field(default=15, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    """Connections opened beyond ``db_pool_size`` under load, each closed when returned to a
    pool that has ``db_pool_size`` idle. Under sustained load the pool's idle queue refills
    between a return and the wake-up of the request waiting for it, so the next return closes a
    connection and a later request opens a new one: a connect per request, 30 % more CPU per
    uncached read (docs/performance.md). 0: the pool is sized for the load, and a burst waits
    for a connection (up to ``db_pool_timeout_seconds``) instead."""
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a request waits for a pooled connection."""
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    """Replace connections older than this (-1: never)."""
    db_pool_ping_after_idle_seconds: float = Field(default=0.5, ge=0)
    """A pooled connection idle this long is pinged before use, so a PostgreSQL restart while
    the service was quiet costs no failed request. One used more recently is trusted, as
    HikariCP does (its ``aliveBypassWindowMs``, 500 ms): under load a ping on every checkout
    was a second round trip per read, a fifth of an uncached read's CPU (docs/performance.md).
    A connection broken within the window fails its request, which the gate answers as an
    outage (503). 0: ping on every checkout."""
    # Connects and statements of this service take milliseconds (key lookups); these bounds
    # are how long a dead or frozen PostgreSQL goes unnoticed: the requests in flight wait for
    # them, then the gate opens and every request gets its 503 at once (a pooled
    # connection's pre-ping is one command: gatehouse_users.database). Not lower: at 0.5 s a
    # chaos run on a busy 2-core machine saw healthy statements time out while Docker killed
    # another container, and the gate they opened refused every write for a second
    # (docs/resilience.md).
    db_connect_timeout_seconds: float = Field(default=1.0, gt=0)
    """Bound on opening one PostgreSQL connection."""
    db_command_timeout_seconds: float = Field(default=1.5, gt=0)
    """Client-side bound on one statement, so a frozen server cannot hang a request."""
    # Sized for the chaos run's target (every answer within 200 ms once a datastore has been
    # frozen for a second): stalled 0.25 s, plus a probe bounded by 0.5 s, opens the gate by
    # 0.75 s, leaving the rest of the first second for the requests it cuts short to be
    # answered (at 0.5 + 0.5 s the gate opened at 1.0-1.4 s on a busy machine, and the answers
    # of the first second's pile-up came after it). A slow statement on a healthy PostgreSQL
    # costs one ``select 1`` on the gate's own connection, which answers in milliseconds even
    # when the pool is busy: suspicion is cheap, a wrong verdict is not.
    db_stall_seconds: float = Field(default=0.25, gt=0)
    """A request waiting on PostgreSQL this long has the gate probe it (``db_stall_probe_seconds``);
    no answer opens the gate (503 at once for everyone, the waiting requests too)."""
    db_stall_probe_seconds: float = Field(default=0.5, gt=0)
    """The bound of that probe: long enough for a healthy PostgreSQL on a busy machine."""
    db_retry_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """After PostgreSQL failed to answer, how often the gate's probe tries it while requests
    that need it get 503 at once."""
    db_statement_timeout_ms: int | None = Field(default=None, gt=0)
    """Server-side statement_timeout for the service's sessions."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value
