"""Stored emails in today's one spelling: rewritten at start-up, refused when two collide.

Identities registered before ``normalize_email`` (gatehouse_common.text) was the one spelling
were stored stripped and lower-cased only: a Unicode domain in U-label form, a full-width or
``ß`` local part. Such an account could not log in as registered, since login looks up the
new spelling. ``normalize_stored_emails`` rewrites each to its one spelling, unless that
would make two identities share an address: then nothing is rewritten, and a person must
decide which account keeps it (``docs/auth.md``, "Stored emails").
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_common.logging import get_logger
from gatehouse_common.text import normalize_email

_log = get_logger(__name__)


class StoredEmailCollision(Exception):
    """Identities whose emails are one address in the one spelling: ids, per address."""

    def __init__(self, identity_ids: list[list[str]]) -> None:
        super().__init__(f"identities sharing one email address: {identity_ids}")
        self.identity_ids = identity_ids


async def normalize_stored_emails(identities: IdentityRepository) -> int:
    """Rewrite every stored email whose spelling changed; returns how many were rewritten.

    Raises ``StoredEmailCollision`` (and rewrites nothing) if two identities collapse to one
    address. Safe to run on several replicas at once: each rewrite is conditional on the email
    read, and the unique index refuses a duplicate made meanwhile.
    """
    changes: dict[str, list[tuple[str, str]]] = {}  # one spelling -> (id, stored email)
    async for identity_id, stored in identities.emails():
        try:
            spelling = normalize_email(stored)
        except ValueError:
            # Cannot log in under any spelling; left for a person, not worth refusing to start.
            _log.warning("stored_email_not_an_address", user_id=identity_id)
            continue
        if spelling != stored:
            changes.setdefault(spelling, []).append((identity_id, stored))

    collisions: list[list[str]] = []
    for spelling, changed in changes.items():
        holder = await identities.by_email(spelling)
        ids = sorted([identity_id for identity_id, _ in changed] + ([holder.id] if holder else []))
        if len(ids) > 1:
            collisions.append(ids)
    if collisions:
        for ids in collisions:
            # Ids only: an administrator finds the addresses from them.
            _log.error("stored_email_collision", user_ids=ids)
        raise StoredEmailCollision(collisions)

    now = datetime.now(UTC)
    for spelling, [(identity_id, stored)] in changes.items():
        try:
            await identities.replace_email(identity_id, stored, spelling, now)
        except DuplicateKeyError:
            # Registered in this spelling since the check above.
            _log.error("stored_email_collision", user_ids=[identity_id])
            raise StoredEmailCollision([[identity_id]]) from None
        _log.info("stored_email_normalized", user_id=identity_id)
    return len(changes)
