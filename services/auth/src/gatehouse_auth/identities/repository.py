from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gatehouse_auth.database import Document
from gatehouse_auth.identities.errors import EmailTaken

ADMIN_ROLE = "admin"


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    email: str
    password_hash: str
    roles: frozenset[str]
    created_at: datetime

    @classmethod
    def from_document(cls, document: Document) -> Identity:
        return cls(
            id=str(document["_id"]),
            email=str(document["email"]),
            password_hash=str(document["password_hash"]),
            roles=frozenset(str(role) for role in document.get("roles", [])),
            created_at=document["created_at"],
        )


class IdentityRepository:
    """Every query takes plain Python strings built by this class, never client documents.

    Emails are stored and looked up in their one spelling, ``normalize_email`` of
    gatehouse_common.text: callers pass that spelling (``EmailAddress`` in request models and
    the admin CLI, the password grant's own call), never what a client typed.
    """

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def insert(  # noqa: PLR0913 - one keyword per stored field
        self,
        *,
        identity_id: str,
        email: str,
        password_hash: str,
        display_name: str | None,
        roles: list[str],
        now: datetime,
    ) -> Identity:
        document: Document = {
            "_id": identity_id,
            "email": email,
            "password_hash": password_hash,
            "display_name": display_name,
            "roles": roles,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._collection.insert_one(document)
        except DuplicateKeyError:
            raise EmailTaken from None
        return Identity.from_document(document)

    async def by_email(self, email: str) -> Identity | None:
        document = await self._collection.find_one({"email": str(email)})
        return Identity.from_document(document) if document else None

    async def emails(self) -> AsyncIterator[tuple[str, str]]:
        """(id, stored email) of every identity, read in batches."""
        async for document in self._collection.find({}, {"email": 1}):
            yield str(document["_id"]), str(document["email"])

    async def replace_email(
        self, identity_id: str, old_email: str, new_email: str, now: datetime
    ) -> None:
        """Conditional on the old email; ``DuplicateKeyError`` if ``new_email`` is taken."""
        await self._collection.update_one(
            {"_id": str(identity_id), "email": old_email},
            {"$set": {"email": new_email, "updated_at": now}},
        )

    async def by_id(self, identity_id: str) -> Identity | None:
        document = await self._collection.find_one({"_id": str(identity_id)})
        return Identity.from_document(document) if document else None

    async def replace_password_hash(
        self, identity_id: str, old_hash: str, new_hash: str, now: datetime
    ) -> None:
        # Conditional on the old hash: a password change made meanwhile is not overwritten.
        await self._collection.update_one(
            {"_id": str(identity_id), "password_hash": old_hash},
            {"$set": {"password_hash": new_hash, "updated_at": now}},
        )

    async def grant_role(self, email: str, role: str, now: datetime) -> Identity | None:
        document = await self._collection.find_one_and_update(
            {"email": str(email)},
            {"$addToSet": {"roles": role}, "$set": {"updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return Identity.from_document(document) if document else None
