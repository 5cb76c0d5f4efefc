"""The delivery loop: claim a due email, send it, mark it sent or schedule a retry.

Each email is sent once in effect: it is marked sent right after the SMTP server accepted it,
and a retry only happens for an email that is not marked. What remains is at-least-once: a
worker that dies (or loses MongoDB) between the server's acceptance and the mark sends that
email again once its lease runs out. The Message-ID stays the same, so the copy is
recognisable. Nothing of an email but its id and purpose is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from prometheus_client import Counter
from pymongo.errors import ConnectionFailure

from gatehouse_auth.mailer.outbox import EmailOutbox, OutgoingEmail
from gatehouse_auth.mailer.rendering import EmailRenderer
from gatehouse_auth.mailer.smtp import PermanentDeliveryError, TransientDeliveryError
from gatehouse_common.logging import get_logger

_log = get_logger(__name__)

EMAILS = Counter(
    "auth_emails_total",
    "Email delivery attempts, by purpose and outcome (sent, retry, failed).",
    ["purpose", "outcome"],
)


class MessageSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    """Unique per process, readable in the outbox: which pod held a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class EmailWorker:
    def __init__(  # noqa: PLR0913 - collaborators, then keyword-only timing settings
        self,
        outbox: EmailOutbox,
        renderer: EmailRenderer,
        sender: MessageSender,
        *,
        poll_interval_seconds: float,
        lease_seconds: float,
        retry_base_seconds: float,
        retry_max_seconds: float,
        owner: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._outbox = outbox
        self._renderer = renderer
        self._sender = sender
        self._poll_interval = poll_interval_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self.owner = owner or worker_id()
        self._clock = clock

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff with jitter, so that many waiting emails do not retry in step."""
        ceiling: float = min(self._retry_max, self._retry_base * 2.0 ** max(0, attempts - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; an email being sent when it is set is finished first."""
        _log.info("email_worker_started", owner=self.owner)
        while not stop.is_set():
            try:
                delivered = await self.deliver_next()
            except ConnectionFailure as exc:
                _log.warning("outbox_unavailable", error=type(exc).__name__)
                delivered = False
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one email
                _log.error("email_worker_error", error=type(exc).__name__)
                delivered = False
            if not delivered:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll_interval)
        _log.info("email_worker_stopped", owner=self.owner)

    async def deliver_next(self) -> bool:
        """Send the next due email, if any; True if there was one."""
        now = self._clock()
        email = await self._outbox.claim(owner=self.owner, now=now, lease_until=now + self._lease)
        if email is None:
            return False
        await self._deliver(email)
        return True

    async def _deliver(self, email: OutgoingEmail) -> None:
        log = _log.bind(email_id=email.id, purpose=email.purpose, attempt=email.attempts)
        try:
            await self._sender.send(self._renderer.render(email))
        except TransientDeliveryError as exc:
            delay = self.retry_delay(email.attempts)
            now = self._clock()
            await self._outbox.retry_later(
                email.id, owner=self.owner, now=now, send_after=now + timedelta(seconds=delay)
            )
            EMAILS.labels(email.purpose, "retry").inc()
            log.warning("email_send_failed", error=str(exc), retry_in_seconds=round(delay, 1))
        except PermanentDeliveryError as exc:
            await self._outbox.mark_failed(email.id, now=self._clock())
            EMAILS.labels(email.purpose, "failed").inc()
            log.error("email_refused", error=str(exc))
        else:
            await self._outbox.mark_sent(email.id, now=self._clock())
            EMAILS.labels(email.purpose, "sent").inc()
            log.info("email_sent")
