"""The outbox: emails waiting to be sent, kept in MongoDB until the SMTP server accepts them.

An email is a set of fields on the document of the one-time token it carries (collection
``email_tokens``), written by the same ``insert_one`` as the token's hash: a request that has
answered has recorded its email, and no email exists without its token. The plain token stays
in ``pending_token`` only until the SMTP server has accepted the email (or the token is used
or expires); the token record itself keeps only the hash.

Delivery fields: ``send_after`` (next attempt is due), ``lease_until``/``lease_owner`` (which
worker is sending it; a crashed worker's lease runs out and another worker takes it over),
``send_attempts``, ``sent_at`` and ``failed_at`` (refused for good).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from gatehouse_auth.database import Document

EmailPurpose = Literal["verify_email", "reset_password"]


def outbox_fields(token: str, *, now: datetime) -> Document:
    """The fields that put a token's document in the outbox, due at once."""
    return {
        "pending_token": token,
        "send_after": now,
        "lease_until": now,
        "lease_owner": None,
        "send_attempts": 0,
        "sent_at": None,
        "failed_at": None,
    }


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    id: str
    purpose: EmailPurpose
    recipient: str
    token: str
    created_at: datetime
    expires_at: datetime
    attempts: int

    @classmethod
    def from_document(cls, document: Document) -> OutgoingEmail:
        return cls(
            id=str(document["_id"]),
            purpose=document["purpose"],
            recipient=str(document["email"]),
            token=str(document["pending_token"]),
            created_at=document["created_at"],
            expires_at=document["expires_at"],
            attempts=int(document["send_attempts"]),
        )


class EmailOutbox:
    """Claims, completes and reschedules outbox entries; every change is one conditional update."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def claim(
        self, *, owner: str, now: datetime, lease_until: datetime
    ) -> OutgoingEmail | None:
        """Lease the email that has waited longest and is due; None if there is none.

        Of any number of workers claiming at once, one gets each email. An email whose token
        was used or has expired is not sent any more.
        """
        document = await self._collection.find_one_and_update(
            {
                "sent_at": None,
                "failed_at": None,
                "used_at": None,
                "send_after": {"$lte": now},
                "lease_until": {"$lte": now},
                "expires_at": {"$gt": now},
            },
            {
                "$set": {"lease_until": lease_until, "lease_owner": owner},
                "$inc": {"send_attempts": 1},
            },
            sort=[("send_after", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return OutgoingEmail.from_document(document) if document else None

    async def mark_sent(self, email_id: str, *, now: datetime) -> None:
        """The SMTP server accepted it: never send it again, and forget the plain token."""
        await self._collection.update_one(
            {"_id": str(email_id)},
            {"$set": {"sent_at": now, "lease_owner": None}, "$unset": {"pending_token": ""}},
        )

    async def retry_later(
        self, email_id: str, *, owner: str, now: datetime, send_after: datetime
    ) -> None:
        """Give the lease back and schedule the next attempt."""
        await self._collection.update_one(
            {"_id": str(email_id), "lease_owner": owner},
            {"$set": {"send_after": send_after, "lease_until": now, "lease_owner": None}},
        )

    async def mark_failed(self, email_id: str, *, now: datetime) -> None:
        """The SMTP server refused it for good (a 5xx answer): stop trying."""
        await self._collection.update_one(
            {"_id": str(email_id)},
            {"$set": {"failed_at": now, "lease_owner": None}, "$unset": {"pending_token": ""}},
        )
