"""The users service: profiles on PostgreSQL with a Redis read cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from fastapi import FastAPI

from gatehouse_common.app import ServiceInfo
from gatehouse_common.app import create_app as create_service_app
from gatehouse_common.authentication import token_verifier
from gatehouse_common.settings import load_settings
from gatehouse_users.database import open_database
from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.profiles.endpoints import router as profiles_router
from gatehouse_users.resources import READINESS, UsersResources
from gatehouse_users.settings import UsersSettings

INFO = ServiceInfo(
    name="users",
    title="Gatehouse users",
    version="0.1.0",
    description="User profiles. Every route needs a bearer access token issued by auth.",
)


def create_app(
    settings: UsersSettings | None = None,
    *,
    jwks_transport: httpx2.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app; ``jwks_transport`` lets tests serve the issuer's JWKS in-process."""
    settings = settings or load_settings(UsersSettings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[UsersResources]:
        profile_cache = ProfileCache(
            ttl_seconds=settings.cache_ttl_seconds,
            timeout_seconds=settings.cache_timeout_seconds,
            retry_interval_seconds=settings.cache_retry_interval_seconds,
            enabled=settings.cache_enabled,
        )
        async with (
            token_verifier(settings, transport=jwks_transport) as verifier,
            open_database(settings) as database,
        ):
            profile_cache.start(settings.redis_url.get_secret_value())
            try:
                yield UsersResources(
                    token_verifier=verifier, database=database, profile_cache=profile_cache
                )
            finally:
                await profile_cache.close()

    return create_service_app(
        INFO, settings, lifespan=lifespan, readiness=READINESS, routers=[profiles_router]
    )
