"""No secret is committed under infra/k8s: dev generates its own, once, in a git-ignored folder."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gatehouse_auth.signing_keys import SigningKeySet
from tests.k8s.k8s_checks import (
    DEV_OVERLAY,
    DEV_SECRETS_DIR,
    K8S_ROOT,
    REPO_ROOT,
    Manifest,
    committable_files,
    committed_secret_violations,
    generate_dev_secrets,
    render,
)

ACCOUNT_FILES = ("postgres-credentials.env", "mongo-credentials.env", "redis-credentials.env")
URL_FILES = ("auth-datastores.env", "users-datastores.env", "gateway-datastores.env")
GENERATED_FILES = (*ACCOUNT_FILES, *URL_FILES, "redis.conf", "signing-keys.json")


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_nothing_committable_under_infra_k8s_holds_a_secret() -> None:
    files = committable_files()
    dev = DEV_OVERLAY.relative_to(REPO_ROOT).as_posix()
    # The scan must see the overlays, and must not see the generated secrets.
    assert f"{dev}/kustomization.yaml" in files
    assert not any(name.startswith(f"{dev}/.generated/") for name in files)
    assert committed_secret_violations(files) == []


def test_the_generated_folder_is_ignored_by_git() -> None:
    completed = subprocess.run(
        ["git", "check-ignore", "--quiet", str(DEV_SECRETS_DIR / "signing-keys.json")],
        cwd=REPO_ROOT,
        check=False,
    )
    assert completed.returncode == 0


DEV_KUSTOMIZATION = "infra/k8s/overlays/dev/kustomization.yaml"

# Each case is one committed file (path -> text) and the violation it must produce.
LEAKS: dict[str, tuple[dict[str, str], str]] = {
    "a JWK key set with its private members": (
        {"infra/k8s/overlays/dev/keys.json": '{"keys": [{"kty": "RSA", "n": "x", "d": "y"}]}'},
        "keys.json: holds a private JWK member",
    ),
    "a JWK written as YAML": (
        {"infra/k8s/overlays/dev/keys.yaml": "keys:\n  - kty: RSA\n    n: x\n    p: y\n"},
        "keys.yaml: holds a private JWK member",
    ),
    "a JWK inside a manifest string": (
        {"infra/k8s/base/auth/cm.yaml": 'data:\n  KEYS: \'{"kty": "RSA", "q": "y"}\'\n'},
        "cm.yaml: holds a private JWK member",
    ),
    "a PEM private key": (
        {"infra/k8s/overlays/dev/tls.key": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"},
        "tls.key: holds a PEM private key",
    ),
    "a password literal": (
        {DEV_KUSTOMIZATION: "secretGenerator:\n  - name: pg\n    literals: [password=dev]\n"},
        "secretGenerator pg has a literal password",
    ),
    "a URL literal": (
        {
            DEV_KUSTOMIZATION: (
                "secretGenerator:\n  - name: auth-datastores\n    literals:\n"
                "      - redis-url=redis://:dev@redis:6379/0\n"
            )
        },
        "secretGenerator auth-datastores has a literal redis-url",
    ),
    "a credential URL under a harmless name": (
        {DEV_KUSTOMIZATION: "secretGenerator:\n  - name: x\n    literals: [db=pg://u:p@h/d]\n"},
        "secretGenerator x has a literal db",
    ),
    "a secret read from a committed file": (
        {
            DEV_KUSTOMIZATION: (
                "secretGenerator:\n  - name: auth-signing-keys\n    files:\n"
                "      - signing-keys.json=secrets/keys.json\n"
            ),
            "infra/k8s/overlays/dev/secrets/keys.json": "{}",
        },
        "auth-signing-keys reads infra/k8s/overlays/dev/secrets/keys.json, which git would commit",
    ),
    "a secret read from a committed env file": (
        {
            DEV_KUSTOMIZATION: "secretGenerator:\n  - name: pg\n    envs: [../dev.env]\n",
            "infra/k8s/overlays/dev.env": "password=dev\n",
        },
        "pg reads infra/k8s/overlays/dev.env, which git would commit",
    ),
}


@pytest.mark.parametrize("case", LEAKS)
def test_a_committed_secret_is_caught(case: str) -> None:
    files, expected = LEAKS[case]
    violations = committed_secret_violations(files)
    assert any(expected in violation for violation in violations), violations


def test_public_keys_and_plain_names_pass() -> None:
    files = {
        "infra/k8s/overlays/dev/jwks.json": '{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}',
        DEV_KUSTOMIZATION: (
            "secretGenerator:\n  - name: pg\n    literals: [username=gatehouse]\n"
            "    envs: [.generated/pg.env]\n"
        ),
    }
    assert committed_secret_violations(files) == []


def test_the_generator_makes_private_random_secrets_once(tmp_path: Path) -> None:
    directory = tmp_path / "generated"
    generate_dev_secrets(directory)

    assert sorted(path.name for path in directory.iterdir()) == sorted(GENERATED_FILES)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert {path.stat().st_mode & 0o777 for path in directory.iterdir()} == {0o600}
    passwords = [read_env(directory / name)["password"] for name in ACCOUNT_FILES]
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", password) for password in passwords)
    assert len(set(passwords)) == len(passwords)
    key_set = SigningKeySet.load(directory / "signing-keys.json")
    assert key_set.active_kid in key_set.keys

    first = snapshot(directory)
    # Re-running keeps every file, so a re-apply keeps the datastores usable...
    assert generate_dev_secrets(directory) == ""
    assert snapshot(directory) == first
    # ...and a lost URL file is rebuilt from the accounts, not from new passwords.
    (directory / "users-datastores.env").unlink()
    generate_dev_secrets(directory)
    assert snapshot(directory) == first


def test_the_urls_carry_the_datastore_passwords(tmp_path: Path) -> None:
    generate_dev_secrets(tmp_path)
    postgres, mongo, redis = (read_env(tmp_path / name) for name in ACCOUNT_FILES)
    auth, users, gateway = (read_env(tmp_path / name) for name in URL_FILES)
    assert users["database-url"] == (
        f"postgresql+asyncpg://{postgres['username']}:{postgres['password']}"
        f"@postgres:5432/{postgres['database']}"
    )
    assert auth["mongo-url"] == (
        f"mongodb://{mongo['username']}:{mongo['password']}@mongo:27017/?authSource=admin"
    )
    # Each service has its own Redis account (scripts/lib/redis-acl.sh), the default one none.
    assert auth["redis-url"] == f"redis://auth:{redis['auth-password']}@redis:6379/0"
    assert users["redis-url"] == f"redis://users:{redis['users-password']}@redis:6379/1"
    # The event channel is database 0, each service with its own account: users publishes
    # and consumes, the gateway's account only reads the streams (the revocation feed).
    assert users["events-redis-url"] == f"redis://users:{redis['users-password']}@redis:6379/0"
    assert gateway["events-redis-url"] == (
        f"redis://gateway:{redis['gateway-password']}@redis:6379/0"
    )
    redis_conf = (tmp_path / "redis.conf").read_text().splitlines()
    assert f"requirepass {redis['password']}" in redis_conf
    for account in ("auth", "users", "gateway"):
        password = redis[f"{account}-password"]
        assert any(line.startswith(f"user {account} on >{password} ") for line in redis_conf)
    assert len(set(redis.values())) == 4


def secret_data(objects: list[Manifest], name: str) -> dict[str, str]:
    (secret,) = (
        o
        for o in objects
        if o["kind"] == "Secret" and o["metadata"]["name"].rsplit("-", 1)[0] == name
    )
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_a_fresh_clone_renders_dev_with_its_own_secrets(tmp_path: Path, dev_secrets: Path) -> None:
    """A copy of infra/k8s without .generated/ stands for a fresh clone."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S_ROOT, tree, ignore=shutil.ignore_patterns(".generated"))
    generated = tree / "overlays" / "dev" / ".generated"
    generate_dev_secrets(generated)

    objects = render(tree / "overlays" / "dev")

    for name in ("users-datastores", "gateway-datastores", "redis-credentials"):
        assert secret_data(objects, name) == read_env(generated / f"{name}.env")
    keys = json.loads(secret_data(objects, "auth-signing-keys")["signing-keys.json"])
    assert keys == json.loads((generated / "signing-keys.json").read_text())
    # Every clone gets its own: nothing is shared with the working copy's secrets.
    assert read_env(generated / "redis-credentials.env") != read_env(
        dev_secrets / "redis-credentials.env"
    )


def test_the_rendered_dev_secrets_are_the_generated_ones(
    rendered: dict[str, list[Manifest]], dev_secrets: Path
) -> None:
    for name in ("postgres-credentials", "mongo-credentials", "auth-datastores"):
        assert secret_data(rendered["dev"], name) == read_env(dev_secrets / f"{name}.env")
