"""The Compose stack under test, driven with ``docker compose`` commands."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

_USERS_STATUS_SCRIPT = """
import sys, urllib.error, urllib.request
token = sys.stdin.read().strip()
request = urllib.request.Request(
    "http://users:8002" + sys.argv[1], headers={"Authorization": "Bearer " + token}
)
try:
    print(urllib.request.urlopen(request, timeout=10).status)
except urllib.error.HTTPError as error:
    print(error.code)
"""


@dataclass
class Stack:
    compose: Any  # testcontainers' DockerCompose (untyped)
    base_url: str
    # MailDev's web and REST API, published like the gateway.
    mailer_url: str
    secrets_dir: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*self.compose.compose_command_property, *args]
        return subprocess.run(
            command, cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, check=check
        )

    def stop(self, service: str) -> None:
        self.run("stop", service)

    def ensure_running(self, service: str) -> None:
        """Start ``service`` if it is not running and wait until its healthcheck passes."""
        self.run("up", "--detach", "--no-deps", "--no-build", "--wait", service)

    def signal(self, service: str, signal_name: str) -> None:
        self.run("kill", "--signal", signal_name, service)

    def restart(self, service: str) -> None:
        self.run("restart", service)
        self.ensure_running(service)

    def exec(self, service: str, *command: str) -> subprocess.CompletedProcess[str]:
        return self.run("exec", "-T", service, *command, check=False)

    def users_status(self, path: str, access_token: str) -> int:
        """The status users itself answers to ``GET path`` with this token, asked from inside
        the backend network (users has no public port). The token goes through stdin, so it
        is on no command line."""
        completed = subprocess.run(
            [
                *self.compose.compose_command_property,
                "exec",
                "-T",
                "gateway",
                "python",
                "-c",
                _USERS_STATUS_SCRIPT,
                path,
            ],
            cwd=REPO_ROOT,
            env=self.env,
            input=access_token,
            capture_output=True,
            text=True,
            check=True,
        )
        return int(completed.stdout.strip())

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--timestamps").stdout

    def datastore_passwords(self) -> list[str]:
        """The generated datastore passwords (values of the secrets folder's files)."""
        found: list[str] = []
        for name in ("postgres.env", "mongo.env"):
            for line in (self.secrets_dir / name).read_text().splitlines():
                key, _, value = line.partition("=")
                if key.endswith("PASSWORD"):
                    found.append(value)
        redis_conf = (self.secrets_dir / "redis.conf").read_text().splitlines()
        found.extend(
            line.removeprefix("requirepass ")
            for line in redis_conf
            if line.startswith("requirepass ")
        )
        # The services' own Redis accounts: `user NAME on >PASSWORD ...` lines.
        found.extend(
            word.removeprefix(">")
            for line in redis_conf
            if line.startswith("user ")
            for word in line.split()
            if word.startswith(">")
        )
        return found
