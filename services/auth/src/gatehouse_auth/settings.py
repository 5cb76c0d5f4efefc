"""Configuration of the auth service, from ``AUTH_*`` environment variables only."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gatehouse_common.settings import ServiceSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class IdentityStoreSettings(BaseSettings):
    """What reaching the identity store and hashing passwords needs (also used by the admin CLI)."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    mongo_url: SecretStr = Field(description="MongoDB connection URL; may carry credentials.")
    mongo_database: str = Field(default="gatehouse_auth", min_length=1)
    mongo_timeout_ms: int = Field(
        default=2000,
        ge=100,
        le=30_000,
        description="Server selection and connect timeout: a MongoDB outage answers 503 "
        "within this time instead of hanging.",
    )
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_cost_kib: int = Field(default=65536, ge=1024, le=1_048_576)
    argon2_parallelism: int = Field(default=4, ge=1, le=16)
    password_hashing_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Argon2 runs at most this many at once, bounding memory (memory cost each).",
    )
    password_hashing_queue_limit: int = Field(
        default=16,
        ge=0,
        le=1024,
        description="Hashes that may wait for a free slot; one more is refused at once (503 "
        "with Retry-After), so a flood cannot make other requests wait without bound.",
    )


class AuthSettings(ServiceSettings, IdentityStoreSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    redis_url: SecretStr = Field(description="Redis URL for login throttling.")
    redis_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    redis_key_prefix: str = Field(default="gatehouse:auth:")
    signing_keys_file: Path = Field(description="Private JWK set file (see docs/auth.md).")
    issuer: str = Field(min_length=1, description="`iss` of every access token.")
    audience: str = Field(min_length=1, description="`aud` of every access token.")
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(
        default=1_209_600,
        ge=300,
        le=31_536_000,
        description="Sliding window: each refresh token lives this long from its issue.",
    )
    session_absolute_lifetime_seconds: int = Field(
        default=2_592_000,
        ge=1,
        le=31_536_000,
        description="A login ends this long after the password was checked, however often it "
        "was refreshed (30 days).",
    )
    login_max_failures_per_email: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    registration_max_per_address: int = Field(
        default=120,
        ge=1,
        description="Registrations per client address per registration window; seeding "
        "scripts and test suites need the default.",
    )
    registration_window_seconds: int = Field(default=60, ge=1)
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(),
        description="Peers whose X-Forwarded-For is believed: a JSON list or a comma-separated "
        "list of addresses or CIDR blocks.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            value = (
                json.loads(text)
                if text.startswith("[")
                else [part.strip() for part in text.split(",") if part.strip()]
            )
        if isinstance(value, list | tuple):
            # A bare address means that one host; host bits in a CIDR are tolerated.
            return tuple(ipaddress.ip_network(str(item), strict=False) for item in value)
        return value
