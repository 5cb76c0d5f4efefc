"""The email worker: retries while the mail server is down, survives restarts and crashes,
sends each email once, and logs nothing of an email but its id."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from gatehouse_auth.database import AuthDatabase, mongo_client
from gatehouse_auth.mailer.main import build_worker
from gatehouse_auth.mailer.outbox import EmailOutbox
from gatehouse_auth.mailer.rendering import EmailRenderer
from gatehouse_auth.mailer.smtp import PermanentDeliveryError, TransientDeliveryError
from gatehouse_auth.mailer.worker import EmailWorker
from gatehouse_auth.main import create_app
from gatehouse_testing.mail import MailCatcher, token_in
from services.auth.tests.support import (
    AuthApi,
    SettingsFactory,
    WorkerSettingsFactory,
    eventually,
    running,
    running_worker,
)


async def _reset_email_document(database: AuthDatabase, email: str) -> dict[str, Any]:
    document: dict[str, Any] | None = await database.email_tokens.find_one(
        {"email": email, "purpose": "reset_password"}
    )
    assert document is not None
    return document


async def test_worker_restarted_mid_retry_still_delivers(
    api: AuthApi,
    database: AuthDatabase,
    maildev: MailCatcher,
    make_worker_settings: WorkerSettingsFactory,
) -> None:
    settings = make_worker_settings(email_retry_base_seconds=0.5, email_retry_max_seconds=2.0)
    user = await api.register()
    maildev.stop()
    try:
        async with running_worker(settings) as first:
            assert (await api.forgot(user["email"])).status_code == 202

            async def failed_twice() -> bool:
                document = await _reset_email_document(database, user["email"])
                return bool(document["send_attempts"] >= 2 and document["lease_owner"] is None)

            await eventually(failed_twice, "the first worker has failed twice", seconds=20)
        # Stopped mid-retry: the email waits in the outbox, with its plain token, unsent.
        document = await _reset_email_document(database, user["email"])
        assert document["sent_at"] is None
        assert document["pending_token"]
    finally:
        maildev.start()

    async with running_worker(settings) as second:
        assert second.owner != first.owner
        emails = await maildev.wait_for_emails(user["email"], count=2)
    reset_emails = [e for e in emails if e["subject"] == "Reset your Gatehouse password"]
    assert len(reset_emails) == 1
    assert (await api.reset(token_in(reset_emails[0]), "a brand new passphrase")).status_code == 204


async def test_an_email_claimed_by_a_crashed_worker_is_sent_after_its_lease(
    api: AuthApi,
    database: AuthDatabase,
    maildev: MailCatcher,
    make_worker_settings: WorkerSettingsFactory,
) -> None:
    user = await api.register()
    outbox = EmailOutbox(database.email_tokens)
    now = datetime.now(UTC)
    # A worker claims the verification email and dies before sending it.
    claimed = await outbox.claim(owner="crashed", now=now, lease_until=now + timedelta(seconds=2))
    assert claimed is not None
    assert claimed.recipient == user["email"]

    async with running_worker(make_worker_settings()):
        await asyncio.sleep(1.0)
        assert await maildev.emails(user["email"]) == []  # still leased
        (email,) = await maildev.wait_for_emails(user["email"])
        assert token_in(email) == claimed.token
        await asyncio.sleep(1.0)
        # Marked sent: no retry sends it again.
        assert len(await maildev.emails(user["email"])) == 1


async def test_a_sent_email_is_never_claimed_again(
    api: AuthApi, maildev: MailCatcher, make_worker_settings: WorkerSettingsFactory
) -> None:
    settings = make_worker_settings()
    user = await api.register()
    client = mongo_client(settings)
    try:
        worker = build_worker(settings, AuthDatabase(client, settings.mongo_database))
        assert await worker.deliver_next() is True
        assert await worker.deliver_next() is False
    finally:
        await client.close()
    assert len(await maildev.wait_for_emails(user["email"])) == 1


def test_retry_delays_grow_exponentially_up_to_the_maximum(
    make_worker_settings: WorkerSettingsFactory,
) -> None:
    settings = make_worker_settings(email_retry_base_seconds=2.0, email_retry_max_seconds=60.0)
    worker = build_worker(settings, AuthDatabase(mongo_client(settings), "unused"))
    for attempts, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (20, 60.0)):
        delay = worker.retry_delay(attempts)
        assert ceiling / 2 <= delay <= ceiling


async def test_no_email_token_or_link_reaches_the_logs(
    *,
    make_settings: SettingsFactory,
    maildev: MailCatcher,
    make_worker_settings: WorkerSettingsFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = create_app(make_settings(log_level="DEBUG"))  # logging is set up writing to capsys
    settings = make_worker_settings(log_level="DEBUG")
    async with running(app) as client, running_worker(settings):
        api = AuthApi(client)
        user = await api.register()
        (verification,) = await maildev.wait_for_emails(user["email"])
        assert (await api.verify(token_in(verification))).status_code == 204
        maildev.stop()  # a failed attempt is logged too
        try:
            assert (await api.forgot(user["email"])).status_code == 202
            await asyncio.sleep(1.0)
        finally:
            maildev.start()
        emails = await maildev.wait_for_emails(user["email"])
        (reset,) = [e for e in emails if e["subject"] == "Reset your Gatehouse password"]
        assert (await api.reset(token_in(reset), "a brand new passphrase")).status_code == 204

    output = capsys.readouterr().out
    messages = {json.loads(line)["message"] for line in output.splitlines() if line[:1] == "{"}
    assert {"email_queued", "email_sent", "email_send_failed", "email_verified"} <= messages
    assert "password_reset" in messages
    for email in (verification, reset):
        token = token_in(email)
        assert token not in output
        assert token[:16] not in output
        assert "#token=" not in output
        assert email["subject"] not in output


class _RefusingServer:
    """A mail server outside the system that answers every message with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def send(self, message: EmailMessage) -> None:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "final"),
    [
        pytest.param(PermanentDeliveryError("SMTPRecipientsRefused 550"), True, id="5xx"),
        pytest.param(TransientDeliveryError("SMTPRecipientsRefused 451"), False, id="4xx"),
    ],
)
async def test_a_refused_email_is_dropped_for_5xx_and_retried_for_4xx(
    api: AuthApi, database: AuthDatabase, error: Exception, *, final: bool
) -> None:
    user = await api.register()
    collection = database.email_tokens
    server = _RefusingServer(error)
    worker = EmailWorker(
        EmailOutbox(collection),
        EmailRenderer(public_base_url="https://gatehouse.example.com", sender="a@example.com"),
        server,
        poll_interval_seconds=0.1,
        lease_seconds=60,
        retry_base_seconds=30,
        retry_max_seconds=60,
    )

    assert await worker.deliver_next() is True

    document = await collection.find_one({"email": user["email"]})
    assert document is not None
    assert document["sent_at"] is None
    assert document["lease_owner"] is None
    if final:
        assert document["failed_at"] is not None
        assert "pending_token" not in document
    else:
        assert document["failed_at"] is None
        assert document["pending_token"]
        # Compared by the server: the MongoDB stand-in returns dates set by $set as strings.
        in_ten_seconds = datetime.now(UTC) + timedelta(seconds=10)
        later = {"_id": document["_id"], "send_after": {"$gt": in_ten_seconds}}
        assert await collection.find_one(later) is not None
    # Either way nothing is due now: dropped, or waiting for its retry.
    assert await worker.deliver_next() is False
    assert server.calls == 1


async def test_an_email_whose_token_expired_is_not_sent(
    api: AuthApi, database: AuthDatabase
) -> None:
    user = await api.register()
    outbox = EmailOutbox(database.email_tokens)
    document = await database.email_tokens.find_one({"email": user["email"]})
    assert document is not None
    after_expiry = document["expires_at"] + timedelta(seconds=1)
    assert await outbox.claim(owner="late", now=after_expiry, lease_until=after_expiry) is None
