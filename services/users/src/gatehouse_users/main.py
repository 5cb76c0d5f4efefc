"""The users service: profiles on PostgreSQL with a Redis read cache, and account events."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx2
from fastapi import FastAPI
from redis.asyncio import Redis

from gatehouse_common.app import ServiceInfo
from gatehouse_common.app import create_app as create_service_app
from gatehouse_common.authentication import token_verifier
from gatehouse_common.events import (
    AUTH_STREAM,
    USERS_STREAM,
    AccountRegistered,
    EventConsumer,
    run_in_background,
)
from gatehouse_common.events.wiring import event_consumer, open_event_channel, outbox_relay
from gatehouse_common.revocation import RevocationFeed, RevocationSet
from gatehouse_common.settings import load_settings
from gatehouse_users.database import Database, open_database
from gatehouse_users.outbox import PostgresOutbox
from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.profiles.endpoints import router as profiles_router
from gatehouse_users.profiles.events import create_registered_profile
from gatehouse_users.resources import READINESS, UsersResources
from gatehouse_users.settings import UsersSettings

INFO = ServiceInfo(
    name="users",
    title="Gatehouse users",
    version="0.1.0",
    description="User profiles. Every route needs a bearer access token issued by auth.",
)


def auth_events_consumer(
    settings: UsersSettings, events_redis: Redis, database: Database
) -> EventConsumer:
    """users' consumer group on events:auth: a registration creates the profile."""
    consumer = event_consumer(settings, events_redis, stream=AUTH_STREAM, group=INFO.name)
    consumer.on(AccountRegistered, functools.partial(create_registered_profile, database))
    return consumer


def create_app(
    settings: UsersSettings | None = None,
    *,
    jwks_transport: httpx2.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app; ``jwks_transport`` lets tests serve the issuer's JWKS in-process."""
    settings = settings or load_settings(UsersSettings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[UsersResources]:
        profile_cache = ProfileCache.from_settings(settings)
        async with AsyncExitStack() as stack:
            verifier = await stack.enter_async_context(
                token_verifier(settings, transport=jwks_transport)
            )
            database = await stack.enter_async_context(open_database(settings))
            profile_cache.start(settings.redis_url.get_secret_value())
            stack.push_async_callback(profile_cache.close)
            events_redis = open_event_channel(settings)
            stack.push_async_callback(events_redis.aclose)
            outbox = PostgresOutbox(database.sessions)
            stack.push_async_callback(outbox.close)
            relay = outbox_relay(settings, events_redis, outbox, stream=USERS_STREAM)
            revocations = RevocationSet(
                retention_seconds=settings.access_token_max_lifetime_seconds
                + settings.jwt_leeway_seconds
            )
            feed = RevocationFeed(
                events_redis, revocations, block_seconds=settings.events_block_seconds
            )
            consumer = auth_events_consumer(settings, events_redis, database)
            await stack.enter_async_context(run_in_background(relay, feed, consumer))
            await feed.wait_caught_up(settings.revocation_replay_wait_seconds)
            yield UsersResources(
                token_verifier=verifier,
                revocations=revocations,
                database=database,
                profile_cache=profile_cache,
                events_redis=events_redis,
                outbox_relay=relay,
            )

    return create_service_app(
        INFO, settings, lifespan=lifespan, readiness=READINESS, routers=[profiles_router]
    )
