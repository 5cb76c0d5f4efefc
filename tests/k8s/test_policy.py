"""The hardening policy holds for every overlay, and a manifest that breaks it is caught."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.k8s_checks import K8S_ROOT, Manifest, policy_violations, render, schema_violations

Mutation = Callable[[list[Manifest]], None]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_overlay_complies(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    assert policy_violations(rendered[overlay], production=overlay == "prod") == []


def obj(objects: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = (o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    return found


def pod(objects: list[Manifest], name: str, kind: str = "Deployment") -> dict[str, Any]:
    spec: dict[str, Any] = obj(objects, kind, name)["spec"]["template"]["spec"]
    return spec


def container(objects: list[Manifest], name: str, kind: str = "Deployment") -> dict[str, Any]:
    first: dict[str, Any] = pod(objects, name, kind)["containers"][0]
    return first


def drop(objects: list[Manifest], kind: str, name: str) -> None:
    objects.remove(obj(objects, kind, name))


def config_map(objects: list[Manifest], prefix: str) -> Manifest:
    (found,) = (
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix)
    )
    return found


# Each case removes or weakens one thing and names the violation it must produce.
MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "readiness probe removed": (
        lambda o: container(o, "gateway").pop("readinessProbe"),
        "container gateway: readinessProbe must be set",
    ),
    "liveness probe removed": (
        lambda o: container(o, "auth").pop("livenessProbe"),
        "container auth: livenessProbe must be set",
    ),
    "startup probe removed": (
        lambda o: container(o, "users").pop("startupProbe"),
        "container users: startupProbe must be set",
    ),
    "readiness probe on /health instead of /ready": (
        lambda o: container(o, "users")["readinessProbe"]["httpGet"].update(path="/health"),
        "readinessProbe must be an HTTP GET of /ready",
    ),
    "limits removed": (
        lambda o: container(o, "users")["resources"].pop("limits"),
        "container users: resources.limits.memory must be set",
    ),
    "memory limit removed": (
        lambda o: container(o, "gateway")["resources"]["limits"].pop("memory"),
        "container gateway: resources.limits.memory must be set",
    ),
    "cpu request removed": (
        lambda o: container(o, "auth")["resources"]["requests"].pop("cpu"),
        "container auth: resources.requests.cpu must be set",
    ),
    "limits removed from the migration": (
        lambda o: container(o, "users-migrate", "Job")["resources"].pop("limits"),
        "Job/users-migrate container migrate: resources.limits.cpu must be set",
    ),
    "container runAsNonRoot removed": (
        lambda o: container(o, "gateway")["securityContext"].pop("runAsNonRoot"),
        "container gateway: securityContext.runAsNonRoot must be true",
    ),
    "pod runAsNonRoot removed": (
        lambda o: pod(o, "gateway")["securityContext"].pop("runAsNonRoot"),
        "Deployment/gateway: pod securityContext.runAsNonRoot must be true",
    ),
    "root uid": (
        lambda o: container(o, "auth")["securityContext"].update(runAsUser=0),
        "container auth: securityContext.runAsUser must be a numeric uid > 0",
    ),
    "allowPrivilegeEscalation removed": (
        lambda o: container(o, "users")["securityContext"].pop("allowPrivilegeEscalation"),
        "securityContext.allowPrivilegeEscalation must be false",
    ),
    "writable root filesystem": (
        lambda o: container(o, "auth")["securityContext"].update(readOnlyRootFilesystem=False),
        "securityContext.readOnlyRootFilesystem must be true",
    ),
    "capabilities not dropped": (
        lambda o: container(o, "gateway")["securityContext"].pop("capabilities"),
        "securityContext.capabilities.drop must contain ALL",
    ),
    "a capability added": (
        lambda o: container(o, "gateway")["securityContext"]["capabilities"].update(
            add=["NET_ADMIN"]
        ),
        "securityContext.capabilities.add must be empty",
    ),
    "container seccomp removed": (
        lambda o: container(o, "users")["securityContext"].pop("seccompProfile"),
        "container users: securityContext.seccompProfile.type must be RuntimeDefault",
    ),
    "pod seccomp unconfined": (
        lambda o: pod(o, "auth")["securityContext"]["seccompProfile"].update(type="Unconfined"),
        "Deployment/auth: pod securityContext.seccompProfile.type must be RuntimeDefault",
    ),
    "service account token mounted": (
        lambda o: pod(o, "users").update(automountServiceAccountToken=True),
        "Deployment/users: automountServiceAccountToken must be false",
    ),
    "scratch volume not mounted": (
        lambda o: container(o, "gateway").pop("volumeMounts"),
        "must be an emptyDir (the root filesystem is read-only)",
    ),
    "no preStop pause": (
        lambda o: container(o, "auth").pop("lifecycle"),
        "lifecycle.preStop must pause",
    ),
    "grace period shorter than the pause": (
        lambda o: pod(o, "users").update(terminationGracePeriodSeconds=3),
        "terminationGracePeriodSeconds must exceed the preStop pause",
    ),
    "several server workers": (
        lambda o: container(o, "gateway")["command"].__setitem__(
            container(o, "gateway")["command"].index("--workers") + 1, "4"
        ),
        "--workers 1",
    ),
    "server run by uvicorn directly": (
        lambda o: container(o, "auth-email-worker").update(
            command=["uvicorn", "--factory", "gatehouse_auth.mailer.main:create_app"]
        ),
        "must run its server explicitly",
    ),
    "another service's package": (
        lambda o: container(o, "auth-email-worker")["command"].__setitem__(2, "gatehouse_authx"),
        "must run its server explicitly",
    ),
    "latest tag": (
        lambda o: container(o, "auth").update(image="registry.example.com/gatehouse/auth:latest"),
        "uses the latest tag",
    ),
    "untagged image": (
        lambda o: container(o, "users").update(image="registry.example.com/gatehouse/users"),
        "has no tag",
    ),
    "password in a ConfigMap": (
        lambda o: config_map(o, "users-config")["data"].update(
            USERS_CACHE_URL="redis://:hunter2@redis:6379/0"
        ),
        "holds a URL with a password",
    ),
    "private key in a ConfigMap": (
        lambda o: config_map(o, "auth-config")["data"].update(
            AUTH_KEYS='{"keys": [{"kty": "RSA", "d": "..."}]}'
        ),
        "holds private key material",
    ),
    "PDB missing": (
        lambda o: drop(o, "PodDisruptionBudget", "auth"),
        "Deployment/auth: no PodDisruptionBudget selects its pods",
    ),
    "HPA missing": (
        lambda o: drop(o, "HorizontalPodAutoscaler", "gateway"),
        "Deployment/gateway: no HorizontalPodAutoscaler targets it",
    ),
    "one replica minimum": (
        lambda o: obj(o, "HorizontalPodAutoscaler", "users")["spec"].update(minReplicas=1),
        "Deployment/users: its HorizontalPodAutoscaler allows fewer than 2 replicas",
    ),
    "replicas fixed beside the HPA": (
        lambda o: obj(o, "Deployment", "auth")["spec"].update(replicas=2),
        "Deployment/auth: spec.replicas must be left to its HorizontalPodAutoscaler",
    ),
    "no topology spread": (
        lambda o: pod(o, "gateway").pop("topologySpreadConstraints"),
        "Deployment/gateway: needs topologySpreadConstraints",
    ),
}


@pytest.mark.parametrize("case", MUTATIONS)
def test_a_weakened_prod_manifest_is_caught(rendered: dict[str, list[Manifest]], case: str) -> None:
    objects = copy.deepcopy(rendered["prod"])
    mutate, expected = MUTATIONS[case]
    mutate(objects)
    violations = policy_violations(objects, production=True)
    assert violations, f"{case}: no violation reported"
    assert any(expected in violation for violation in violations), violations


def _edit_yaml(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        (
            "readinessProbe",
            lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe"),
        ),
        (
            "resources.limits",
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"].pop("limits"),
        ),
        (
            "securityContext.runAsNonRoot",
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop(
                "runAsNonRoot"
            ),
        ),
    ],
)
def test_removing_a_field_from_the_source_fails_the_checks(
    tmp_path: Path, field: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """End to end: edit the base on disk, render prod again, and the policy check fails.

    The result is still schema-valid (the fields are optional to Kubernetes): it is the policy
    that must refuse it.
    """
    tree = tmp_path / "k8s"
    # prod needs no generated secret; leave dev's out of the copy.
    shutil.copytree(K8S_ROOT, tree, ignore=shutil.ignore_patterns(".generated"))
    _edit_yaml(tree / "base" / "gateway" / "deployment.yaml", edit)

    objects = render(tree / "overlays" / "prod")

    assert schema_violations([o for o in objects if o["kind"] == "Deployment"]) == []
    violations = policy_violations(objects, production=True)
    assert any(
        violation.startswith("Deployment/gateway container gateway:") and field in violation
        for violation in violations
    ), violations


# PostgreSQL's default max_connections, less superuser_reserved_connections (3) and room for
# an operator's psql and the monitoring agent. docs/deploy.md ("Scaling") explains the sum.
POSTGRES_CONNECTIONS_FOR_USERS = 100 - 3 - 7


def test_the_users_pools_fit_in_postgres_at_full_scale(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["prod"]
    settings = config_map(objects, "users-config")["data"]
    per_pod = int(settings["USERS_DB_POOL_SIZE"]) + int(settings["USERS_DB_MAX_OVERFLOW"])
    most_pods = obj(objects, "HorizontalPodAutoscaler", "users")["spec"]["maxReplicas"] + int(
        obj(objects, "Deployment", "users")["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    )
    migration = 1
    assert most_pods * per_pod + migration <= POSTGRES_CONNECTIONS_FOR_USERS
