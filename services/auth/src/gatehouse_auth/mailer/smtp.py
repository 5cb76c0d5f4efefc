"""Sending one message over SMTP with aiosmtplib, a new connection per message."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from gatehouse_auth.settings import EmailWorkerSettings


class PermanentDeliveryError(Exception):
    """The server refused the message for good (5xx): retrying would not help."""


class TransientDeliveryError(Exception):
    """The server could not be reached or answered 4xx: try again later."""


class SmtpSender:
    def __init__(self, settings: EmailWorkerSettings) -> None:
        self._settings = settings

    async def send(self, message: EmailMessage) -> None:
        settings = self._settings
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=password,
                use_tls=settings.smtp_tls == "tls",
                start_tls=settings.smtp_tls == "starttls",
                timeout=settings.smtp_timeout_seconds,
            )
        # The exceptions' texts can quote the recipient or the server's view of the message:
        # only the class and the reply code travel on.
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise _refused(min(codes, default=500), "SMTPRecipientsRefused") from None
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            raise _refused(exc.code, type(exc).__name__) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Unreachable, busy, or misconfigured (login, TLS, sender): a server-side matter
            # that someone fixes, after which the waiting emails go out.
            raise TransientDeliveryError(type(exc).__name__) from None


def _refused(code: int, name: str) -> Exception:
    """A refusal of this message or recipient: permanent for 5xx, worth a retry for 4xx."""
    error = PermanentDeliveryError if code >= 500 else TransientDeliveryError
    return error(f"{name} {code}")
