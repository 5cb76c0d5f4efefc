"""Settings of a service that refuses revoked access tokens (add to the service's settings)."""

from __future__ import annotations

from pydantic import Field

from gatehouse_common.settings import GatehouseSettings


class RevocationSettings(GatehouseSettings):
    access_token_max_lifetime_seconds: int = Field(default=900, ge=60, le=86_400)
    """The longest lifetime auth gives an access token (at least AUTH_ACCESS_TOKEN_TTL_SECONDS):
    how long a revocation must be remembered."""
    revocation_replay_wait_seconds: float = Field(default=5.0, ge=0)
    """How long start-up waits for the revocation replay before serving anyway."""
