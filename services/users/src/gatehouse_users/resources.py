"""What users' requests use, built once by the lifespan (see ``main.create_app``)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from gatehouse_common.events import OutboxRelay, event_channel_check
from gatehouse_common.health import Readiness
from gatehouse_common.revocation import RevocationSet
from gatehouse_common.tokens import AccessTokenVerifier
from gatehouse_users.database import Database
from gatehouse_users.profiles.cache import ProfileCache


@dataclass(frozen=True, slots=True)
class UsersResources:
    token_verifier: AccessTokenVerifier
    revocations: RevocationSet
    database: Database
    profile_cache: ProfileCache
    events_redis: Redis
    outbox_relay: OutboxRelay


# The cache's Redis is not checked: it is optional and reads fall back to PostgreSQL. The
# event channel is optional too: /ready shows it degraded while it is down (docs/events.md).
READINESS = Readiness[UsersResources](
    {"postgres": lambda resources: resources.database.ping()},
    optional=event_channel_check(lambda resources: resources.events_redis),
)
