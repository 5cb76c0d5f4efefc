"""One-time email tokens: SHA-256 hashes only, single use, with their email in the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from gatehouse_auth.database import AuthDatabase, Document, insert_new
from gatehouse_auth.mailer.outbox import EmailPurpose, outbox_fields


@dataclass(frozen=True, slots=True)
class EmailTokenRecord:
    """Whom a spent token was for: the user, and the address the email went to."""

    user_id: str
    email: str

    @classmethod
    def from_document(cls, document: Document) -> EmailTokenRecord:
        return cls(user_id=str(document["user_id"]), email=str(document["email"]))


class EmailTokenRepository:
    def __init__(self, database: AuthDatabase) -> None:
        self._tokens: AsyncCollection[Document] = database.email_tokens

    async def issue(  # noqa: PLR0913 - one keyword per stored field
        self,
        purpose: EmailPurpose,
        *,
        token: str,
        token_hash: str,
        user_id: str,
        email: str,
        now: datetime,
        expires_at: datetime,
    ) -> str:
        """Store the token's hash and queue its email, in one document written at once."""
        return await insert_new(
            self._tokens,
            {
                "purpose": purpose,
                "token_hash": token_hash,
                "user_id": user_id,
                "email": email,
                "created_at": now,
                "expires_at": expires_at,
                "used_at": None,
                **outbox_fields(token, now=now),
            },
        )

    def _live(self, purpose: EmailPurpose, token_hash: str, now: datetime) -> Document:
        return {
            "token_hash": str(token_hash),
            "purpose": purpose,
            "used_at": None,
            "expires_at": {"$gt": now},
        }

    async def find_live(
        self, purpose: EmailPurpose, token_hash: str, *, now: datetime
    ) -> EmailTokenRecord | None:
        document = await self._tokens.find_one(self._live(purpose, token_hash, now))
        return EmailTokenRecord.from_document(document) if document else None

    async def use(
        self, purpose: EmailPurpose, token_hash: str, *, now: datetime
    ) -> EmailTokenRecord | None:
        """Spend a live token and return it; None if it is unknown, expired or used.

        One conditional update: of any number of concurrent calls, exactly one succeeds.
        """
        document = await self._tokens.find_one_and_update(
            self._live(purpose, token_hash, now),
            {"$set": {"used_at": now}, "$unset": {"pending_token": ""}},
            return_document=ReturnDocument.AFTER,
        )
        return EmailTokenRecord.from_document(document) if document else None

    async def use_all(self, purpose: EmailPurpose, user_id: str, *, now: datetime) -> None:
        """Spend every live token of the user for ``purpose`` (unsent emails are dropped too)."""
        await self._tokens.update_many(
            {"user_id": str(user_id), "purpose": purpose, "used_at": None},
            {"$set": {"used_at": now}, "$unset": {"pending_token": ""}},
        )

    async def delete_all(self, user_id: str) -> None:
        """Forget every token (and unsent email) of an erased user."""
        await self._tokens.delete_many({"user_id": str(user_id)})
