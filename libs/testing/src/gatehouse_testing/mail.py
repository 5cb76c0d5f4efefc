"""Reading what MailDev caught, through its REST API (``GET /email``), from async tests."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx2
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy

from gatehouse_testing.containers import MAILDEV_SMTP_PORT, MAILDEV_WEB_PORT

Email = dict[str, Any]
# The token after "#token=" in a link of ours (URL-safe base64).
_TOKEN_IN_LINK = re.compile(r"#token=([A-Za-z0-9_-]+)")


def token_in(email: Email) -> str:
    """The one-time token of an email, read from its link in the plain-text part."""
    found = _TOKEN_IN_LINK.search(str(email.get("text", "")))
    if found is None:
        raise AssertionError("the email holds no link with a token")
    return found.group(1)


class MailCatcher:
    """A MailDev container: where to send (SMTP) and what it received (REST API)."""

    def __init__(self, container: DockerContainer) -> None:
        self.container = container
        self.smtp_host = container.get_container_host_ip()
        self.smtp_port = int(container.get_exposed_port(MAILDEV_SMTP_PORT))
        web_port = container.get_exposed_port(MAILDEV_WEB_PORT)
        self.api_url = f"http://{self.smtp_host}:{web_port}"

    async def emails(self, recipient: str | None = None) -> list[Email]:
        """Every email caught (since the last start), or those to ``recipient``."""
        async with httpx2.AsyncClient(base_url=self.api_url, timeout=5.0) as client:
            response = await client.get("/email")
        response.raise_for_status()
        emails: list[Email] = response.json()
        if recipient is None:
            return emails
        return [
            email
            for email in emails
            if any(to.get("address") == recipient for to in email.get("to", []))
        ]

    async def wait_for_emails(
        self, recipient: str, count: int = 1, within_seconds: float = 20.0
    ) -> list[Email]:
        """At least ``count`` emails to ``recipient``, oldest first; fails after the wait."""
        deadline = time.monotonic() + within_seconds
        while True:
            emails = await self.emails(recipient)
            if len(emails) >= count:
                return emails
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(emails)} of {count} email(s) arrived in {within_seconds:g}s"
                )
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        """An outage: the SMTP port refuses connections until ``start``. Caught mail is lost."""
        self.container.get_wrapped_container().stop(timeout=1)

    def start(self) -> None:
        self.container.get_wrapped_container().start()
        HttpWaitStrategy(MAILDEV_WEB_PORT, "/healthz").wait_until_ready(self.container)
