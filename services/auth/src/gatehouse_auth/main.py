"""The auth service: identities, the OAuth 2.0 token endpoint, refresh sessions, account emails
and the JWKS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from pymongo.errors import ConnectionFailure
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gatehouse_auth.account_email.endpoints import router as account_email_router
from gatehouse_auth.account_email.repository import EmailTokenRepository
from gatehouse_auth.account_email.service import AccountEmails
from gatehouse_auth.database import AuthDatabase, mongo_client
from gatehouse_auth.erasure import AccountEraser
from gatehouse_auth.identities.endpoints import router as identities_router
from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_auth.identities.stored_emails import StoredEmailCollision, normalize_stored_emails
from gatehouse_auth.outbox import MongoOutbox
from gatehouse_auth.own_tokens import LEEWAY_SECONDS as OWN_TOKEN_LEEWAY_SECONDS
from gatehouse_auth.own_tokens import own_token_verifier
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.resources import AuthResources, readiness
from gatehouse_auth.sessions.endpoints import router as sessions_router
from gatehouse_auth.sessions.repository import SessionRepository
from gatehouse_auth.settings import AuthSettings
from gatehouse_auth.signing_keys import AccessTokenSigner, SigningKeySet
from gatehouse_auth.throttling import (
    EmailRequestThrottle,
    LoginThrottle,
    RegistrationThrottle,
    SlidingWindows,
)
from gatehouse_auth.tokens.endpoints import router as tokens_router
from gatehouse_auth.tokens.oauth import install_oauth_error_handler
from gatehouse_auth.tokens.repository import RefreshTokenRepository
from gatehouse_auth.tokens.service import TokenIssuer
from gatehouse_common.app import ServiceInfo
from gatehouse_common.app import create_app as create_service_app
from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.draining import draining_of
from gatehouse_common.events import AUTH_STREAM, USERS_STREAM, AccountErased, run_in_background
from gatehouse_common.events.wiring import event_consumer, open_event_channel, outbox_relay
from gatehouse_common.logging import get_logger
from gatehouse_common.redis_retry import retry_once_on_broken_connection
from gatehouse_common.redis_watch import RedisConnectionWatch
from gatehouse_common.revocation import RevocationFeed, RevocationSet
from gatehouse_common.scopes import scope_descriptions
from gatehouse_common.settings import load_settings

INFO = ServiceInfo(
    name="auth",
    title="Gatehouse auth",
    version="0.1.0",
    description="Accounts, OAuth 2.0 password and refresh-token grants, email verification "
    "and password reset, and the JWKS.",
)

_log = get_logger(__name__)


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or load_settings(AuthSettings)
    # Read at build time: a missing or broken key set stops the service before it serves.
    key_set = SigningKeySet.load(settings.signing_keys_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AuthResources]:
        client = mongo_client(settings)
        database = AuthDatabase(client, settings.mongo_database)
        mongo_gate = AvailabilityGate(
            "mongodb",
            settings.mongo_retry_interval_seconds,
            probe=lambda: client.admin.command("ping"),
            # PyMongo's async API must not be cancelled mid-operation on Python 3.11: a task
            # cancelled while its wait for a server or a pooled connection times out (asyncio's
            # wait_for of 3.11 runs the wait as a task of its own) releases a lock it no longer
            # holds, and the lock stays taken for good: every later operation of the client
            # waits for it. The chaos run's MongoDB kill left auth answering 503 to the end.
            # Requests in flight end by the client's timeouts instead (database.mongo_client).
            interrupts_in_flight=False,
        )
        events_redis = open_event_channel(settings)
        relay = outbox_relay(settings, events_redis, MongoOutbox(database), stream=AUTH_STREAM)
        identities = IdentityRepository(database.identities, notify=relay.notify)
        try:
            await database.ensure_indexes()
            # Stored emails in today's one spelling; two identities of one address stop the
            # start (StoredEmailCollision), for a person to decide.
            await normalize_stored_emails(identities)
        except ConnectionFailure as exc:
            # Not fatal: requests answer 503 until MongoDB is back, then the indexes are made.
            # The emails are checked at the next start, or by `gatehouse-auth-admin
            # normalize-emails`.
            _log.warning("mongo_unavailable_at_startup", error=type(exc).__name__)
        except StoredEmailCollision:
            await events_redis.aclose()
            await client.close()
            raise
        redis = Redis.from_url(
            settings.redis_url.get_secret_value(),
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            health_check_interval=30,
            retry=retry_once_on_broken_connection(),
        )
        # Its stall check's probe is a PING on a pooled connection: only password logins,
        # registrations and email requests use this pool, so one is idle to answer it.
        throttle_gate = AvailabilityGate(
            "redis",
            settings.redis_retry_interval_seconds,
            probe=redis.ping,
            stall_seconds=settings.redis_stall_seconds,
            stall_probe_seconds=settings.redis_stall_probe_seconds,
        )
        # Few requests use this Redis: a kill is noticed by the watch, not by the next login.
        throttle_redis_watch = RedisConnectionWatch(
            settings.redis_url.get_secret_value(),
            throttle_gate,
            key=f"{settings.redis_key_prefix}connection-watch",
            client_name="auth-throttles-watch",
            connect_timeout_seconds=settings.redis_timeout_seconds,
            retry_interval_seconds=settings.redis_retry_interval_seconds,
        )
        sessions = SessionRepository(database, notify=relay.notify)
        email_tokens = EmailTokenRepository(database)
        passwords = PasswordHasher(settings)
        # A login still waiting for a hashing slot when shutdown begins would hold the drain.
        draining_of(app).on_begin(passwords.refuse_queued)
        erasures = event_consumer(settings, events_redis, stream=USERS_STREAM, group=INFO.name)
        erasures.on(
            AccountErased,
            AccountEraser(database, identities, sessions, email_tokens, notify=relay.notify).handle,
        )
        revocations = RevocationSet(
            retention_seconds=max(
                settings.access_token_ttl_seconds, settings.access_token_max_lifetime_seconds
            )
            + OWN_TOKEN_LEEWAY_SECONDS
        )
        feed = RevocationFeed(
            events_redis, revocations, block_seconds=settings.events_block_seconds
        )

        def windows(seconds: int) -> SlidingWindows:
            """Throttle counters in auth's Redis, behind the throttles' one gate."""
            return SlidingWindows(redis, window_seconds=seconds, gate=throttle_gate)

        email_request_windows = windows(settings.email_requests_window_seconds)

        def email_request_throttle(counter: str) -> EmailRequestThrottle:
            return EmailRequestThrottle(
                email_request_windows,
                prefix=settings.redis_key_prefix,
                counter=counter,
                max_per_email=settings.email_requests_max_per_email,
                max_per_address=settings.email_requests_max_per_address,
            )

        try:
            async with (
                own_token_verifier(settings, key_set) as verifier,
                run_in_background(erasures, relay, feed, throttle_redis_watch),
            ):
                await feed.wait_caught_up(settings.revocation_replay_wait_seconds)
                _log.info("auth_started", active_kid=key_set.active_kid, keys=len(key_set.keys))
                yield AuthResources(
                    settings=settings,
                    database=database,
                    mongo_gate=mongo_gate,
                    redis=redis,
                    identities=identities,
                    passwords=passwords,
                    registration_throttle=RegistrationThrottle(
                        windows(settings.registration_window_seconds),
                        prefix=settings.redis_key_prefix,
                        max_per_address=settings.registration_max_per_address,
                    ),
                    tokens=TokenIssuer(
                        identities=identities,
                        refresh_tokens=RefreshTokenRepository(database),
                        sessions=sessions,
                        passwords=passwords,
                        throttle=LoginThrottle(
                            windows(settings.login_failure_window_seconds),
                            prefix=settings.redis_key_prefix,
                            max_failures_per_email=settings.login_max_failures_per_email,
                            max_failures_per_address=settings.login_max_failures_per_address,
                        ),
                        signer=AccessTokenSigner(
                            key_set,
                            issuer=settings.issuer,
                            audience=settings.audience,
                            lifetime_seconds=settings.access_token_ttl_seconds,
                        ),
                        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
                        session_lifetime=timedelta(
                            seconds=settings.session_absolute_lifetime_seconds
                        ),
                    ),
                    token_verifier=verifier,
                    revocations=revocations,
                    events_redis=events_redis,
                    account_emails=AccountEmails(
                        email_tokens=email_tokens,
                        identities=identities,
                        sessions=sessions,
                        passwords=passwords,
                        verification_requests=email_request_throttle("verification-requests"),
                        reset_requests=email_request_throttle("password-reset-requests"),
                        verification_ttl=timedelta(seconds=settings.verify_email_token_ttl_seconds),
                        reset_ttl=timedelta(seconds=settings.reset_password_token_ttl_seconds),
                    ),
                )
        finally:
            passwords.close()
            await mongo_gate.aclose()
            await throttle_gate.aclose()
            await events_redis.aclose()
            await redis.aclose()
            await client.close()

    app = create_service_app(
        INFO,
        settings,
        lifespan=lifespan,
        readiness=readiness(settings),
        routers=[identities_router, tokens_router, sessions_router, account_email_router],
        # ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
        unavailable={
            ConnectionFailure: "mongodb",
            RedisConnectionError: "redis",
            RedisTimeoutError: "redis",
        },
    )
    install_oauth_error_handler(app)
    _document_password_flow(app)
    return app


def _document_password_flow(app: FastAPI) -> None:
    """Declare /auth/token as an OAuth2 password flow, so Swagger UI's Authorize button works."""
    build = app.openapi  # the shared document (gatehouse_common.app), built once

    def openapi() -> dict[str, Any]:
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "OAuth2PasswordBearer": {
                "type": "oauth2",
                "flows": {
                    "password": {
                        "tokenUrl": "/auth/token",
                        "refreshUrl": "/auth/token",
                        "scopes": scope_descriptions(),
                    }
                },
            }
        }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
