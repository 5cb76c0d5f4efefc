"""Verification and reset: issue a token with its email, spend a token, throttle the requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gatehouse_auth.account_email.errors import EmailRequestsThrottled, InvalidEmailToken
from gatehouse_auth.account_email.repository import EmailTokenRepository
from gatehouse_auth.identities.repository import Identity, IdentityRepository
from gatehouse_auth.mailer.outbox import EmailPurpose
from gatehouse_auth.opaque_tokens import hash_opaque_token, new_opaque_token
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.sessions.repository import SessionRepository
from gatehouse_auth.sessions.service import end_every_login
from gatehouse_auth.throttling import EmailRequestThrottle, WindowFull
from gatehouse_common.logging import get_logger

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountEmails:
    """Verification and password reset by email: issue a token with its email, spend a token,
    throttle the requests.

    Made once in the lifespan with everything the two flows touch, so each endpoint depends on
    this one object rather than on each collaborator (as ``TokenIssuer`` does for tokens).
    """

    email_tokens: EmailTokenRepository
    identities: IdentityRepository
    sessions: SessionRepository
    passwords: PasswordHasher
    # Resend-verification and forgot-password requests, each per email and per client address.
    verification_requests: EmailRequestThrottle
    reset_requests: EmailRequestThrottle
    verification_ttl: timedelta
    reset_ttl: timedelta

    async def send_verification(self, identity: Identity) -> None:
        await self._issue("verify_email", identity, self.verification_ttl)

    async def resend_verification(self, *, user_id: str, address: str) -> None:
        """A new verification email, unless the email is verified already (or the account gone)."""
        identity = await self.identities.by_id(user_id)
        if identity is None:
            return
        await _count_request(self.verification_requests, identity.email, address)
        if identity.email_verified:
            _log.info("verification_not_needed", user_id=identity.id)
            return
        await self.send_verification(identity)

    async def verify_email(self, token: str) -> None:
        now = datetime.now(UTC)
        record = await self.email_tokens.use("verify_email", hash_opaque_token(token), now=now)
        # The token carries the address it was sent to: an email changed since is not verified.
        if record is None or not await self.identities.mark_email_verified(
            record.user_id, record.email, now
        ):
            _log.info("email_token_rejected", purpose="verify_email")
            raise InvalidEmailToken
        _log.info("email_verified", user_id=record.user_id)

    async def request_password_reset(self, *, email: str, address: str) -> None:
        """A reset email if ``email`` has an account; the caller cannot tell whether it has.

        Counted before the lookup, so the limits (and the 429) are the same for every address.
        """
        await _count_request(self.reset_requests, email, address)
        identity = await self.identities.by_email(email)
        if identity is None:
            _log.info("password_reset_requested", known_account=False)
            return
        await self._issue("reset_password", identity, self.reset_ttl)
        _log.info("password_reset_requested", known_account=True, user_id=identity.id)

    async def reset_password(self, *, token: str, new_password: str) -> None:
        """Set the password and revoke every login of the user (one identity write, which also
        records the ``logins.revoked`` event).

        The token is looked up before hashing (a wrong token costs no Argon2 run) and spent only
        after, so a hashing failure does not cost the user the token.
        """
        token_hash = hash_opaque_token(token)
        live = await self.email_tokens.find_live(
            "reset_password", token_hash, now=datetime.now(UTC)
        )
        if live is None:
            _log.info("email_token_rejected", purpose="reset_password")
            raise InvalidEmailToken
        password_hash = await self.passwords.hash(new_password)
        now = datetime.now(UTC)
        record = await self.email_tokens.use("reset_password", token_hash, now=now)
        if record is None or (
            await end_every_login(
                self.identities,
                self.sessions,
                user_id=record.user_id,
                reason="password_reset",
                password_hash=password_hash,
            )
            is None
        ):
            _log.info("email_token_rejected", purpose="reset_password")
            raise InvalidEmailToken
        # Any other reset link of this user dies with the password it was meant to replace.
        await self.email_tokens.use_all("reset_password", record.user_id, now=now)
        _log.info("password_reset", user_id=record.user_id)

    async def _issue(self, purpose: EmailPurpose, identity: Identity, ttl: timedelta) -> None:
        token = new_opaque_token()
        now = datetime.now(UTC)
        token_id = await self.email_tokens.issue(
            purpose,
            token=token,
            token_hash=hash_opaque_token(token),
            user_id=identity.id,
            email=identity.email,
            now=now,
            expires_at=now + ttl,
        )
        _log.info("email_queued", purpose=purpose, email_id=token_id, user_id=identity.id)


async def _count_request(throttle: EmailRequestThrottle, email: str, address: str) -> None:
    """Every request counts, answered or not: refuse once the email or address is over its limit."""
    try:
        await throttle.count(email, address)
    except WindowFull as full:
        _log.info("email_request_throttled", retry_after=full.retry_after, client_address=address)
        raise EmailRequestsThrottled(full.retry_after) from None
