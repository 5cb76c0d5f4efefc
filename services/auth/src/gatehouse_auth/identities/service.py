from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gatehouse_auth.identities.errors import EmailTaken
from gatehouse_auth.identities.repository import ADMIN_ROLE, Identity, IdentityRepository
from gatehouse_auth.outbox import new_event
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_common.events import AccountRegistered
from gatehouse_common.logging import get_logger
from gatehouse_common.scopes import BASE_SCOPES, AccessScope

_log = get_logger(__name__)


def scope_of(identity: Identity) -> str:
    """The access-token scope: every user's base scopes, plus ``admin`` for administrators."""
    admin = (AccessScope.ADMIN,) if ADMIN_ROLE in identity.roles else ()
    return " ".join((*BASE_SCOPES, *admin))


async def register(  # noqa: PLR0913 - collaborators, then the account by keyword
    identities: IdentityRepository,
    passwords: PasswordHasher,
    *,
    email: str,
    password: str,
    display_name: str | None = None,
    roles: list[str] | None = None,
) -> Identity:
    """Create an identity and record ``account.registered`` (users creates the profile with
    ``display_name``); raises ``EmailTaken`` if the email is taken.

    Check, then hash: a taken email is answered without hashing, so a flood of duplicate
    registrations costs no Argon2 time. Its answer is faster than a 201, but that tells
    nothing the 409 does not already say (registration is not enumeration-proof: the status
    names a taken email). Were it ever made so, this must hash first. The unique index on
    ``email`` stays the real guard: two registrations racing past the check get one 201 and
    one ``EmailTaken`` from the insert.
    """
    if await identities.by_email(email) is not None:
        raise EmailTaken
    identity_id = uuid.uuid4()
    identity = await identities.insert(
        identity_id=str(identity_id),
        email=email,
        password_hash=await passwords.hash(password),
        display_name=display_name,
        roles=list(roles or []),
        now=datetime.now(UTC),
        event=new_event(
            AccountRegistered(user_id=identity_id, email=email, display_name=display_name)
        ),
    )
    _log.info("identity_registered", user_id=identity.id)
    return identity
