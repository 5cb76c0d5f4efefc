"""Opaque secret tokens (refresh tokens, emailed tokens): random, and stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32  # 256 bits, as the contract requires


def new_opaque_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_opaque_token(token: str) -> str:
    """SHA-256 suffices: the token is 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()
