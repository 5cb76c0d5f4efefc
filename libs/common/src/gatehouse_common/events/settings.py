"""Settings of a service that publishes or consumes events (add to the service's settings)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from gatehouse_common.settings import GatehouseSettings


class EventSettings(GatehouseSettings):
    events_redis_url: SecretStr
    """Redis URL of the event channel (redis:// or rediss://, with the service's ACL user)."""
    events_redis_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    events_block_seconds: float = Field(default=5.0, gt=0, le=60)
    """How long a read waits for new entries."""
    events_stream_max_length: int = Field(default=100_000, ge=1000)
    """Approximate MAXLEN of the streams published to."""
    events_claim_min_idle_seconds: float = Field(default=60.0, gt=0)
    """A pending entry idle this long is claimed again (dead consumer, or a failed handler's
    retry); handlers get half of it."""
    events_max_deliveries: int = Field(default=5, ge=1)
    """Deliveries before an entry goes to the dead-letter stream."""
    events_dedupe_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=3600)
    """How long a consumer group remembers the ids of events it handled."""
    events_outbox_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
