"""The environment the manifests give each container is exactly what its settings class reads."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from gatehouse_auth.settings import AuthSettings, EmailWorkerSettings
from gatehouse_gateway.settings import GatewaySettings
from gatehouse_users.settings import MigrationSettings, UsersSettings
from tests.k8s.k8s_checks import (
    Manifest,
    contract_violations,
    gatehouse_service,
    pod_spec,
    workloads,
)

# (workload name, container name) -> the settings class that container reads.
SETTINGS_OF: dict[tuple[str, str], type[BaseSettings]] = {
    ("gateway", "gateway"): GatewaySettings,
    ("auth", "auth"): AuthSettings,
    ("auth-email-worker", "auth-email-worker"): EmailWorkerSettings,
    ("users", "users"): UsersSettings,
    ("users-migrate", "migrate"): MigrationSettings,
}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_container_gets_the_settings_it_reads(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    assert contract_violations(rendered[overlay], SETTINGS_OF) == []


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_contract_covers_every_gatehouse_container(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    checked = {
        (workload["metadata"]["name"], container["name"])
        for workload in workloads(rendered[overlay])
        for container in pod_spec(workload)["containers"]
        if gatehouse_service(container) is not None
    }
    assert checked == set(SETTINGS_OF)


def find(objects: list[Manifest], kind: str, prefix: str) -> Manifest:
    """The object named ``prefix``, or else the one whose (hashed) name starts with it."""
    of_kind = [o for o in objects if o["kind"] == kind]
    exact = [o for o in of_kind if o["metadata"]["name"] == prefix]
    (found,) = exact or [o for o in of_kind if o["metadata"]["name"].startswith(prefix)]
    return found


def container(objects: list[Manifest], name: str) -> dict[str, Any]:
    first: dict[str, Any] = find(objects, "Deployment", name)["spec"]["template"]["spec"][
        "containers"
    ][0]
    return first


@pytest.fixture
def prod(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return copy.deepcopy(rendered["prod"])


def test_an_unknown_variable_is_caught(prod: list[Manifest]) -> None:
    find(prod, "ConfigMap", "users-config")["data"]["USERS_CACHE_TTL"] = "60"
    assert contract_violations(prod, SETTINGS_OF) == [
        "Deployment/users container users: USERS_CACHE_TTL is not a field of UsersSettings"
    ]


def test_a_variable_of_another_service_is_caught(prod: list[Manifest]) -> None:
    container(prod, "gateway").setdefault("env", []).append(
        {"name": "WEB_CONCURRENCY", "value": "4"}
    )
    assert contract_violations(prod, SETTINGS_OF) == [
        "Deployment/gateway container gateway: WEB_CONCURRENCY is not a field of GatewaySettings"
    ]


def test_a_missing_required_setting_is_caught(prod: list[Manifest]) -> None:
    del find(prod, "ConfigMap", "auth-config")["data"]["AUTH_ISSUER"]
    violations = contract_violations(prod, SETTINGS_OF)
    assert "Deployment/auth container auth: required setting AUTH_ISSUER is not set" in violations


def test_a_missing_secret_is_caught(prod: list[Manifest]) -> None:
    env = container(prod, "users")["env"]
    env[:] = [entry for entry in env if entry["name"] != "USERS_REDIS_URL"]
    assert contract_violations(prod, SETTINGS_OF) == [
        "Deployment/users container users: required setting USERS_REDIS_URL is not set"
    ]


def test_a_secret_setting_outside_a_secret_is_caught(prod: list[Manifest]) -> None:
    env = container(prod, "auth")["env"]
    env[:] = [entry for entry in env if entry["name"] != "AUTH_REDIS_URL"]
    find(prod, "ConfigMap", "auth-config")["data"]["AUTH_REDIS_URL"] = "redis://redis:6379/0"
    assert contract_violations(prod, SETTINGS_OF) == [
        "Deployment/auth container auth: AUTH_REDIS_URL is a secret and must come from a Secret"
    ]


def test_a_value_the_settings_class_rejects_is_caught(prod: list[Manifest]) -> None:
    find(prod, "ConfigMap", "gateway-config")["data"]["GATEWAY_CORS_ORIGINS"] = "*"
    (violation,) = contract_violations(prod, SETTINGS_OF)
    assert violation.startswith("Deployment/gateway container gateway: GATEWAY_CORS_ORIGINS: ")
    assert "'*' is not allowed" in violation


def test_an_issuer_that_auth_does_not_mint_is_caught(prod: list[Manifest]) -> None:
    find(prod, "ConfigMap", "users-config")["data"]["USERS_JWT_ISSUER"] = "https://other.example"
    assert contract_violations(prod, SETTINGS_OF) == ["USERS_JWT_ISSUER differs from AUTH_ISSUER"]


def test_a_container_without_a_known_settings_class_is_caught(prod: list[Manifest]) -> None:
    container(prod, "users")["name"] = "profiles"
    assert contract_violations(prod, SETTINGS_OF) == [
        "Deployment/users container profiles: no settings class is known for it"
    ]


def test_dev_secret_values_are_checked_too(rendered: dict[str, list[Manifest]]) -> None:
    dev = copy.deepcopy(rendered["dev"])
    secret = find(dev, "Secret", "users-datastores")
    secret["data"]["database-url"] = base64.b64encode(b"postgresql://u:p@postgres/db").decode()
    violations = contract_violations(dev, SETTINGS_OF)
    assert "Deployment/users container users: USERS_DATABASE_URL: " in violations[0]
    assert "must be a postgresql+asyncpg:// URL" in violations[0]
    # The message never repeats the value: it holds a password.
    assert not any("u:p@" in violation for violation in violations)
