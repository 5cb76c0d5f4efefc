"""Settings: prefixes, secrets without defaults, and a readable start-up failure."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from gatehouse_common.events import EventSettings
from gatehouse_common.revocation import RevocationSettings
from gatehouse_common.settings import ServiceSettings, SettingsError, load_settings


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore", frozen=True)

    database_url: SecretStr
    pool_size: int = 5


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", "postgresql+asyncpg://u:p@db/x")
    monkeypatch.setenv("EXAMPLE_POOL_SIZE", "12")
    monkeypatch.setenv("EXAMPLE_LOG_LEVEL", "DEBUG")

    settings = load_settings(ExampleSettings)

    assert settings.pool_size == 12
    assert settings.log_level == "DEBUG"
    assert settings.database_url.get_secret_value().endswith("/x")
    assert "u:p" not in repr(settings)


def test_missing_secret_stops_with_the_variable_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EXAMPLE_DATABASE_URL", raising=False)

    with pytest.raises(SettingsError) as stopped:
        load_settings(ExampleSettings)

    assert "EXAMPLE_DATABASE_URL" in str(stopped.value)
    assert "EXAMPLE_DATABASE_URL" in capsys.readouterr().err


def test_malformed_value_is_named_but_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", "x")
    monkeypatch.setenv("EXAMPLE_POOL_SIZE", "not-a-number-secret")

    with pytest.raises(SettingsError) as stopped:
        load_settings(ExampleSettings)

    assert "EXAMPLE_POOL_SIZE" in str(stopped.value)
    assert "not-a-number-secret" not in str(stopped.value)


def test_log_level_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", "x")
    monkeypatch.setenv("EXAMPLE_LOG_LEVEL", "verbose")

    with pytest.raises(SettingsError, match="EXAMPLE_LOG_LEVEL"):
        load_settings(ExampleSettings)


class EventingServiceSettings(ServiceSettings, EventSettings, RevocationSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore", frozen=True)


def test_event_settings_need_the_redis_url_and_default_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXAMPLE_EVENTS_REDIS_URL", raising=False)
    with pytest.raises(SettingsError) as stopped:
        load_settings(EventingServiceSettings)
    assert "EXAMPLE_EVENTS_REDIS_URL" in str(stopped.value)

    monkeypatch.setenv("EXAMPLE_EVENTS_REDIS_URL", "redis://users:s3cret@redis:6379/0")
    settings = load_settings(EventingServiceSettings)

    assert settings.events_max_deliveries == 5
    assert settings.access_token_max_lifetime_seconds == 900
    assert "s3cret" not in repr(settings)
