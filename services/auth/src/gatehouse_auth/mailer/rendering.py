"""The emails themselves: Jinja2 templates, plain text and HTML, with the token as link and code."""

from __future__ import annotations

from email.message import EmailMessage

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from gatehouse_auth.mailer.outbox import EmailPurpose, OutgoingEmail

SUBJECTS: dict[EmailPurpose, str] = {
    "verify_email": "Confirm your email address for Gatehouse",
    "reset_password": "Reset your Gatehouse password",
}
# Pages of the public site that read the token and POST it to /auth/verify or
# /auth/password/reset. The token travels in the fragment, which browsers never send to a
# server: it cannot end up in the site's access logs or in a Referer header.
LINK_PATHS: dict[EmailPurpose, str] = {
    "verify_email": "/verify-email",
    "reset_password": "/reset-password",
}


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


class EmailRenderer:
    def __init__(self, *, public_base_url: str, sender: str) -> None:
        self._base_url = public_base_url.rstrip("/")
        self._sender = sender
        self._sender_domain = sender.rpartition("@")[2]
        # Autoescaping for the HTML templates only: the text ones are not markup.
        self._templates = Environment(
            loader=PackageLoader("gatehouse_auth.mailer", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def link(self, purpose: EmailPurpose, token: str) -> str:
        return f"{self._base_url}{LINK_PATHS[purpose]}#token={token}"

    def render(self, email: OutgoingEmail) -> EmailMessage:
        subject = SUBJECTS[email.purpose]
        context = {
            "subject": subject,
            "recipient": email.recipient,
            "link": self.link(email.purpose, email.token),
            "token": email.token,
            "valid_for": _duration((email.expires_at - email.created_at).total_seconds()),
        }
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = email.recipient
        message["Subject"] = subject
        # Stable across retries, so a receiver can recognise the copy that the at-least-once
        # window may send twice.
        message["Message-ID"] = f"<{email.id}@{self._sender_domain}>"
        message.set_content(self._templates.get_template(f"{email.purpose}.txt").render(context))
        message.add_alternative(
            self._templates.get_template(f"{email.purpose}.html").render(context), subtype="html"
        )
        return message
