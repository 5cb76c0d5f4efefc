"""Every overlay renders with `kubectl kustomize` and is valid against the Kubernetes 1.32 API."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
import yaml

from tests.k8s.k8s_checks import (
    K8S_ROOT,
    REPO_ROOT,
    Manifest,
    container_environment,
    schema_violations,
)

SERVICES = ("gateway", "auth", "users")
# Deployments besides the services: auth's email worker (same image as auth).
WORKERS = ("auth-email-worker",)


def names(objects: list[Manifest], kind: str) -> set[str]:
    return {obj["metadata"]["name"] for obj in objects if obj["kind"] == kind}


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = (o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    return found


def test_dev_and_prod_overlays_exist(rendered: dict[str, list[Manifest]]) -> None:
    assert {"dev", "prod"} <= set(rendered)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_service_has_its_objects(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    objects = rendered[overlay]
    for kind in ("Deployment", "Service", "ServiceAccount"):
        assert set(SERVICES) <= names(objects, kind), kind
    config_maps = names(objects, "ConfigMap")
    for service in SERVICES:
        # Generated with a content hash, so that a changed setting rolls the pods.
        assert any(name.startswith(f"{service}-config-") for name in config_maps)
    assert "users-migrate" in names(objects, "Job")
    assert "gateway" in names(objects, "Ingress")
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {
        find(objects, "Namespace", next(iter(names(objects, "Namespace"))))["metadata"]["name"]
    }


def test_migration_runs_alembic_upgrade_head(rendered: dict[str, list[Manifest]]) -> None:
    job = find(rendered["prod"], "Job", "users-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][0] == "alembic"
    assert container["command"][-2:] == ["upgrade", "head"]


def test_dev_runs_one_replica_and_its_own_datastores(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["dev"]
    assert {obj["spec"]["replicas"] for obj in objects if obj["kind"] == "Deployment"} == {1}
    assert names(objects, "StatefulSet") == {"postgres", "redis", "mongo"}
    # Generated throwaway secrets, so dev renders and runs with nothing created by hand.
    assert {"auth-datastores", "users-datastores", "auth-signing-keys"} <= {
        name.rsplit("-", 1)[0] for name in names(objects, "Secret")
    }


def test_prod_uses_external_datastores_and_commits_no_secret(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["prod"]
    assert names(objects, "StatefulSet") == set()
    assert names(objects, "Secret") == set()
    for policy in ("allow-egress-to-postgres", "allow-egress-to-redis", "allow-egress-to-mongo"):
        (rule,) = find(objects, "NetworkPolicy", policy)["spec"]["egress"]
        assert all("ipBlock" in peer for peer in rule["to"])


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_manifests_are_valid_kubernetes_1_32(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    assert schema_violations(rendered[overlay]) == []


def test_schema_validation_rejects_an_unknown_field(rendered: dict[str, list[Manifest]]) -> None:
    objects = copy.deepcopy(rendered["prod"])
    deployment = find(objects, "Deployment", "gateway")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")  # a typo a reviewer might miss
    violations = schema_violations([deployment])
    assert len(violations) == 1
    assert "Deployment/gateway" in violations[0]
    assert "readinesProbe" in violations[0]


def test_schema_validation_rejects_a_wrong_type(rendered: dict[str, list[Manifest]]) -> None:
    objects = copy.deepcopy(rendered["prod"])
    deployment = find(objects, "Deployment", "users")
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = [1]
    (violation,) = schema_violations([deployment])
    assert "Deployment/users" in violation
    assert "limits/memory" in violation


def test_make_k8s_render_prints_the_prod_manifests() -> None:
    completed = subprocess.run(
        ["make", "--no-print-directory", "k8s-render", "OVERLAY=prod"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    objects = [doc for doc in yaml.safe_load_all(completed.stdout) if doc]
    assert names(objects, "Deployment") == {*SERVICES, *WORKERS}
    assert names(objects, "HorizontalPodAutoscaler") == {*SERVICES, *WORKERS}


def test_prod_is_monitored(rendered: dict[str, list[Manifest]]) -> None:
    """A ServiceMonitor per service on a port its Service has, the rules, the dashboards."""
    objects = rendered["prod"]
    assert names(objects, "ServiceMonitor") == set(SERVICES)
    for service in SERVICES:
        monitor = find(objects, "ServiceMonitor", service)
        target = find(objects, "Service", service)
        assert (
            monitor["spec"]["selector"]["matchLabels"].items()
            <= target["metadata"]["labels"].items()
        )
        ports = {port["name"] for port in target["spec"]["ports"]}
        assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    # The gateway's metrics are on their own port, never on the routed API port.
    assert [e["port"] for e in find(objects, "ServiceMonitor", "gateway")["spec"]["endpoints"]] == [
        "metrics"
    ]
    assert names(objects, "PrometheusRule") == {"gatehouse"}
    dashboards = [
        obj
        for obj in objects
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith("grafana-dashboard-")
    ]
    committed = (K8S_ROOT / "components" / "monitoring" / "dashboards").glob("*.json")
    assert {obj["metadata"]["name"] for obj in dashboards} == {
        f"grafana-dashboard-{path.stem}" for path in committed
    }
    for config_map in dashboards:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        (document,) = config_map["data"].values()
        assert json.loads(document)["uid"].startswith("gatehouse-")


def test_operator_validation_rejects_an_unknown_field(rendered: dict[str, list[Manifest]]) -> None:
    monitor = copy.deepcopy(find(rendered["prod"], "ServiceMonitor", "users"))
    monitor["spec"]["endpoints"][0]["scrapeIntervall"] = "30s"
    (violation,) = schema_violations([monitor])
    assert "ServiceMonitor/users" in violation
    assert "spec/endpoints/0/scrapeIntervall" in violation


def test_operator_validation_rejects_a_wrong_type(rendered: dict[str, list[Manifest]]) -> None:
    rule = copy.deepcopy(find(rendered["prod"], "PrometheusRule", "gatehouse"))
    rule["spec"]["groups"][0]["rules"][0]["labels"] = ["severity", "critical"]
    violations = schema_violations([rule])
    assert violations
    assert all("PrometheusRule/gatehouse" in violation for violation in violations)


def test_dev_sends_email_to_its_own_maildev(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["dev"]
    (maildev,) = find(objects, "Deployment", "mailer")["spec"]["template"]["spec"]["containers"]
    assert maildev["image"].startswith("maildev/maildev:")
    (config,) = (
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("auth-email-worker-config")
    )
    assert (config["data"]["AUTH_SMTP_HOST"], config["data"]["AUTH_SMTP_PORT"]) == (
        "mailer",
        "1025",
    )
    assert "mailer" in names(objects, "Service")


def test_prod_sends_email_through_an_external_smtp_server_from_a_secret(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["prod"]
    assert "mailer" not in names(objects, "Deployment")
    (worker,) = find(objects, "Deployment", "auth-email-worker")["spec"]["template"]["spec"][
        "containers"
    ]
    from_secrets = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]["name"]
        for entry in worker["env"]
        if "valueFrom" in entry
    }
    for name in ("AUTH_SMTP_HOST", "AUTH_SMTP_USERNAME", "AUTH_SMTP_PASSWORD"):
        assert from_secrets[name] == "auth-smtp"
    (rule,) = find(objects, "NetworkPolicy", "allow-egress-to-smtp")["spec"]["egress"]
    assert all("ipBlock" in peer for peer in rule["to"])
    assert [port["port"] for port in rule["ports"]] == [587]


def test_auth_reads_the_event_channel_from_a_secret(
    rendered: dict[str, list[Manifest]],
) -> None:
    for overlay in ("dev", "prod"):
        objects = rendered[overlay]
        (auth,) = find(objects, "Deployment", "auth")["spec"]["template"]["spec"]["containers"]
        _, from_secrets, problems = container_environment(auth, objects)
        assert problems == []
        assert "AUTH_EVENTS_REDIS_URL" in from_secrets
    # dev: the namespace's Redis, the database where every service's streams live.
    dev_auth = find(rendered["dev"], "Deployment", "auth")["spec"]["template"]["spec"]
    environment, _, _ = container_environment(dev_auth["containers"][0], rendered["dev"])
    assert environment["AUTH_EVENTS_REDIS_URL"].endswith("@redis:6379/0")
