"""MongoDB: the client, the collections auth owns, and their indexes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure

from gatehouse_auth.settings import IdentityStoreSettings
from gatehouse_common.logging import get_logger

Document = dict[str, Any]

_log = get_logger(__name__)

# An erasure record only carries its event to the stream; a week outlasts any relay outage.
ERASURE_RECORD_SECONDS = 7 * 24 * 3600


async def insert_new(collection: AsyncCollection[Document], fields: Document) -> str:
    """Insert ``fields`` as a new document under a random id (a UUID string); return the id."""
    document_id = str(uuid.uuid4())
    await collection.insert_one({"_id": document_id, **fields})
    return document_id


def is_outage(error: Exception) -> bool:
    """True when MongoDB could not be reached: ``ConnectionFailure`` covers AutoReconnect,
    NetworkTimeout and ServerSelectionTimeoutError. Opens the requests' ``AvailabilityGate``."""
    return isinstance(error, ConnectionFailure)


def mongo_client(settings: IdentityStoreSettings) -> AsyncMongoClient[Document]:
    timeout = settings.mongo_timeout_ms
    # Short timeouts everywhere: an outage must become a quick 503, never a hung request.
    return AsyncMongoClient(
        settings.mongo_url.get_secret_value(),
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongo_server_selection_timeout_ms,
        connectTimeoutMS=timeout,
        socketTimeoutMS=timeout * 5,
        appname="gatehouse-auth",
    )


class AuthDatabase:
    """The auth collections. Indexes are created on first use and again after an outage."""

    def __init__(self, client: AsyncMongoClient[Document], name: str) -> None:
        self.client = client
        database = client[name]
        self.identities: AsyncCollection[Document] = database["identities"]
        self.login_families: AsyncCollection[Document] = database["login_families"]
        self.refresh_tokens: AsyncCollection[Document] = database["refresh_tokens"]
        # One document per emailed one-time token: the token's hash and its delivery (outbox).
        self.email_tokens: AsyncCollection[Document] = database["email_tokens"]
        # One document per erased account until the erasure's event is published (outbox.py).
        self.erasures: AsyncCollection[Document] = database["erasures"]
        self._indexed = False
        self._lock = asyncio.Lock()

    async def ensure_indexes(self) -> None:
        """Create every index once per process (creating an existing index is a no-op)."""
        async with self._lock:
            if self._indexed:
                return
            await self.identities.create_index(
                [("email", ASCENDING)], unique=True, name="email_unique"
            )
            await self.refresh_tokens.create_index(
                [("token_hash", ASCENDING)], unique=True, name="token_hash_unique"
            )
            await self.refresh_tokens.create_index([("family_id", ASCENDING)], name="family")
            await self.refresh_tokens.create_index([("user_id", ASCENDING)], name="user")
            # Clean-up only: the code checks expiry itself, as MongoDB deletes late.
            await self.refresh_tokens.create_index(
                [("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"
            )
            await self.login_families.create_index([("user_id", ASCENDING)], name="user")
            await self.login_families.create_index(
                [("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"
            )
            await self.email_tokens.create_index(
                [("token_hash", ASCENDING)], unique=True, name="token_hash_unique"
            )
            await self.email_tokens.create_index(
                [("user_id", ASCENDING), ("purpose", ASCENDING)], name="user_purpose"
            )
            # The outbox query: unsent emails whose next attempt is due.
            await self.email_tokens.create_index(
                [("sent_at", ASCENDING), ("send_after", ASCENDING)], name="outbox"
            )
            await self.email_tokens.create_index(
                [("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"
            )
            # The relay's query (outbox.py): documents holding unpublished events.
            for collection in (self.identities, self.login_families, self.erasures):
                await collection.create_index([("outbox_pending", ASCENDING)], name="outbox")
            await self.erasures.create_index(
                [("erased_at", ASCENDING)], expireAfterSeconds=ERASURE_RECORD_SECONDS, name="ttl"
            )
            self._indexed = True
            _log.info("mongo_indexes_ready")

    async def ping(self) -> None:
        await self.client.admin.command("ping")
        await self.ensure_indexes()
