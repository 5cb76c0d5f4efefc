"""The email worker process: ``python -m gatehouse_auth.mailer`` (gatehouse_common.server).

A process of the auth image beside the API, so that a slow or absent mail server never
touches a request. It serves only /health, /ready (MongoDB, where the outbox is) and /metrics,
so Compose and Kubernetes run and probe it like every other service; the delivery loop runs
in its lifespan and is finished gracefully on SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from gatehouse_auth.database import AuthDatabase, mongo_client
from gatehouse_auth.mailer.outbox import EmailOutbox
from gatehouse_auth.mailer.rendering import EmailRenderer
from gatehouse_auth.mailer.smtp import SmtpSender
from gatehouse_auth.mailer.worker import EmailWorker
from gatehouse_auth.settings import EmailWorkerSettings
from gatehouse_common.app import ServiceInfo
from gatehouse_common.app import create_app as create_service_app
from gatehouse_common.health import Readiness
from gatehouse_common.settings import load_settings

INFO = ServiceInfo(
    name="auth-email-worker",
    title="Gatehouse auth email worker",
    version="0.1.0",
    description="Sends the emails that auth records in its outbox.",
)


@dataclass(frozen=True, slots=True)
class EmailWorkerResources:
    database: AuthDatabase


async def _mongodb_answers(resources: EmailWorkerResources) -> None:
    await resources.database.ping()


def build_worker(settings: EmailWorkerSettings, database: AuthDatabase) -> EmailWorker:
    return EmailWorker(
        EmailOutbox(database.email_tokens),
        EmailRenderer(public_base_url=str(settings.public_base_url), sender=settings.smtp_sender),
        SmtpSender(settings),
        poll_interval_seconds=settings.email_poll_interval_seconds,
        lease_seconds=settings.email_lease_seconds,
        retry_base_seconds=settings.email_retry_base_seconds,
        retry_max_seconds=settings.email_retry_max_seconds,
    )


def create_app(settings: EmailWorkerSettings | None = None) -> FastAPI:
    settings = settings or load_settings(EmailWorkerSettings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[EmailWorkerResources]:
        client = mongo_client(settings)
        database = AuthDatabase(client, settings.mongo_database)
        stop = asyncio.Event()
        delivery = asyncio.create_task(build_worker(settings, database).run(stop))
        try:
            yield EmailWorkerResources(database=database)
        finally:
            stop.set()
            await delivery
            await client.close()

    return create_service_app(
        INFO,
        settings,
        lifespan=lifespan,
        readiness=Readiness(
            {"mongodb": _mongodb_answers},
            timeout_seconds=settings.mongo_timeout_ms / 1000 + 0.5,
        ),
        openapi_url=None,
    )
