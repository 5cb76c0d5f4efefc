"""Renders every overlay once per session; the checks live in k8s_checks.py beside this file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.k8s_checks import (
    DEV_SECRETS_DIR,
    K8S_ROOT,
    Manifest,
    generate_dev_secrets,
    overlays,
    render,
)


@pytest.fixture(scope="session")
def dev_secrets() -> Path:
    """The dev overlay's git-ignored secrets folder, filled as `make k8s-render` does.

    So the tests pass on a fresh clone; existing files are kept.
    """
    generate_dev_secrets()
    return DEV_SECRETS_DIR


@pytest.fixture(scope="session")
def rendered(dev_secrets: Path) -> dict[str, list[Manifest]]:
    """overlay name -> its rendered objects."""
    return {name: render(K8S_ROOT / "overlays" / name) for name in overlays()}
