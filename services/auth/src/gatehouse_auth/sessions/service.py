"""Listing and ending a user's logins, and changing the password."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gatehouse_auth.identities.repository import Identity, IdentityRepository
from gatehouse_auth.outbox import new_event
from gatehouse_auth.sessions.errors import SessionNotFound, WrongPassword
from gatehouse_auth.sessions.repository import Session, SessionRepository
from gatehouse_auth.tokens.schemas import TokenResponse
from gatehouse_auth.tokens.service import TokenIssuer
from gatehouse_common.events import LoginsRevoked, RevocationReason
from gatehouse_common.logging import get_logger

_log = get_logger(__name__)

# LoginsRevoked names at most this many logins; any further one gets an event of its own.
MAX_NAMED_LOGINS = 1000


async def active_sessions(
    identities: IdentityRepository, sessions: SessionRepository, user_id: str
) -> list[Session]:
    identity = await identities.by_id(user_id)
    if identity is None:
        return []
    return await sessions.active(
        user_id, generation=identity.login_generation, now=datetime.now(UTC)
    )


async def end_session(sessions: SessionRepository, *, user_id: str, session_id: str) -> None:
    """Revoke one of the user's logins; raises ``SessionNotFound`` if it is not a live login
    of this user."""
    if not await sessions.revoke(
        session_id, user_id=user_id, reason="sign_out", now=datetime.now(UTC)
    ):
        raise SessionNotFound
    _log.info("login_revoked", user_id=user_id, family_id=session_id)


async def end_every_login(
    identities: IdentityRepository,
    sessions: SessionRepository,
    *,
    user_id: str,
    reason: RevocationReason,
    password_hash: str | None = None,
) -> Identity | None:
    """Revoke every login of the user (and set a new password, when given); None if there is
    no such identity.

    One write to the identity bumps its login generation, which ends every earlier login at
    once, and records the ``logins.revoked`` event naming them; only then are the logins
    themselves marked. The event names the logins rather than revoking all tokens issued
    until now: ``iat`` has whole seconds, so the latter would also refuse a login made in the
    same second afterwards (the new one of a password change, or the user signing in again).
    """
    now = datetime.now(UTC)
    named = (await sessions.unrevoked_ids(user_id))[:MAX_NAMED_LOGINS]
    event = (
        new_event(
            LoginsRevoked(user_id=uuid.UUID(user_id), session_ids=tuple(named), reason=reason)
        )
        if named
        else None
    )
    identity = await identities.end_logins(user_id, event, now=now, password_hash=password_hash)
    if identity is None:
        return None
    await sessions.revoke_older(
        user_id,
        below_generation=identity.login_generation,
        reason=reason,
        now=now,
        announced=frozenset(named),
    )
    _log.info("every_login_revoked", user_id=user_id, reason=reason, logins=len(named))
    return identity


async def change_password(  # noqa: PLR0913 - the issuer, then the request by keyword
    tokens: TokenIssuer,
    *,
    user_id: str,
    throttle_key: str,
    current_password: str,
    new_password: str,
    address: str,
) -> TokenResponse:
    """Check the current password (a wrong one counts as a failed login), set the new one,
    revoke every earlier login and start a new one."""

    async def identity() -> Identity | None:
        return await tokens.identities.by_id(user_id)

    if await tokens.check_password(identity, current_password, throttle_key, address) is None:
        raise WrongPassword
    password_hash = await tokens.passwords.hash(new_password)
    changed = await end_every_login(
        tokens.identities,
        tokens.sessions,
        user_id=user_id,
        reason="password_change",
        password_hash=password_hash,
    )
    if changed is None:  # erased meanwhile
        raise WrongPassword
    _log.info("password_changed", user_id=user_id)
    return await tokens.start_login(changed)
