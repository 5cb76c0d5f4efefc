"""The stack's mail catcher (MailDev, the ``mailer`` service), read through its REST API."""

from __future__ import annotations

from dataclasses import dataclass

import httpx2

from gatehouse_testing.mail import Email, token_in
from tests.e2e.public_api import Gateway


@dataclass
class Mailbox:
    """The stack's mail catcher, read through MailDev's REST API (published like the gateway)."""

    client: httpx2.Client

    def emails(self) -> list[Email]:
        response = self.client.get("/email")
        response.raise_for_status()
        emails: list[Email] = response.json()
        return emails

    def wait_for(self, recipient: str, subject: str, count: int = 1) -> list[Email]:
        """At least ``count`` emails with ``subject`` to ``recipient``, oldest first."""

        def arrived() -> list[Email] | None:
            found = [
                email
                for email in self.emails()
                if email.get("subject") == subject
                and any(to.get("address") == recipient for to in email.get("to", []))
            ]
            return found if len(found) >= count else None

        arrived.__name__ = f"{count} email(s) {subject!r}"
        return Gateway.wait_until(arrived, timeout=30.0)

    def token(self, recipient: str, subject: str) -> str:
        """The token of the newest email with ``subject`` to ``recipient``."""
        return token_in(self.wait_for(recipient, subject)[-1])
