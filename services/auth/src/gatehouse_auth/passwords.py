"""Password hashing with Argon2id, off the event loop and bounded in concurrency."""

from __future__ import annotations

import asyncio
import secrets

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from gatehouse_auth.settings import IdentityStoreSettings


class PasswordHasher:
    """Hashes and verifies passwords; rehashes when the configured parameters change.

    Verifying for an unknown account checks the password against a throwaway hash made with
    the same parameters, so a login for an unknown email takes as long as one for a known
    email (no account discovery by timing).
    """

    def __init__(self, settings: IdentityStoreSettings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.argon2_time_cost,
                    memory_cost=settings.argon2_memory_cost_kib,
                    parallelism=settings.argon2_parallelism,
                ),
            )
        )
        self._slots = asyncio.Semaphore(settings.password_hashing_concurrency)
        self._decoy_hash = self._hash.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """(matches, new hash to store or None). ``stored_hash`` None means no such account."""
        async with self._slots:
            if stored_hash is None:
                await asyncio.to_thread(self._hash.verify, password, self._decoy_hash)
                return False, None
            try:
                return await asyncio.to_thread(self._hash.verify_and_update, password, stored_hash)
            except UnknownHashError:
                return False, None
