"""The users service: profiles on PostgreSQL with a Redis read cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from fastapi import FastAPI

from gatehouse_common.app import create_app as create_service_app
from gatehouse_common.authentication import token_verifier
from gatehouse_common.health import Readiness
from gatehouse_common.settings import load_settings
from gatehouse_users.database import Database
from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.profiles.endpoints import router as profiles_router
from gatehouse_users.settings import UsersSettings

SERVICE = "users"
VERSION = "0.1.0"


def create_app(
    settings: UsersSettings | None = None,
    *,
    jwks_transport: httpx2.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app; ``jwks_transport`` lets tests serve the issuer's JWKS in-process."""
    settings = settings or load_settings(UsersSettings)
    database = Database(settings)
    profile_cache = ProfileCache(
        ttl_seconds=settings.cache_ttl_seconds,
        timeout_seconds=settings.cache_timeout_seconds,
        retry_interval_seconds=settings.cache_retry_interval_seconds,
        enabled=settings.cache_enabled,
    )
    # Redis is not checked: the cache is optional and reads fall back to PostgreSQL.
    readiness = Readiness()
    readiness.register("postgres", database.ping)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with token_verifier(settings, transport=jwks_transport) as verifier:
            app.state.token_verifier = verifier
            database.start()
            profile_cache.start(settings.redis_url.get_secret_value())
            try:
                yield
            finally:
                await profile_cache.close()
                await database.dispose()

    app = create_service_app(
        service=SERVICE,
        settings=settings,
        title="Gatehouse users",
        version=VERSION,
        description="User profiles. Every route needs a bearer access token issued by auth.",
        readiness=readiness,
        routers=[profiles_router],
        lifespan=lifespan,
    )
    app.state.database = database
    app.state.profile_cache = profile_cache
    return app
