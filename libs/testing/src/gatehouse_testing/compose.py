"""``docker compose`` against one project of the repository's Compose stack, for the
end-to-end tests (tests/e2e) and the chaos run (bench/chaos.py). Standard library only."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ComposeProject:
    """``command`` is ``docker compose`` with its global options, run in ``cwd``; ``env``
    names the project (``COMPOSE_PROJECT_NAME``) and its settings."""

    command: Sequence[str]
    cwd: Path
    env: Mapping[str, str]

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose ARGS``, its output captured as text; ``stdin`` is its input (a
        token given there is on no command line)."""
        return subprocess.run(  # noqa: S603 - docker compose and the caller's fixed arguments
            [*self.command, *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )
