"""Password and refresh grants, revocation: the OAuth 2.0 logic, free of HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gatehouse_auth.identities.repository import Identity, IdentityRepository
from gatehouse_auth.identities.schemas import MAX_PASSWORD_LENGTH
from gatehouse_auth.identities.service import scope_of
from gatehouse_auth.opaque_tokens import hash_opaque_token, new_opaque_token
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.sessions.repository import SessionRepository
from gatehouse_auth.signing_keys import AccessTokenSigner
from gatehouse_auth.throttling import LoginThrottle
from gatehouse_auth.tokens.oauth import OAuthError
from gatehouse_auth.tokens.repository import RefreshTokenRepository
from gatehouse_auth.tokens.schemas import TokenResponse
from gatehouse_common.logging import bind_log_context, get_logger
from gatehouse_common.text import normalize_email

_log = get_logger(__name__)

MAX_REFRESH_TOKEN_LENGTH = 256

BAD_CREDENTIALS = "The email or password is wrong."
BAD_REFRESH_TOKEN = "The refresh token is unknown, expired, revoked or already used."  # noqa: S105


def _login_email(username: str) -> str | None:
    """The email's one spelling (as registration stored it), or None if ``username`` is not
    an email address at all."""
    try:
        return normalize_email(username)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenIssuer:
    """The token endpoint's work: password and refresh grants, revocation; and the two things
    a password change shares with the password grant (a throttled password check, a login).

    Made once in the lifespan with everything a grant touches, so the endpoint depends on
    this one object rather than on each collaborator.
    """

    identities: IdentityRepository
    refresh_tokens: RefreshTokenRepository
    sessions: SessionRepository
    passwords: PasswordHasher
    throttle: LoginThrottle
    signer: AccessTokenSigner
    refresh_ttl: timedelta
    # Absolute: a login ends this long after its password check, however often it is refreshed.
    session_lifetime: timedelta

    async def password_grant(self, username: str, password: str, address: str) -> TokenResponse:
        email = _login_email(username)
        # Every spelling of one address counts against one limit: the key is its one spelling.
        throttle_key = email if email is not None else username

        async def identity() -> Identity | None:
            return await self.identities.by_email(email) if email is not None else None

        checked = await self.check_password(identity, password, throttle_key, address)
        if checked is None:
            raise OAuthError("invalid_grant", BAD_CREDENTIALS)
        return await self.start_login(checked)

    async def check_password(
        self,
        identity_of: Callable[[], Awaitable[Identity | None]],
        password: str,
        throttle_key: str,
        address: str,
    ) -> Identity | None:
        """The identity if ``password`` is its password, else None (a failed login for the
        throttle). Raises ``LoginThrottled`` (429) if the email or address has no room left;
        the identity is looked up only after that."""
        # The failure is counted before the password is checked, so that concurrent wrong
        # passwords cannot all pass a check made before any of them was counted.
        async with self.throttle.attempt(throttle_key, address) as attempt:
            identity = await identity_of()
            # No stored password is longer than the maximum, so an over-long one cannot match;
            # it is still checked against the decoy hash so that every failure takes the same
            # time.
            checkable = identity is not None and len(password) <= MAX_PASSWORD_LENGTH
            matches, new_hash = await self.passwords.verify(
                password, identity.password_hash if identity is not None and checkable else None
            )
            if identity is None or not matches:
                attempt.failed()
                _log.info(
                    "login_failed", known_account=identity is not None, client_address=address
                )
                return None

            if new_hash is not None:
                await self.identities.replace_password_hash(
                    identity.id, identity.password_hash, new_hash, datetime.now(UTC)
                )
                _log.info("password_rehashed", user_id=identity.id)
            await attempt.succeeded()
        return identity

    async def start_login(self, identity: Identity) -> TokenResponse:
        """A new login (refresh-token family) of ``identity``, and its first tokens."""
        now = datetime.now(UTC)
        expires_at = now + self.refresh_ttl
        session_expires_at = now + self.session_lifetime
        family_id = await self.refresh_tokens.start_family(
            identity.id,
            generation=identity.login_generation,
            now=now,
            expires_at=expires_at,
            session_expires_at=session_expires_at,
        )
        bind_log_context(user_id=identity.id)
        _log.info("login_succeeded", user_id=identity.id, family_id=family_id)
        return await self._issue(
            identity,
            family_id=family_id,
            now=now,
            expires_at=expires_at,
            session_expires_at=session_expires_at,
        )

    async def refresh_grant(self, refresh_token: str) -> TokenResponse:
        if len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
            raise OAuthError("invalid_grant", BAD_REFRESH_TOKEN)
        token_hash = hash_opaque_token(refresh_token)
        now = datetime.now(UTC)
        record = await self.refresh_tokens.spend(token_hash, now=now)
        if record is None:
            known = await self.refresh_tokens.find(token_hash)
            if known is not None and known.used_at is not None:
                # RFC 9700 §4.14: a spent token presented again means it leaked (or the client
                # raced itself); either way nobody holding this login can be trusted any more.
                await self.sessions.revoke(
                    known.family_id, user_id=known.user_id, reason="refresh_reuse", now=now
                )
                _log.warning(
                    "refresh_token_reuse_detected",
                    user_id=known.user_id,
                    family_id=known.family_id,
                )
            else:
                _log.info("refresh_rejected", known_token=known is not None)
            raise OAuthError("invalid_grant", BAD_REFRESH_TOKEN)

        identity = await self.identities.by_id(record.user_id)
        if identity is None:
            await self.sessions.revoke(
                record.family_id, user_id=record.user_id, reason="erasure", now=now
            )
            raise OAuthError("invalid_grant", BAD_REFRESH_TOKEN)

        response = await self._issue(
            identity,
            family_id=record.family_id,
            now=now,
            expires_at=now + self.refresh_ttl,
            # The login's absolute end stays where the password login set it.
            session_expires_at=record.session_expires_at,
        )
        # Checked after storing the new token; see SessionRepository.revoke.
        if not await self.refresh_tokens.family_is_live(
            record.family_id, generation=identity.login_generation
        ):
            await self.sessions.revoke(
                record.family_id, user_id=record.user_id, reason="revoked", now=now
            )
            raise OAuthError("invalid_grant", BAD_REFRESH_TOKEN)
        bind_log_context(user_id=identity.id)
        _log.info("refresh_succeeded", user_id=identity.id, family_id=record.family_id)
        return response

    async def revoke(self, token: str) -> None:
        """Revoke the whole login of a refresh token; unknown tokens are ignored (RFC 7009 §2.2)."""
        if len(token) > MAX_REFRESH_TOKEN_LENGTH:
            return
        record = await self.refresh_tokens.find(hash_opaque_token(token))
        if record is not None and await self.sessions.revoke(
            record.family_id, user_id=record.user_id, reason="revoked", now=datetime.now(UTC)
        ):
            _log.info("login_revoked", user_id=record.user_id, family_id=record.family_id)

    async def _issue(
        self,
        identity: Identity,
        *,
        family_id: str,
        now: datetime,
        expires_at: datetime,
        session_expires_at: datetime,
    ) -> TokenResponse:
        refresh_token = new_opaque_token()
        await self.refresh_tokens.store(
            hash_opaque_token(refresh_token),
            family_id=family_id,
            user_id=identity.id,
            now=now,
            expires_at=expires_at,
            session_expires_at=session_expires_at,
        )
        scope = scope_of(identity)
        return TokenResponse(
            access_token=self.signer.sign(
                subject=identity.id,
                email=identity.email,
                email_verified=identity.email_verified,
                session_id=family_id,
                scope=scope,
            ),
            expires_in=self.signer.lifetime_seconds,
            refresh_token=refresh_token,
            scope=scope,
        )
