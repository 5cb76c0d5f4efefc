"""Refresh-token sessions. A login family is every refresh token descended from one login."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from gatehouse_auth.database import AuthDatabase, Document, insert_new


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    family_id: str
    user_id: str
    expires_at: datetime
    session_expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_document(cls, document: Document) -> RefreshRecord:
        return cls(
            family_id=str(document["family_id"]),
            user_id=str(document["user_id"]),
            expires_at=document["expires_at"],
            # A token stored before sessions had an absolute end ends its session with itself.
            session_expires_at=document.get("session_expires_at") or document["expires_at"],
            used_at=document.get("used_at"),
            revoked_at=document.get("revoked_at"),
        )


class RefreshTokenRepository:
    """Stores SHA-256 hashes of refresh tokens, never the tokens.

    Every token carries its login's absolute end (``session_expires_at``, set at the password
    login) and never expires after it, so the sliding refresh window cannot extend a login
    beyond its absolute lifetime.

    Spent and revoked states are timestamps, not booleans: they say when, and they compare
    the same on every MongoDB-protocol server.
    """

    def __init__(self, database: AuthDatabase) -> None:
        self._tokens: AsyncCollection[Document] = database.refresh_tokens
        self._families: AsyncCollection[Document] = database.login_families

    async def start_family(
        self,
        user_id: str,
        *,
        generation: int,
        now: datetime,
        expires_at: datetime,
        session_expires_at: datetime,
    ) -> str:
        """A new login of the user, under the identity's current login generation; its id is
        the ``sid`` of every access token issued for it."""
        return await insert_new(
            self._families,
            {
                "user_id": user_id,
                "generation": generation,
                "created_at": now,
                "expires_at": min(expires_at, session_expires_at),
                "session_expires_at": session_expires_at,
                "revoked_at": None,
            },
        )

    async def store(  # noqa: PLR0913 - the hash, then one keyword per stored field
        self,
        token_hash: str,
        *,
        family_id: str,
        user_id: str,
        now: datetime,
        expires_at: datetime,
        session_expires_at: datetime,
    ) -> None:
        expires_at = min(expires_at, session_expires_at)
        await self._tokens.insert_one(
            {
                "token_hash": token_hash,
                "family_id": family_id,
                "user_id": user_id,
                "created_at": now,
                "expires_at": expires_at,
                "session_expires_at": session_expires_at,
                "used_at": None,
                "revoked_at": None,
            }
        )
        # The family lives as long as its newest token, so reuse is detectable until then.
        await self._families.update_one(
            {"_id": family_id, "expires_at": {"$lt": expires_at}},
            {"$set": {"expires_at": expires_at}},
        )

    async def spend(self, token_hash: str, *, now: datetime) -> RefreshRecord | None:
        """Mark a live token spent and return it; None if it is not live.

        One conditional update: of any number of concurrent calls with the same hash,
        exactly one finds the token unspent.
        """
        document = await self._tokens.find_one_and_update(
            {
                "token_hash": str(token_hash),
                "used_at": None,
                "revoked_at": None,
                "expires_at": {"$gt": now},
            },
            {"$set": {"used_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return RefreshRecord.from_document(document) if document else None

    async def find(self, token_hash: str) -> RefreshRecord | None:
        document = await self._tokens.find_one({"token_hash": str(token_hash)})
        return RefreshRecord.from_document(document) if document else None

    async def family_is_live(self, family_id: str, *, generation: int) -> bool:
        """Not revoked, and not ended by a generation bump (``generation``: the identity's)."""
        family = await self._families.find_one({"_id": str(family_id)})
        return (
            family is not None
            and family.get("revoked_at") is None
            and int(family.get("generation", 0)) >= generation
        )
