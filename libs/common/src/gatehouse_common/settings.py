"""Settings base shared by every service.

Each service declares one subclass with its own ``env_prefix`` (``AUTH_``, ``USERS_``,
``GATEWAY_``). Secrets are ``SecretStr`` fields without defaults, so a missing secret stops
the process at start-up with a message naming the environment variable.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AnyHttpUrl, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class GatehouseSettings(BaseSettings):
    """Base of every settings class: unknown variables are ignored, values are frozen, and the
    docstring under a field is its description. A class that is read on its own adds its
    ``env_prefix`` (``model_config = SettingsConfigDict(env_prefix="AUTH_")``)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class HttpServerSettings(GatehouseSettings):
    """Limits of a service's own HTTP server (``gatehouse_common.server``); see docs/security.md.

    The upper bounds are the contract's: a deployment may tighten a limit, never loosen it
    past them.
    """

    http_max_header_bytes: int = Field(default=65_536, ge=1024, le=65_536)
    """Request line plus headers, in bytes; more is answered 431."""
    http_max_header_count: int = Field(default=100, ge=10, le=100)
    """Request headers; more is answered 431."""
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    """Time a client has to send a request's headers, counted from the connection or from its first
    byte; then 408 (or a plain close if it sent nothing)."""
    http_keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    """An idle keep-alive connection is closed after it."""
    http_max_connections: int = Field(default=1000, ge=1)
    """Open connections per process; one more is answered 503 and closed."""
    http_graceful_shutdown_seconds: int = Field(default=20, ge=0)
    """On SIGTERM, how long in-flight requests may take."""


class ServiceSettings(HttpServerSettings):
    """Fields every service has. Subclasses set ``model_config`` with their ``env_prefix``."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    otlp_endpoint: AnyHttpUrl | None = None
    """OTLP/HTTP collector URL; tracing is off when unset."""
    event_loop_lag_warning_seconds: float = Field(default=0.1, gt=0)
    """An event-loop lag above this logs a warning (at most one per 10 s); every lag is in the
    event_loop_lag_seconds histogram."""


class TokenVerificationSettings(GatehouseSettings):
    """Fields of a service that verifies access tokens issued by auth."""

    jwt_issuer: str
    """Expected `iss` claim of access tokens."""
    jwt_audience: str
    """Expected `aud` claim of access tokens."""
    jwks_url: AnyHttpUrl
    """Where auth publishes its JWKS."""
    jwks_cache_ttl_seconds: float = Field(default=300.0, gt=0)
    jwks_min_refetch_interval_seconds: float = Field(default=10.0, ge=0)
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    verified_token_cache_size: int = Field(default=10_000, ge=0)


def list_from_env(value: Any) -> Any:
    """A JSON list or a comma-separated string (both are common in Compose files) as a list;
    for a field marked ``NoDecode``, whose value pydantic-settings then passes through as is."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip_networks(value: Any) -> Any:
    parsed = list_from_env(value)
    if isinstance(parsed, list | tuple):
        # A bare address means that one host; host bits in a CIDR are tolerated.
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in parsed)
    return parsed


IPNetworks = Annotated[tuple[IPNetwork, ...], NoDecode, BeforeValidator(_ip_networks)]
"""Addresses or CIDR blocks, from a JSON list or a comma-separated list (trusted proxies)."""


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class SettingsError(SystemExit):
    """Raised when the environment does not describe a valid configuration."""


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Read ``settings_class`` from the environment or stop with a readable message.

    The message names environment variables, not Python fields, and never echoes the
    offending value: it may be a secret.
    """
    try:
        return settings_class()
    except ValidationError as exc:
        prefix = str(settings_class.model_config.get("env_prefix", ""))
        lines = [f"invalid configuration for {settings_class.__name__}:"]
        for error in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in error["loc"])
            lines.append(f"  {prefix}{field.upper()}: {error['msg']}")
        message = "\n".join(lines)
        print(message, file=sys.stderr)  # logging may not be configured yet
        raise SettingsError(message) from None
