"""What auth's requests use, built once by the lifespan (see ``main.create_app``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis

from gatehouse_auth.account_email.service import AccountEmails
from gatehouse_auth.database import AuthDatabase, is_outage
from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.settings import AuthSettings
from gatehouse_auth.throttling import RegistrationThrottle
from gatehouse_auth.tokens.service import TokenIssuer
from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.events import event_channel_check
from gatehouse_common.health import Readiness
from gatehouse_common.resources import resources_dependency
from gatehouse_common.revocation import RevocationSet
from gatehouse_common.tokens import AccessTokenVerifier


@dataclass(frozen=True, slots=True)
class AuthResources:
    settings: AuthSettings
    database: AuthDatabase
    # Requests' way to MongoDB: 503 at once for a moment after it failed to answer.
    mongo_gate: AvailabilityGate
    redis: Redis
    identities: IdentityRepository
    passwords: PasswordHasher
    registration_throttle: RegistrationThrottle
    tokens: TokenIssuer
    # Auth's own bearer endpoints (gatehouse_common.authentication): see own_tokens.py.
    token_verifier: AccessTokenVerifier
    # Access tokens of revoked logins and users, refused by those endpoints too.
    revocations: RevocationSet
    # The event channel (outbox relay, consumer group ``auth``, revocation feed).
    events_redis: Redis
    account_emails: AccountEmails


Resources = Annotated[AuthResources, Depends(resources_dependency(AuthResources))]


async def _mongodb_answers(resources: AuthResources) -> None:
    async with resources.mongo_gate.passage(is_outage):
        # Shielded: the readiness check's timeout must not cancel PyMongo mid-operation (see
        # the MongoDB gate in main.py); the ping ends by the client's own timeouts.
        await asyncio.shield(resources.database.ping())


def readiness(settings: AuthSettings) -> Readiness[AuthResources]:
    return Readiness[AuthResources](
        {
            "mongodb": _mongodb_answers,
            "redis": lambda resources: resources.redis.ping(),
        },
        # Optional: without it auth serves on, and its events wait in the outbox.
        optional=event_channel_check(lambda resources: resources.events_redis),
        timeout_seconds=settings.mongo_timeout_ms / 1000 + 0.5,
    )
