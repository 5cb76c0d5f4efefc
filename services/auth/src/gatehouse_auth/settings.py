"""Configuration of the auth service, from ``AUTH_*`` environment variables only."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import AnyHttpUrl, EmailStr, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from gatehouse_common.events import EventSettings
from gatehouse_common.revocation import RevocationSettings
from gatehouse_common.settings import GatehouseSettings, IPNetworks, ServiceSettings


class IdentityStoreSettings(GatehouseSettings):
    """What reaching the identity store and hashing passwords needs (also used by the admin CLI)."""

    model_config = SettingsConfigDict(env_prefix="AUTH_")

    mongo_url: SecretStr
    """MongoDB connection URL; may carry credentials."""
    mongo_database: str = Field(default="gatehouse_auth", min_length=1)
    mongo_timeout_ms: int = Field(default=2000, ge=100, le=30_000)
    """Connect timeout; five times it is the socket timeout, the longest a frozen MongoDB holds a
    request in flight before its 503."""
    mongo_server_selection_timeout_ms: int = Field(default=500, ge=100, le=30_000)
    """How long an operation waits for PyMongo to find a server when it knows none: what a
    request in flight when MongoDB went away waits for its 503 (which opens the gate). Shorter
    than the connect timeout: a server that refused or dropped connections a moment ago is rarely
    back within seconds, and a healthy one is found again in one round trip."""
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_cost_kib: int = Field(default=65536, ge=1024, le=1_048_576)
    argon2_parallelism: int = Field(default=4, ge=1, le=16)
    password_hashing_concurrency: int = Field(default=4, ge=1, le=64)
    """Argon2 runs at most this many at once, bounding memory (memory cost each)."""
    password_hashing_queue_limit: int = Field(default=16, ge=0, le=1024)
    """Hashes that may wait for a free slot; one more is refused at once (503 with Retry-After), so
    a flood cannot make other requests wait without bound."""
    password_hashing_queue_timeout_seconds: float = Field(default=3.0, gt=0)
    """Longest wait for a slot; then 503 with Retry-After, as for a full queue. The queue's
    length bounds the wait only while hashes take their usual time: on a machine short of CPU
    each takes seconds, and a login at the back of a full queue outlived its client's timeout
    (the chaos run's overloaded phases)."""


class AuthSettings(ServiceSettings, IdentityStoreSettings, EventSettings, RevocationSettings):
    """``AUTH_EVENTS_REDIS_URL`` (required, secret) and the other ``AUTH_EVENTS_*`` and
    revocation settings come from ``EventSettings`` and ``RevocationSettings``
    (docs/events.md)."""

    model_config = SettingsConfigDict(env_prefix="AUTH_")

    mongo_retry_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """After MongoDB failed to answer, how often the gate's probe tries it while requests that
    need it get 503 at once."""
    redis_url: SecretStr
    """Redis URL for login throttling."""
    # A second: a frozen Redis opens the throttles' gate within the first second of a fault.
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    redis_retry_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """After Redis failed to answer, how often the throttles' gate probes it while logins get
    503 at once (registrations go on unthrottled)."""
    # As users' PostgreSQL gate (USERS_DB_STALL_SECONDS): suspicion after 0.25 s, a verdict
    # within 0.5 s more, so a frozen Redis refuses logins at once before its first second ends.
    redis_stall_seconds: float = Field(default=0.25, gt=0)
    """A login waiting on Redis this long has the throttles' gate PING it
    (``redis_stall_probe_seconds``); no answer opens the gate."""
    redis_stall_probe_seconds: float = Field(default=0.5, gt=0)
    """The bound of that PING: long enough for a healthy Redis on a busy machine."""
    redis_key_prefix: str = "gatehouse:auth:"
    signing_keys_file: Path
    """Private JWK set file (see docs/auth.md)."""
    issuer: str = Field(min_length=1)
    """`iss` of every access token."""
    audience: str = Field(min_length=1)
    """`aud` of every access token."""
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=1_209_600, ge=300, le=31_536_000)
    """Sliding window: each refresh token lives this long from its issue."""
    session_absolute_lifetime_seconds: int = Field(default=2_592_000, ge=1, le=31_536_000)
    """A login ends this long after the password was checked, however often it was
    refreshed (30 days)."""
    login_max_failures_per_email: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    registration_max_per_address: int = Field(default=120, ge=1)
    """Registrations per client address per registration window; seeding scripts and test suites
    need the default."""
    registration_window_seconds: int = Field(default=60, ge=1)
    verify_email_token_ttl_seconds: int = Field(default=86_400, ge=1, le=604_800)
    """Lifetime of an email verification token."""
    reset_password_token_ttl_seconds: int = Field(default=1800, ge=1, le=86_400)
    """Lifetime of a password reset token."""
    email_requests_max_per_email: int = Field(default=3, ge=1)
    """Forgot-password (and, separately, resend-verification) requests one email may make per
    window."""
    email_requests_max_per_address: int = Field(default=20, ge=1)
    """The same, per client address."""
    email_requests_window_seconds: int = Field(default=3600, ge=1)
    trusted_proxies: IPNetworks = ()
    """Peers whose X-Forwarded-For is believed: a JSON list or a comma-separated list of addresses
    or CIDR blocks."""


SmtpTlsMode = Literal["none", "starttls", "tls"]


class EmailWorkerSettings(ServiceSettings, IdentityStoreSettings):
    """The email worker (``gatehouse_auth.mailer``): the outbox in MongoDB and the SMTP server."""

    model_config = SettingsConfigDict(env_prefix="AUTH_")

    smtp_host: str = Field(min_length=1)
    """SMTP server (submission) host."""
    smtp_port: int = Field(default=587, ge=1, le=65_535)
    smtp_tls: SmtpTlsMode = "starttls"
    """`starttls` (port 587), `tls` (implicit TLS, port 465) or `none` (only for a mail catcher on a
    private network)."""
    smtp_username: str | None = None
    """Login, if the server needs one."""
    smtp_password: SecretStr | None = None
    """Password of `smtp_username`; required with it."""
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    smtp_sender: EmailStr
    """The From address of every email."""
    public_base_url: AnyHttpUrl
    """Where users open the links in emails: `<url>/verify-email#token=...` and
    `<url>/reset-password#token=...`."""
    email_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often an idle worker looks for new emails."""
    email_lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    """How long a claimed email is the claiming worker's; after that (a crash), another worker sends
    it. Longer than an SMTP exchange can take."""
    email_retry_base_seconds: float = Field(default=2.0, gt=0, le=600)
    email_retry_max_seconds: float = Field(default=300.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _login_is_complete(self) -> Self:
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("AUTH_SMTP_USERNAME and AUTH_SMTP_PASSWORD go together")
        return self
