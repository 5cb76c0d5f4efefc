"""Fixtures of the monitoring tests: the metric names each service really exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gatehouse_auth.signing_keys import SigningKeySet
from gatehouse_testing.issuer import AUDIENCE, ISSUER
from gatehouse_testing.network import free_port

MONITORING_DIR = Path(__file__).resolve().parents[2] / "infra" / "monitoring"
# Under --import-mode=importlib, infra/monitoring's modules are importable only from sys.path.
sys.path.insert(0, str(MONITORING_DIR))

EXPORTED_METRICS_SCRIPT = Path(__file__).with_name("exported_metrics.py")


@pytest.fixture(scope="session")
def exported_metrics(
    postgres_url: str, redis_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, set[str]]:
    """service -> the sample names its running app serves on /metrics.

    Each service runs in its own process with its real datastores, configured through its
    environment variables as in production. Nothing listens at the URLs of the other services:
    their absence changes no metric name.
    """
    key_file = tmp_path_factory.mktemp("keys") / "signing-keys.json"
    SigningKeySet.create().save(key_file)
    nowhere = f"http://127.0.0.1:{free_port()}"
    token_settings = {"JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE, "JWKS_URL": nowhere}
    environments = {
        "auth": {
            "AUTH_MONGO_URL": mongo_url,
            "AUTH_REDIS_URL": redis_url,
            "AUTH_EVENTS_REDIS_URL": redis_url,
            "AUTH_SIGNING_KEYS_FILE": str(key_file),
            "AUTH_ISSUER": ISSUER,
            "AUTH_AUDIENCE": AUDIENCE,
        },
        "users": {
            "USERS_DATABASE_URL": postgres_url,
            "USERS_REDIS_URL": redis_url,
            "USERS_EVENTS_REDIS_URL": redis_url,
            **{f"USERS_{name}": value for name, value in token_settings.items()},
        },
        "gateway": {
            "GATEWAY_AUTH_URL": nowhere,
            "GATEWAY_USERS_URL": nowhere,
            "GATEWAY_METRICS_HOST": "127.0.0.1",
            "GATEWAY_METRICS_PORT": str(free_port()),
            "GATEWAY_EVENTS_REDIS_URL": redis_url,
            **{f"GATEWAY_{name}": value for name, value in token_settings.items()},
        },
    }
    output_dir = tmp_path_factory.mktemp("exported")
    processes = {
        service: subprocess.Popen(
            [sys.executable, str(EXPORTED_METRICS_SCRIPT), service, str(output_dir / service)],
            env={**os.environ, **environment},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for service, environment in environments.items()
    }
    exported = {}
    for service, process in processes.items():
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, f"{service}: {stderr}"
        exported[service] = set(json.loads((output_dir / service).read_text()))
    return exported
