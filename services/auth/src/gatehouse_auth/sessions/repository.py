"""A user's logins: the ``login_families`` documents and their refresh tokens.

A login is live while its family is not revoked, it was started under the identity's current
login generation (see ``Identity.login_generation``), and it has a live refresh token. Revoking
one login records its ``logins.revoked`` event in the family's own update (outbox.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.collection import AsyncCollection

from gatehouse_auth.database import AuthDatabase, Document
from gatehouse_auth.outbox import Notify, new_event, record
from gatehouse_common.events import LoginsRevoked, RevocationReason


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    created_at: datetime
    last_used_at: datetime


class SessionRepository:
    def __init__(self, database: AuthDatabase, *, notify: Notify | None = None) -> None:
        self._families: AsyncCollection[Document] = database.login_families
        self._tokens: AsyncCollection[Document] = database.refresh_tokens
        self._notify = notify

    async def active(self, user_id: str, *, generation: int, now: datetime) -> list[Session]:
        """The user's live logins, newest first.

        ``last_used_at`` is when the login last got tokens: the creation of its one unspent
        refresh token (every refresh spends one and inserts the next), so no refresh has to
        write the family as well.
        """
        last_used: dict[str, datetime] = {}
        live_tokens = self._tokens.find(
            {
                "user_id": str(user_id),
                "used_at": None,
                "revoked_at": None,
                "expires_at": {"$gt": now},
            },
            {"family_id": 1, "created_at": 1},
        )
        async for token in live_tokens:
            family_id = str(token["family_id"])
            created_at: datetime = token["created_at"]
            if family_id not in last_used or last_used[family_id] < created_at:
                last_used[family_id] = created_at
        if not last_used:
            return []
        families = self._families.find(
            {
                "_id": {"$in": list(last_used)},
                "user_id": str(user_id),
                "revoked_at": None,
                "generation": {"$gte": generation},
            },
            {"created_at": 1},
        )
        sessions = [
            Session(
                id=str(family["_id"]),
                created_at=family["created_at"],
                last_used_at=last_used[str(family["_id"])],
            )
            async for family in families
        ]
        return sorted(sessions, key=lambda session: session.created_at, reverse=True)

    async def revoke(
        self, family_id: str, *, user_id: str, reason: RevocationReason, now: datetime
    ) -> bool:
        """Revoke one live login of ``user_id`` and record its event, in one write.

        False if the user has no such live login. The family mark comes first: a refresh
        racing with this call either stores its new token before the mark (and the token
        update below catches it) or sees the mark when it checks the family after storing
        (and refuses).
        """
        event = new_event(
            LoginsRevoked(
                user_id=uuid.UUID(str(user_id)), session_ids=(str(family_id),), reason=reason
            )
        )
        revoked = await self._families.find_one_and_update(
            {"_id": str(family_id), "user_id": str(user_id), "revoked_at": None},
            record(event, {"revoked_at": now}),
            projection={"_id": 1},
        )
        if revoked is None:
            return False
        if self._notify is not None:
            self._notify()
        await self._revoke_tokens({"family_id": str(family_id)}, now=now)
        return True

    async def unrevoked_ids(
        self, user_id: str, *, below_generation: int | None = None
    ) -> list[str]:
        """The user's logins not marked revoked (started under a generation older than
        ``below_generation``, when given)."""
        query: Document = {"user_id": str(user_id), "revoked_at": None}
        if below_generation is not None:
            query["generation"] = {"$lt": below_generation}
        families = self._families.find(query, {"_id": 1})
        return [str(family["_id"]) async for family in families]

    async def revoke_older(
        self,
        user_id: str,
        *,
        below_generation: int,
        reason: RevocationReason,
        now: datetime,
        announced: frozenset[str],
    ) -> None:
        """Mark revoked the logins a generation bump has ended, so that every reader sees them
        revoked without looking at the identity.

        The bump recorded the event naming ``announced``. A login started while the bump was
        being made (or beyond the event's limit of names) is not in it: it gets its own.
        """
        stale = await self.unrevoked_ids(user_id, below_generation=below_generation)
        unannounced = [family_id for family_id in stale if family_id not in announced]
        for family_id in unannounced:
            await self.revoke(family_id, user_id=user_id, reason=reason, now=now)
        done = [family_id for family_id in stale if family_id not in unannounced]
        if done:
            await self._families.update_many(
                {"_id": {"$in": done}, "revoked_at": None}, {"$set": {"revoked_at": now}}
            )
            await self._revoke_tokens({"family_id": {"$in": done}}, now=now)

    async def delete_all(self, user_id: str) -> None:
        await self._families.delete_many({"user_id": str(user_id)})
        await self._tokens.delete_many({"user_id": str(user_id)})

    async def _revoke_tokens(self, query: Document, *, now: datetime) -> None:
        await self._tokens.update_many({**query, "revoked_at": None}, {"$set": {"revoked_at": now}})
