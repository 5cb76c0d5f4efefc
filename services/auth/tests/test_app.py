"""OpenAPI, settings, health, password hashing behaviour."""

from __future__ import annotations

import asyncio
import ipaddress
import statistics
import time
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI

from gatehouse_auth.database import AuthDatabase
from gatehouse_auth.settings import AuthSettings
from gatehouse_common.settings import SettingsError, load_settings
from gatehouse_testing.dependencies import sync_dependencies
from services.auth.tests.support import AuthApi, SettingsFactory, serving

if TYPE_CHECKING:
    import httpx2


async def test_openapi_documents_every_response_and_the_password_flow(
    client: httpx2.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()

    flow = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
    assert flow["tokenUrl"] == "/auth/token"
    paths = schema["paths"]
    expected = {
        ("/auth/register", "post"): {"201", "400", "409", "422", "429", "503"},
        ("/auth/token", "post"): {"200", "400", "429", "503"},
        ("/auth/revoke", "post"): {"200", "400", "503"},
        ("/auth/.well-known/jwks.json", "get"): {"200"},
        ("/ready", "get"): {"200", "503"},
    }
    for (path, method), statuses in expected.items():
        # Exactly: a documented response is one that is sent (the OAuth routes send no 422).
        assert statuses == set(paths[path][method]["responses"]), (path, method)
    problem = paths["/auth/register"]["post"]["responses"]["409"]["content"]
    assert set(problem) == {"application/problem+json"}
    token_form = paths["/auth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in token_form


async def test_health_metrics_and_request_id(client: httpx2.AsyncClient) -> None:
    health = await client.get("/health", headers={"x-request-id": "abc-123"})

    assert health.json() == {"status": "ok"}
    assert health.headers["x-request-id"] == "abc-123"
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "text/plain" in metrics.headers["content-type"]


def test_missing_secrets_stop_the_service_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    required = (
        "AUTH_MONGO_URL",
        "AUTH_REDIS_URL",
        "AUTH_EVENTS_REDIS_URL",
        "AUTH_SIGNING_KEYS_FILE",
    )
    for name in required:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTH_ISSUER", "https://auth.example")
    monkeypatch.setenv("AUTH_AUDIENCE", "gatehouse")

    with pytest.raises(SettingsError):
        load_settings(AuthSettings)

    message = capsys.readouterr().err
    for name in required:
        assert name in message


@pytest.mark.parametrize(
    "value", ["10.0.0.0/8, 192.168.1.1", '["10.0.0.0/8", "192.168.1.1"]', "10.1.2.3/8,192.168.1.1"]
)
def test_trusted_proxies_from_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AUTH_MONGO_URL", "mongodb://db")
    monkeypatch.setenv("AUTH_REDIS_URL", "redis://cache")
    monkeypatch.setenv("AUTH_EVENTS_REDIS_URL", "redis://events")
    monkeypatch.setenv("AUTH_SIGNING_KEYS_FILE", "/keys.json")
    monkeypatch.setenv("AUTH_ISSUER", "https://auth.example")
    monkeypatch.setenv("AUTH_AUDIENCE", "gatehouse")
    monkeypatch.setenv("AUTH_TRUSTED_PROXIES", value)

    settings = load_settings(AuthSettings)

    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),
    )


def test_bad_trusted_proxy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_TRUSTED_PROXIES", "not-an-address")

    with pytest.raises(SettingsError):
        load_settings(AuthSettings)


async def test_login_rehashes_when_argon2_parameters_change(
    make_settings: SettingsFactory, database: AuthDatabase
) -> None:
    async def stored_hash(user_id: str) -> str:
        document = await database.identities.find_one({"_id": user_id})
        assert document is not None
        return str(document["password_hash"])

    async with serving(make_settings()) as api:
        user = await api.register()
    assert "t=1," in await stored_hash(user["id"])

    async with serving(make_settings(argon2_time_cost=2)) as api:
        assert (await api.login(user["email"])).status_code == 200
        new_hash = await stored_hash(user["id"])
        assert "t=2," in new_hash
        # The rehashed password still logs in, and is not rehashed again.
        assert (await api.login(user["email"])).status_code == 200
        assert await stored_hash(user["id"]) == new_hash


async def _median_login_seconds(api: AuthApi, email: str, attempts: int = 5) -> float:
    durations = []
    for _ in range(attempts):
        started = time.perf_counter()
        response = await api.login(email, "not the password")
        durations.append(time.perf_counter() - started)
        assert response.status_code == 400
    return statistics.median(durations)


async def test_unknown_email_costs_the_same_hashing_time(make_settings: SettingsFactory) -> None:
    # Real-size parameters, so hashing dominates the time of a login.
    settings = make_settings(
        argon2_time_cost=3,
        argon2_memory_cost_kib=65536,
        argon2_parallelism=1,
        login_max_failures_per_email=100,
        login_max_failures_per_address=100,
    )
    async with serving(settings) as api:
        user = await api.register()
        await asyncio.sleep(0)
        known = await _median_login_seconds(api, user["email"])
        unknown = await _median_login_seconds(api, "nobody-at-all@example.com")

    assert known > 0.02  # hashing really happened
    assert 0.5 < unknown / known < 2.0


def test_every_endpoint_and_dependency_is_async(app: FastAPI) -> None:
    assert sync_dependencies(app) == []
