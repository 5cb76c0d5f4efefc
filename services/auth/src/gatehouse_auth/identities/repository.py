from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gatehouse_auth.database import Document
from gatehouse_auth.identities.errors import EmailTaken
from gatehouse_auth.outbox import Notify, outbox_document, record
from gatehouse_common.events import Event

ADMIN_ROLE = "admin"


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    email: str
    password_hash: str
    roles: frozenset[str]
    created_at: datetime
    email_verified_at: datetime | None = None
    # Bumped by every "end all my logins" (sign-out everywhere, password change or reset): a
    # login started under an older generation is revoked, whatever its own document says.
    login_generation: int = 0

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @classmethod
    def from_document(cls, document: Document) -> Identity:
        return cls(
            id=str(document["_id"]),
            email=str(document["email"]),
            password_hash=str(document["password_hash"]),
            roles=frozenset(str(role) for role in document.get("roles", [])),
            created_at=document["created_at"],
            email_verified_at=document.get("email_verified_at"),
            login_generation=int(document.get("login_generation", 0)),
        )


class IdentityRepository:
    """Every query takes plain Python strings built by this class, never client documents.

    Emails are stored and looked up in their one spelling, ``normalize_email`` of
    gatehouse_common.text: callers pass that spelling (``EmailAddress`` in request models and
    the admin CLI, the password grant's own call), never what a client typed.
    """

    def __init__(
        self, collection: AsyncCollection[Document], *, notify: Notify | None = None
    ) -> None:
        self._collection = collection
        self._notify = notify

    async def insert(  # noqa: PLR0913 - one keyword per stored field
        self,
        *,
        identity_id: str,
        email: str,
        password_hash: str,
        display_name: str | None,
        roles: list[str],
        now: datetime,
        event: Event[Any],
    ) -> Identity:
        """Insert the identity and its ``account.registered`` event, in one write."""
        document: Document = {
            "_id": identity_id,
            "email": email,
            "password_hash": password_hash,
            "display_name": display_name,
            "roles": roles,
            # A timestamp, not a boolean: it says when, and compares the same on every server.
            "email_verified_at": None,
            "created_at": now,
            "updated_at": now,
            "login_generation": 0,
            **outbox_document(event),
        }
        try:
            await self._collection.insert_one(document)
        except DuplicateKeyError:
            raise EmailTaken from None
        self._recorded()
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

    async def mark_email_verified(self, identity_id: str, email: str, now: datetime) -> bool:
        """Verify ``email`` for the identity; False if the identity (with that email) is gone."""
        result = await self._collection.update_one(
            {"_id": str(identity_id), "email": str(email)},
            {"$set": {"email_verified_at": now, "updated_at": now}},
        )
        return result.matched_count > 0

    async def end_logins(
        self,
        identity_id: str,
        event: Event[Any] | None,
        *,
        now: datetime,
        password_hash: str | None = None,
    ) -> Identity | None:
        """Revoke every login so far by bumping the login generation, optionally set a new
        password, and record ``event`` (None: there was no login to announce), in one write.
        None if there is no such identity."""
        changes: Document = {"updated_at": now}
        if password_hash is not None:
            changes["password_hash"] = password_hash
        update = record(event, changes) if event is not None else {"$set": changes, "$inc": {}}
        update["$inc"]["login_generation"] = 1
        document = await self._collection.find_one_and_update(
            {"_id": str(identity_id)}, update, return_document=ReturnDocument.AFTER
        )
        if document is None:
            return None
        if event is not None:
            self._recorded()
        return Identity.from_document(document)

    async def delete(self, identity_id: str) -> None:
        await self._collection.delete_one({"_id": str(identity_id)})

    async def grant_role(self, email: str, role: str, now: datetime) -> Identity | None:
        document = await self._collection.find_one_and_update(
            {"email": str(email)},
            {"$addToSet": {"roles": role}, "$set": {"updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return Identity.from_document(document) if document else None

    def _recorded(self) -> None:
        if self._notify is not None:
            self._notify()
