"""What auth's requests use, built once by the lifespan (see ``main.create_app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis

from gatehouse_auth.database import AuthDatabase
from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.settings import AuthSettings
from gatehouse_auth.throttling import RegistrationThrottle
from gatehouse_auth.tokens.service import TokenIssuer
from gatehouse_common.health import Readiness
from gatehouse_common.resources import resources_dependency


@dataclass(frozen=True, slots=True)
class AuthResources:
    settings: AuthSettings
    database: AuthDatabase
    redis: Redis
    identities: IdentityRepository
    passwords: PasswordHasher
    registration_throttle: RegistrationThrottle
    tokens: TokenIssuer


Resources = Annotated[AuthResources, Depends(resources_dependency(AuthResources))]


async def _mongodb_answers(resources: AuthResources) -> None:
    await resources.database.ping()


async def _redis_answers(resources: AuthResources) -> None:
    await resources.redis.ping()


def readiness(settings: AuthSettings) -> Readiness[AuthResources]:
    return Readiness(
        {"mongodb": _mongodb_answers, "redis": _redis_answers},
        timeout_seconds=settings.mongo_timeout_ms / 1000 + 0.5,
    )
