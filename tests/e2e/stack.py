"""The Compose stack under test, driven with ``docker compose`` commands."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatehouse_testing.compose import ComposeProject

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

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        project = ComposeProject(self.compose.compose_command_property, REPO_ROOT, self.env)
        return project.run(*args, check=check, stdin=stdin)

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

    def grant_admin(self, email: str) -> None:
        """Make the account an administrator, as an operator does: auth's admin CLI."""
        created = self.exec(
            "auth", "python", "-m", "gatehouse_auth.cli.admin", "create-admin", email
        )
        assert created.returncode == 0, created.stderr

    def slow_patches_to_users(self, count: int, access_token: str) -> SlowUploads:
        """Start ``count`` PATCH /users/me whose bodies take about 3 s to send, straight to
        users from inside the backend network (the token through stdin)."""
        process = subprocess.Popen(
            [
                *self.compose.compose_command_property,
                "exec",
                "-T",
                "gateway",
                "python",
                "-c",
                _SLOW_PATCHES_SCRIPT,
                str(count),
            ],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None
        # One line, left open: ``communicate`` closes stdin when the answers are collected.
        process.stdin.write(access_token + "\n")
        process.stdin.flush()
        return SlowUploads(process)

    def users_status(self, path: str, access_token: str) -> int:
        """The status users itself answers to ``GET path`` with this token, asked from inside
        the backend network (users has no public port). The token goes through stdin, so it
        is on no command line."""
        completed = self.run(
            "exec", "-T", "gateway", "python", "-c", _USERS_STATUS_SCRIPT, path, stdin=access_token
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


@dataclass
class SlowUploads:
    """Slow uploads running inside the stack; ``finished`` waits for their answers."""

    process: subprocess.Popen[str]

    def finished(self) -> tuple[list[int], list[str]]:
        """Each upload's status and the ``bio`` it answered with, in order."""
        out, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err
        answers: list[list[Any]] = json.loads(out)
        return [int(status) for status, _ in answers], [str(bio) for _, bio in answers]


# Run by the gateway's Python: N concurrent PATCHes whose JSON bodies arrive in chunks over
# about 3 s; prints [[status, bio], ...].
_SLOW_PATCHES_SCRIPT = """
import http.client, json, sys, threading, time
token = sys.stdin.readline().strip()
count = int(sys.argv[1])
answers = [None] * count
def upload(index):
    def body():
        yield b'{"bio": "'
        for _ in range(6):
            time.sleep(0.5)
            yield f"slow-{index} ".encode()
        yield b'"}'
    connection = http.client.HTTPConnection("users", 8002, timeout=30)
    connection.request("PATCH", "/users/me", body=body(), encode_chunked=True, headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json",
        "Transfer-Encoding": "chunked"})
    response = connection.getresponse()
    payload = response.read()
    bio = json.loads(payload).get("bio", "") if response.status == 200 else payload.decode()
    answers[index] = [response.status, bio]
threads = [threading.Thread(target=upload, args=(i,)) for i in range(count)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(json.dumps(answers))
"""
