"""Auth's settings for the cross-service tests that run auth in process (tests/forwarding,
tests/redis_acl): a fresh signing key, a database of its own, the cheapest password hashing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from gatehouse_auth.settings import AuthSettings
from gatehouse_auth.signing_keys import SigningKeySet
from gatehouse_testing.issuer import AUDIENCE, ISSUER


def auth_settings(keys_dir: Path, mongo_url: str, **fields: Any) -> AuthSettings:
    """Settings of an auth whose signing key is in ``keys_dir``, on a new MongoDB database of
    the server at ``mongo_url``; ``fields`` sets the rest (Redis URLs, throttles)."""
    keys = keys_dir / "signing-keys.json"
    SigningKeySet.create().save(keys)
    return AuthSettings(
        environment="test",
        mongo_url=mongo_url,
        mongo_database=f"test_{uuid.uuid4().hex[:12]}",
        signing_keys_file=keys,
        issuer=ISSUER,
        audience=AUDIENCE,
        argon2_time_cost=1,
        argon2_memory_cost_kib=8192,
        argon2_parallelism=1,
        **fields,
    )
