"""Settings of a service that refuses revoked access tokens (add to the service's settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RevocationSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    access_token_max_lifetime_seconds: int = Field(
        default=900,
        ge=60,
        le=86_400,
        description="The longest lifetime auth gives an access token (at least "
        "AUTH_ACCESS_TOKEN_TTL_SECONDS): how long a revocation must be remembered.",
    )
    revocation_replay_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long start-up waits for the revocation replay before serving anyway.",
    )
