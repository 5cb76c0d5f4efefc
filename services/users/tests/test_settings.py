"""Configuration: required secrets, URL validation, and the env var names others rely on."""

from __future__ import annotations

import pytest

from gatehouse_common.settings import SettingsError, load_settings
from gatehouse_users.settings import MigrationSettings, UsersSettings

REQUIRED = {
    "USERS_DATABASE_URL": "postgresql+asyncpg://users:secret-pw@postgres:5432/users",
    "USERS_REDIS_URL": "redis://redis:6379/0",
    "USERS_EVENTS_REDIS_URL": "redis://redis:6379/2",
    "USERS_JWT_ISSUER": "https://auth.example",
    "USERS_JWT_AUDIENCE": "gatehouse",
    "USERS_JWKS_URL": "http://auth:8001/auth/.well-known/jwks.json",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_defaults(environment: pytest.MonkeyPatch) -> None:
    defaults = {
        "cache_ttl_seconds": 300,
        "cache_timeout_seconds": 1.0,
        "db_pool_size": 15,
        "db_max_overflow": 0,
        "db_pool_timeout_seconds": 5,
        "db_pool_recycle_seconds": 1800,
        "db_pool_ping_after_idle_seconds": 0.5,
        "db_pool_class": "queue",
        "db_statement_timeout_ms": None,
    }
    assert load_settings(UsersSettings).model_dump(include=set(defaults)) == defaults


def test_every_agreed_variable_is_read(environment: pytest.MonkeyPatch) -> None:
    values = {
        "USERS_LOG_LEVEL": "WARNING",
        "USERS_OTLP_ENDPOINT": "http://collector:4318",
        "USERS_CACHE_TTL_SECONDS": "60",
        "USERS_CACHE_TIMEOUT_SECONDS": "0.1",
        "USERS_DB_POOL_SIZE": "3",
        "USERS_DB_MAX_OVERFLOW": "0",
        "USERS_DB_POOL_TIMEOUT_SECONDS": "2",
        "USERS_DB_POOL_RECYCLE_SECONDS": "600",
        "USERS_DB_POOL_PING_AFTER_IDLE_SECONDS": "2",
        "USERS_DB_STATEMENT_TIMEOUT_MS": "1500",
        "USERS_DB_POOL_CLASS": "null",
        "USERS_EVENTS_BLOCK_SECONDS": "2",
        "USERS_ACCESS_TOKEN_MAX_LIFETIME_SECONDS": "600",
    }
    for name, value in values.items():
        environment.setenv(name, value)
    read = {
        "log_level": "WARNING",
        "cache_ttl_seconds": 60,
        "cache_timeout_seconds": 0.1,
        "db_pool_size": 3,
        "db_max_overflow": 0,
        "db_pool_timeout_seconds": 2,
        "db_pool_recycle_seconds": 600,
        "db_pool_ping_after_idle_seconds": 2,
        "db_statement_timeout_ms": 1500,
        "db_pool_class": "null",
        "events_block_seconds": 2,
        "access_token_max_lifetime_seconds": 600,
    }
    settings = load_settings(UsersSettings)
    assert settings.model_dump(include=set(read)) == read
    assert str(settings.otlp_endpoint) == "http://collector:4318/"
    assert settings.events_redis_url.get_secret_value() == REQUIRED["USERS_EVENTS_REDIS_URL"]


@pytest.mark.parametrize(
    "missing",
    ["USERS_DATABASE_URL", "USERS_REDIS_URL", "USERS_EVENTS_REDIS_URL", "USERS_JWKS_URL"],
)
def test_a_missing_required_variable_stops_with_its_name(
    environment: pytest.MonkeyPatch, missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.delenv(missing)
    with pytest.raises(SettingsError, match=missing):
        load_settings(UsersSettings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USERS_DATABASE_URL", "postgresql://users:secret-pw@postgres/users"),
        ("USERS_DATABASE_URL", "sqlite+aiosqlite:///secret-pw.db"),
        ("USERS_REDIS_URL", "http://secret-pw@redis:6379"),
    ],
)
def test_a_wrong_url_scheme_is_refused_without_echoing_it(
    environment: pytest.MonkeyPatch, name: str, value: str
) -> None:
    environment.setenv(name, value)
    with pytest.raises(SettingsError, match=name) as raised:
        load_settings(UsersSettings)
    assert "secret-pw" not in str(raised.value)


def test_migrations_need_only_the_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_DATABASE_URL", REQUIRED["USERS_DATABASE_URL"])
    settings = load_settings(MigrationSettings)
    assert settings.database_url.get_secret_value() == REQUIRED["USERS_DATABASE_URL"]
    assert "secret-pw" not in repr(settings)
