"""What users' requests use, built once by the lifespan (see ``main.create_app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from gatehouse_common.health import Readiness
from gatehouse_common.resources import resources_dependency
from gatehouse_common.tokens import AccessTokenVerifier
from gatehouse_users.database import Database
from gatehouse_users.profiles.cache import ProfileCache


@dataclass(frozen=True, slots=True)
class UsersResources:
    token_verifier: AccessTokenVerifier
    database: Database
    profile_cache: ProfileCache


Resources = Annotated[UsersResources, Depends(resources_dependency(UsersResources))]


async def _postgres_answers(resources: UsersResources) -> None:
    await resources.database.ping()


# Redis is not checked: the cache is optional and reads fall back to PostgreSQL.
READINESS = Readiness[UsersResources]({"postgres": _postgres_answers})
