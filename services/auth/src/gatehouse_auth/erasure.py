"""Erasing an account when users says so: the handler of ``account.erased`` (group ``auth``).

users erases the profile and publishes ``account.erased``; auth removes the identity, every
login and refresh token and every emailed token, so the email can register again as a new
user. Every revocation set refuses the user's access tokens on ``account.erased`` itself;
auth also announces the logins it ended, as for any other revocation, with ``logins.revoked``
(``reason: "erasure"``), so that ``events:auth`` records every end of a login.

Idempotent in effect (the consumer may run it again after a crash): the erasure record is
inserted once per user, and deleting what is gone already changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gatehouse_auth.account_email.repository import EmailTokenRepository
from gatehouse_auth.database import AuthDatabase
from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_auth.outbox import Notify, new_event, outbox_document
from gatehouse_auth.sessions.repository import SessionRepository
from gatehouse_common.events import AccountErased, Event, LoginsRevoked
from gatehouse_common.logging import get_logger

_log = get_logger(__name__)


class AccountEraser:
    def __init__(
        self,
        database: AuthDatabase,
        identities: IdentityRepository,
        sessions: SessionRepository,
        email_tokens: EmailTokenRepository,
        *,
        notify: Notify | None = None,
    ) -> None:
        self._erasures = database.erasures
        self._identities = identities
        self._sessions = sessions
        self._email_tokens = email_tokens
        self._notify = notify

    async def handle(self, event: Event[AccountErased]) -> None:
        user_id: uuid.UUID = event.payload.user_id
        now = datetime.now(UTC)
        # First the record of the erasure and its event (the outbox, as the identity is about
        # to go); a retry finds it and adds nothing.
        revoked = new_event(
            LoginsRevoked(user_id=user_id, issued_at_or_before=now, reason="erasure")
        )
        result = await self._erasures.update_one(
            {"_id": str(user_id)},
            {"$setOnInsert": {"erased_at": now, **outbox_document(revoked)}},
            upsert=True,
        )
        if result.upserted_id is not None and self._notify is not None:
            self._notify()
        # The identity first: from then on the password grant fails and no refresh succeeds.
        await self._identities.delete(str(user_id))
        await self._sessions.delete_all(str(user_id))
        await self._email_tokens.delete_all(str(user_id))
        _log.info("account_erased", user_id=str(user_id), event_id=str(event.id))
