"""Gateway configuration, read from ``GATEWAY_*`` environment variables."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from gatehouse_common.events import EventSettings
from gatehouse_common.revocation import RevocationSettings
from gatehouse_common.settings import (
    IPNetworks,
    ServiceSettings,
    TokenVerificationSettings,
    list_from_env,
)


class GatewaySettings(
    ServiceSettings, TokenVerificationSettings, EventSettings, RevocationSettings
):
    """The gateway reads the event channel only to feed its revocation set: of the event
    settings, it uses the Redis URL, its timeout and the blocking time."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    auth_url: AnyHttpUrl
    """Base URL of auth, e.g. http://auth:8001."""
    users_url: AnyHttpUrl
    """Base URL of users, e.g. http://users:8002."""

    metrics_host: str = "0.0.0.0"  # noqa: S104 - the scraper reaches the container from outside
    """Address the separate metrics server binds to."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Port of the metrics server; 0 turns it off."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed by CORS (JSON list or comma-separated); empty: no CORS."""
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest time a request body may take to arrive; then 408."""

    upstream_transport: Literal["aiohttp", "httpx2"] = "aiohttp"
    """HTTP client of the upstreams: 'aiohttp' (aiohttp itself) or 'httpx2' (httpx2 with its own
    transport); see docs/decisions/0018-raw-aiohttp-on-the-proxy-path.md."""
    upstream_connect_timeout_seconds: float = Field(default=1.0, gt=0)
    upstream_read_timeout_seconds: float = Field(default=30.0, gt=0)
    upstream_write_timeout_seconds: float = Field(default=30.0, gt=0)
    upstream_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    """Longest wait for a free upstream connection; then 503 (not a failure of the upstream)."""
    upstream_max_connections: int = Field(default=100, gt=0)
    """Per upstream."""
    # Below the upstreams' own idle timeout (HTTP_KEEP_ALIVE_SECONDS, 5 s): a connection kept
    # longer than the server keeps it may be reused just as the server closes it, and the
    # request on it fails as a broken connection (502). The chaos run saw it about once every
    # ten seconds with 30 s here.
    upstream_keepalive_seconds: float = Field(default=4.0, gt=0)
    """How long an idle upstream connection is kept open; keep it below the upstreams'
    ``HTTP_KEEP_ALIVE_SECONDS``."""

    circuit_failure_threshold: int = Field(default=5, gt=0)
    """Consecutive connect failures that open an upstream's circuit."""
    # Short: a trial against a restarting upstream is a refused connect, which costs nothing,
    # and each cool-down is time the upstream may already be back (the chaos run's restarts).
    circuit_open_seconds: float = Field(default=0.25, gt=0)
    """Cool-down of an open circuit: 503 without trying, then one trial request."""
    # A restart refuses connections for the old process's drain and the new one's start-up
    # (2-6 s in the chaos run's Compose stack under load); nothing was sent, so a request may
    # wait that out.
    upstream_restart_grace_seconds: float = Field(default=3.0, ge=0)
    """How long a request waits for an upstream that refuses connections (or whose circuit
    is open because it did) before its 502 or 503; 0: answered at once."""
    upstream_restart_max_seconds: float = Field(default=10.0, ge=0)
    """An upstream refusing connections for longer is down, not restarting: its requests are
    answered at once instead of waiting for the grace."""
    openapi_fetch_timeout_seconds: float = Field(default=2.0, gt=0)

    trusted_proxies: IPNetworks = ()
    """Addresses or networks of proxies in front of the gateway whose X-Forwarded-* headers are
    extended rather than replaced (JSON list or comma-separated)."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        return list_from_env(value)

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_origin(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("'*' is not allowed; list the origins")
        return [origin.rstrip("/") for origin in origins]
