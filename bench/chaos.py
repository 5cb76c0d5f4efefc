"""``make chaos``: the Compose stack under a realistic load, with one fault every interval.

1. Starts the repository's ``docker-compose.yml`` under a project of its own (secrets from
   ``scripts/dev-secrets.sh`` in a temporary folder, a free gateway port), seeds users.
2. Measures capacity: closed-loop clients run the mix as fast as the stack serves it (a login
   shed at auth's hashing bound is retried after its Retry-After, and counts once served),
   counted after a warm-up.
3. Runs the mix open-loop at ``CHAOS_LOAD_FRACTION`` of that capacity through the gateway and
   injects the faults of ``FAULTS``, one every ``CHAOS_FAULT_INTERVAL`` seconds, with steady
   phases before the first and after the last.
4. Checks every acknowledged write (lost writes) and every read (stale reads), scans the logs
   for tracebacks, 500s and secrets, and writes ``bench/results/chaos.json`` and
   ``docs/resilience.md`` with a timeline chart per fault.

The mix (per request): 70 % own profile, 15 % another profile, 8 % PATCH of the own profile,
5 % refresh, 2 % password login. Each virtual user sends one request at a time, so the order of
its own writes and reads is known; every PATCH writes a counter into ``bio`` that only grows.

Environment knobs: ``CHAOS_USERS`` (200), ``CHAOS_LOAD_FRACTION`` (0.65),
``CHAOS_FAULT_INTERVAL`` (40 s), ``CHAOS_DOWN_SECONDS`` (5 s), ``CHAOS_FAULTS`` (comma-separated
fault names; all by default), ``CHAOS_OUTPUT`` (results directory), ``CHAOS_DOCS`` (the page).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from gatehouse_common.event_loop_lag import LAG_SAMPLE_INTERVAL_SECONDS
from gatehouse_testing.compose import ComposeProject
from gatehouse_testing.network import free_port

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
USERS = int(os.environ.get("CHAOS_USERS", "200"))
LOAD_FRACTION = float(os.environ.get("CHAOS_LOAD_FRACTION", "0.65"))
FAULT_INTERVAL = float(os.environ.get("CHAOS_FAULT_INTERVAL", "40"))
DOWN_SECONDS = float(os.environ.get("CHAOS_DOWN_SECONDS", "5"))
OUTPUT = Path(os.environ.get("CHAOS_OUTPUT", str(BENCH_DIR / "results")))
DOCS_PAGE = Path(os.environ.get("CHAOS_DOCS", str(REPO / "docs" / "resilience.md")))
CHARTS_DIR = DOCS_PAGE.parent / "images"
CAPACITY_SECONDS = 15.0
# Closed-loop load before the capacity is counted: auth's hashing queue fills in the first
# seconds, and until it has, logins pass at the speed of an idle pool.
CAPACITY_WARMUP_SECONDS = 10.0
CAPACITY_CLIENTS = 48
REQUEST_TIMEOUT_SECONDS = 10.0
# A fault's window ends where the next one starts; the first second is the stack noticing.
NOTICE_SECONDS = 1.0
FAST_ANSWER_MS = 200.0
SERVER_ERRORS_EXPECTED = {502, 503, 504}
# The problem type of auth's answer to a login beyond its password-hashing bound.
OVERLOADED_PROBLEM = "/overloaded"
# The Retry-After of that answer.
SHED_RETRY_AFTER_SECONDS = 1.0
MIX = (
    ("read_own", 0.70),
    ("read_other", 0.15),
    ("patch", 0.08),
    ("refresh", 0.05),
    ("login", 0.02),
)
# Which datastore each operation needs; a fault of another datastore must not touch it.
NEEDS = {
    "read_own": {"postgres"},  # or the cache, when the profile is cached
    "read_other": {"postgres"},
    "patch": {"postgres"},
    "refresh": {"mongo"},
    "login": {"mongo", "redis"},
}
# Which service behind the gateway each operation needs; a restart of another must not touch it.
SERVICE_OF = {
    "read_own": "users",
    "read_other": "users",
    "patch": "users",
    "refresh": "auth",
    "login": "auth",
}
SERVICE_PORTS = {"gateway": 9090, "auth": 8001, "users": 8002}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\"exception\":|\"level\": ?\"error\"")


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the stack ---------------------------------------------------------------------------


@dataclass
class ComposeStack:
    """The repository's Compose stack under a project name of its own."""

    project: str
    workdir: Path
    port: int
    env: dict[str, str]

    @classmethod
    @contextlib.contextmanager
    def started(cls) -> Iterator[ComposeStack]:
        project = f"gatehouse-chaos-{secrets.token_hex(3)}"
        workdir = Path(tempfile.mkdtemp(prefix=f"{project}-"))
        port = free_port()
        env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": project,
            "GATEHOUSE_SECRETS_DIR": str(workdir / "secrets"),
            "GATEHOUSE_BACKEND_SUBNET": f"10.211.{random.randint(1, 254)}.0/24",  # noqa: S311
            "GATEWAY_PORT": str(port),
            "GATEHOUSE_TAG": os.environ.get("GATEHOUSE_TAG", "chaos"),
            # One client address plays every virtual user. Auth reserves a place in the
            # address's counter for each password check in flight, so when a fault slows
            # logins down, 20 (the default) in flight would refuse legitimate ones with 429.
            "AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS": str(USERS * 10),
            "AUTH_REGISTRATION_MAX_PER_ADDRESS": str(USERS * 10),
        }
        stack = cls(project, workdir, port, env)
        try:
            subprocess.run(
                [str(REPO / "scripts" / "dev-secrets.sh")], cwd=REPO, env=env, check=True
            )
            log("building and starting the stack")
            stack.compose("up", "--detach", "--build", "--wait", timeout=900)
            yield stack
        finally:
            (workdir / "stack.log").write_text(stack.logs())
            stack.compose("down", "--volumes", "--remove-orphans", check=False, timeout=300)
            shutil.rmtree(workdir / "secrets", ignore_errors=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        project = ComposeProject(("docker", "compose"), REPO, self.env)
        return project.run(*args, check=check, timeout=timeout)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", check=False, timeout=300).stdout

    def metrics(self, service: str) -> str:
        """The service's Prometheus text, fetched inside its container (no port is published)."""
        script = (
            "import urllib.request;"
            f"print(urllib.request.urlopen('http://127.0.0.1:{SERVICE_PORTS[service]}/metrics',"
            " timeout=5).read().decode())"
        )
        return self.compose("exec", "-T", service, "python", "-c", script, check=False).stdout

    def memory_mib(self) -> dict[str, float]:
        """Resident memory of each of the project's containers, in MiB."""
        listing = subprocess.run(
            [
                *("docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        ).stdout
        memory: dict[str, float] = {}
        for line in listing.splitlines():
            name, _, usage = line.partition(" ")
            if not name.startswith(self.project):
                continue
            service = name.removeprefix(f"{self.project}-").rsplit("-", 1)[0]
            memory[service] = _mebibytes(usage.split("/")[0].strip())
        return memory


def _mebibytes(text: str) -> float:
    units = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "B": 1 / 1024 / 1024}
    for unit, factor in units.items():
        if text.endswith(unit):
            return round(float(text.removesuffix(unit)) * factor, 1)
    return 0.0


# --- faults ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    target: str
    kind: str  # restart | kill | pause

    def inject(self, stack: ComposeStack) -> FaultTimes:
        """Break the target and bring it back; when each step happened (as seen from outside)."""
        if self.kind == "restart":
            stack.compose("restart", self.target)
            back = time.monotonic()
            return FaultTimes(in_force=back, restoring=back, back=back)
        breaking, restoring = ("kill", "-s", "SIGKILL"), ("start",)
        if self.kind == "pause":
            breaking, restoring = ("pause",), ("unpause",)
        stack.compose(*breaking, self.target)
        in_force = time.monotonic()
        time.sleep(DOWN_SECONDS)
        restoring_at = time.monotonic()
        stack.compose(*restoring, self.target)
        return FaultTimes(in_force=in_force, restoring=restoring_at, back=time.monotonic())


@dataclass(frozen=True)
class FaultTimes:
    """The moments of a fault, as seen from outside. A `docker compose` command takes 0.2-0.5 s
    on this machine (the CLI starting, the API call), and the fault takes effect somewhere in
    it: ``in_force`` is when the breaking command returned (killed or frozen for certain),
    ``restoring`` when the restoring one was sent (down or frozen until then for certain),
    ``back`` when it returned."""

    in_force: float
    restoring: float
    back: float


FAULTS = [
    Fault("restart-gateway", "gateway", "restart"),
    Fault("restart-auth", "auth", "restart"),
    Fault("restart-users", "users", "restart"),
    Fault("kill-postgres", "postgres", "kill"),
    Fault("kill-redis", "redis", "kill"),
    Fault("kill-mongo", "mongo", "kill"),
    Fault("pause-postgres", "postgres", "pause"),
    Fault("pause-redis", "redis", "pause"),
]


# --- the load ----------------------------------------------------------------------------


@dataclass
class VirtualUser:
    email: str
    password: str
    id: str = ""
    access_token: str = ""
    refresh_token: str = ""
    version: int = 0  # the last bio counter this user tried to write
    busy: bool = False
    login_shed: bool = False  # the user's last login was shed (503 "overloaded")


@dataclass
class Sample:
    started: float  # monotonic
    op: str
    status: int  # 0: no answer (connection error or timeout)
    latency_ms: float
    # A 503 "overloaded" problem: auth's bounded password hashing shedding work beyond its
    # bound, as the contract asks; load, not the fault, so counted apart from the errors.
    shed: bool = False

    @property
    def failed(self) -> bool:
        return (self.status == 0 or self.status >= 500) and not self.shed

    @property
    def answered(self) -> float:  # monotonic
        return self.started + self.latency_ms / 1000


@dataclass
class Ack:
    """A PATCH that returned 200: from ``acked_at`` on, reads must show ``version`` or newer."""

    acked_at: float
    version: int


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    acks: dict[str, list[Ack]] = field(default_factory=dict)  # profile id -> in ack order
    stale_reads: list[dict[str, Any]] = field(default_factory=list)
    reads_checked: int = 0
    secrets_seen: set[str] = field(default_factory=set)

    def acked_before(self, profile_id: str, moment: float) -> int:
        acks = self.acks.get(profile_id, [])
        index = bisect.bisect_left([ack.acked_at for ack in acks], moment)
        return acks[index - 1].version if index else 0

    def check_read(self, profile_id: str, started: float, body: dict[str, Any]) -> None:
        self.reads_checked += 1
        seen = _version(body.get("bio"))
        expected = self.acked_before(profile_id, started)
        if seen < expected:
            self.stale_reads.append({"profile": profile_id, "seen": seen, "expected": expected})


def _shed(status: int, body: dict[str, Any]) -> bool:
    return status == 503 and str(body.get("type", "")).endswith(OVERLOADED_PROBLEM)


def _version(bio: object) -> int:
    if isinstance(bio, str) and bio.startswith("v") and bio[1:].isdigit():
        return int(bio[1:])
    return 0


class Load:
    """The mix, sent by virtual users that each have one request in flight at most."""

    def __init__(self, session: aiohttp.ClientSession, users: list[VirtualUser]) -> None:
        self.session = session
        self.users = users
        self.recorder = Recorder()
        self.rng = random.Random(1)  # noqa: S311 - a reproducible mix, not a secret
        self.ops = [name for name, _ in MIX]
        self.weights = [weight for _, weight in MIX]
        self.recording = True

    async def request(
        self, op: str, method: str, path: str, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        started = time.monotonic()
        status, body = 0, {}
        try:
            async with self.session.request(method, path, **kwargs) as response:
                status = response.status
                if response.content_type.endswith("json"):
                    body = await response.json(content_type=None)
                else:
                    await response.read()
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
            status = 0
        if self.recording:
            latency = (time.monotonic() - started) * 1000
            self.recorder.samples.append(Sample(started, op, status, latency, _shed(status, body)))
        return status, body

    async def login(self, user: VirtualUser) -> int:
        self.recorder.secrets_seen.add(user.password)
        form = {"grant_type": "password", "username": user.email, "password": user.password}
        status, body = await self.request("login", "POST", "/auth/token", data=form)
        if status == 200:
            self._keep_tokens(user, body)
        user.login_shed = _shed(status, body)
        return status

    def _keep_tokens(self, user: VirtualUser, body: dict[str, Any]) -> None:
        user.access_token, user.refresh_token = body["access_token"], body["refresh_token"]
        self.recorder.secrets_seen.update((user.access_token, user.refresh_token))

    async def one(self, user: VirtualUser, op: str) -> None:
        bearer = {"Authorization": f"Bearer {user.access_token}"}
        status = await self._send(user, op, bearer)
        if status == 401:
            # The login ended (a revocation reached the edge): start a new one.
            await self.login(user)

    async def _send(self, user: VirtualUser, op: str, bearer: dict[str, str]) -> int:
        if op == "read_own":
            started = time.monotonic()
            status, body = await self.request(op, "GET", "/users/me", headers=bearer)
            if status == 200:
                self.recorder.check_read(user.id, started, body)
        elif op == "read_other":
            other = self.rng.choice(self.users)
            started = time.monotonic()
            status, body = await self.request(op, "GET", f"/users/{other.id}", headers=bearer)
            if status == 200:
                self.recorder.check_read(other.id, started, body)
        elif op == "patch":
            user.version += 1
            version = user.version
            status, _ = await self.request(
                op, "PATCH", "/users/me", json={"bio": f"v{version}"}, headers=bearer
            )
            if status == 200:
                acks = self.recorder.acks.setdefault(user.id, [])
                acks.append(Ack(time.monotonic(), version))
        elif op == "refresh":
            form = {"grant_type": "refresh_token", "refresh_token": user.refresh_token}
            status, body = await self.request(op, "POST", "/auth/token", data=form)
            if status == 200:
                self._keep_tokens(user, body)
            elif status in (0, 400) or status >= 500:
                # A refresh that got no answer may still have spent the token; presenting it
                # again would be reuse and end the login. Log in again instead.
                await self.login(user)
        else:
            status = await self.login(user)
        return status

    async def run_user(self, user: VirtualUser) -> None:
        user.busy = True
        try:
            await self.one(user, self.rng.choices(self.ops, self.weights)[0])
        finally:
            user.busy = False

    async def closed_loop(self, clients: int, seconds: float, warmup: float = 0.0) -> float:
        """Requests per second of the mix served with ``clients`` always busy, counted for
        ``seconds`` after ``warmup`` seconds of the same load: the stack's capacity.

        A login shed at auth's password-hashing bound is tried again after its Retry-After, as
        a well-behaved client does, and counts once it is served. Counted as done instead, the
        logins turned away (61 in one 16-second measurement) freed the CPU their hashes would
        have taken: the rate measured was not the mix's, and "65 % of capacity" kept auth's
        hashing full and shedding through the whole run (1,045 logins shed in one run).
        """
        counted_from = time.monotonic() + warmup
        deadline = counted_from + seconds
        done = 0

        async def client(index: int) -> None:
            nonlocal done
            mine = self.users[index::clients]
            while time.monotonic() < deadline:
                user = self.rng.choice(mine)
                await self.run_user(user)
                while user.login_shed and time.monotonic() < deadline:
                    await asyncio.sleep(SHED_RETRY_AFTER_SECONDS)
                    await self.login(user)
                if not user.login_shed and time.monotonic() >= counted_from:
                    done += 1

        clients = min(clients, len(self.users))
        await asyncio.gather(*(client(index) for index in range(clients)))
        return done / seconds

    async def open_loop(self, rate: float, seconds: float) -> int:
        """Start requests at ``rate`` per second for ``seconds``; return how many found no idle
        user (the stack was too slow for the offered load)."""
        deadline = time.monotonic() + seconds
        next_start = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        backlogged = 0
        while next_start < deadline:
            idle = [user for user in self.users if not user.busy]
            if idle:
                task = asyncio.create_task(self.run_user(self.rng.choice(idle)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:
                backlogged += 1
            next_start += self.rng.expovariate(rate)
            await asyncio.sleep(max(0.0, next_start - time.monotonic()))
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_SECONDS * 2)
        return backlogged


async def with_retries(attempt: Callable[[], Awaitable[int]], what: str) -> None:
    """Seeding goes through throttles and bounded hashing: wait and try again."""
    seen: Counter[int] = Counter()
    for _ in range(60):
        status = await attempt()
        if status in (200, 201, 204):
            return
        seen[status] += 1
        await asyncio.sleep(1 if status in (0, 429, 502, 503, 504) else 0.2)
    raise RuntimeError(f"{what} kept failing: {dict(seen)}")


async def seed(load: Load) -> None:
    log(f"registering and logging in {len(load.users)} users")
    semaphore = asyncio.Semaphore(4)

    async def prepare(user: VirtualUser) -> None:
        async with semaphore:

            async def register() -> int:
                body = {"email": user.email, "password": user.password}
                status, answer = await load.request("seed", "POST", "/auth/register", json=body)
                if status == 201:
                    user.id = answer["id"]
                return 201 if status in (201, 409) and user.id else status

            await with_retries(register, "registration")
            await with_retries(lambda: load.login(user), "login")
            bearer = {"Authorization": f"Bearer {user.access_token}"}
            await with_retries(
                lambda: _status(load.request("seed", "GET", "/users/me", headers=bearer)),
                "first profile read",
            )

    await asyncio.gather(*(prepare(user) for user in load.users))


async def _status(pending: Awaitable[tuple[int, dict[str, Any]]]) -> int:
    status, _ = await pending
    return status


async def final_check(load: Load) -> list[dict[str, Any]]:
    """Every acknowledged write must still be there: the profile's counter is at least the
    last acknowledged one (a write that got no answer may have landed too)."""
    lost = []
    for user in load.users:
        acked = load.recorder.acks.get(user.id)
        if not acked:
            continue
        body: dict[str, Any] = {}

        async def read(user: VirtualUser = user) -> int:
            nonlocal body
            bearer = {"Authorization": f"Bearer {user.access_token}"}
            status, body = await load.request("final", "GET", "/users/me", headers=bearer)
            if status == 401:
                # The login was revoked: a refresh whose answer was lost, retried with the
                # spent token, is reuse and ends the login (the contract). Log in again; a
                # refused login is the status to report.
                login = await load.login(user)
                return status if login == 200 else login
            return status

        await with_retries(read, "final read")
        if _version(body.get("bio")) < acked[-1].version:
            lost.append({"profile": user.id, "seen": body.get("bio"), "acked": acked[-1].version})
    return lost


# --- measurements around the load --------------------------------------------------------


class MemorySampler:
    """``docker stats`` every few seconds in a thread, so the event loop is not held up."""

    def __init__(self, stack: ComposeStack, origin: float, every: float = 5.0) -> None:
        self.stack, self.origin, self.every = stack, origin, every
        self.series: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            moment = round(time.monotonic() - self.origin, 1)
            self.series.append((moment, self.stack.memory_mib()))
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=90)


# An idle process sampling its loop as the services do (four times a second, uvloop): what
# the machine alone costs a loop that has nothing to do, the floor of the services' lag.
_CONTROL_LAG_SCRIPT = """
import asyncio, json, signal, uvloop
from prometheus_client import REGISTRY
from gatehouse_common.event_loop_lag import sample_event_loop_lag

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sampler = asyncio.create_task(sample_event_loop_lag(0.25, float("inf")))
    await stop.wait()
    sampler.cancel()
    print(json.dumps({
        sample.labels["le"]: sample.value
        for metric in REGISTRY.collect() if metric.name == "event_loop_lag_seconds"
        for sample in metric.samples if sample.name.endswith("_bucket")
    }))

uvloop.run(main())
"""


class ControlLagSampler:
    """The event-loop lag of an idle process on this machine while the block runs."""

    def __init__(self) -> None:
        self.buckets: dict[float, float] = {}
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ControlLagSampler:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CONTROL_LAG_SCRIPT], stdout=subprocess.PIPE, text=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        self._process.terminate()
        output, _ = self._process.communicate(timeout=30)
        if output.strip():
            self.buckets = {float(le): count for le, count in json.loads(output).items()}


def loop_lag_buckets(stack: ComposeStack) -> dict[str, dict[float, float]]:
    """Cumulative event-loop lag histogram buckets of each service (empty if not exported)."""
    pattern = re.compile(r'^event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.MULTILINE)
    found: dict[str, dict[float, float]] = {}
    for service in SERVICE_PORTS:
        buckets = {float(le): float(count) for le, count in pattern.findall(stack.metrics(service))}
        if buckets:
            found[service] = buckets
    return found


def gc_pauses(stack: ComposeStack) -> dict[str, dict[str, dict[str, float]]]:
    """Per service and generation, its cyclic garbage collections since it last started (a
    restarted service counts from its restart): how many, the seconds they held the process
    in all (wall clock), and how many held it over 50 ms (``python_gc_pause_seconds``)."""
    sample = re.compile(r'^python_gc_pause_seconds_(count|sum)\{generation="(\d)"\} (\S+)$', re.M)
    within = re.compile(
        r'^python_gc_pause_seconds_bucket\{generation="(\d)",le="0\.05"\} (\S+)$', re.M
    )
    found: dict[str, dict[str, dict[str, float]]] = {}
    for service in SERVICE_PORTS:
        text = stack.metrics(service)
        figures: dict[str, dict[str, float]] = {}
        for kind, generation, value in sample.findall(text):
            figures.setdefault(generation, {})[kind] = float(value)
        short = dict(within.findall(text))
        if figures:
            found[service] = {
                generation: {
                    "collections": figure["count"],
                    "seconds": round(figure["sum"], 3),
                    "over_50_ms": figure["count"] - float(short.get(generation, 0.0)),
                }
                for generation, figure in sorted(figures.items())
                if figure.get("count")
            }
    return found


def quantile_from_buckets(
    before: dict[float, float], after: dict[float, float], quantile: float
) -> float | None:
    """The bucket bound under which ``quantile`` of the observations between two scrapes fell."""
    bounds = sorted(after)
    deltas = [after[bound] - before.get(bound, 0.0) for bound in bounds]
    if not deltas or deltas[-1] <= 0:
        return None
    for bound, cumulative in zip(bounds, deltas, strict=True):
        if cumulative >= quantile * deltas[-1]:
            return bound
    return bounds[-1]


def scan_logs(text: str, secrets_seen: set[str]) -> dict[str, int]:
    statuses = Counter(re.findall(r'"status": ?(5\d\d)', text))
    return {
        "tracebacks": len(TRACEBACK.findall(text)),
        "logged_500s": sum(count for status, count in statuses.items() if status == "500"),
        "secrets_in_logs": sum(1 for secret in secrets_seen if secret and secret in text),
        # Logins auth ended because a spent refresh token came back (see final_check).
        "refresh_reuse_revocations": text.count('"refresh_token_reuse_detected"'),
        "log_lines": text.count("\n"),
    }


def lag_warnings(text: str) -> dict[str, dict[str, float]]:
    """Per service, its ``event_loop_lagged`` warnings over the run: how many, the median lag,
    and the median share of the lagging interval the loop's thread spent on the CPU (near 1:
    the loop was busy with its own work; near 0: it waited, for a CPU the machine did not give
    it or in a system call)."""
    found: dict[str, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if '"event_loop_lagged"' not in line:
            continue
        container, _, record = line.partition("|")
        with contextlib.suppress(ValueError):
            fields = json.loads(record)
            lag, cpu = float(fields["lag_seconds"]), float(fields["loop_cpu_seconds"])
            # the sampler's interval plus the lag: the wall-clock time the CPU share is of
            share = cpu / (LAG_SAMPLE_INTERVAL_SECONDS + lag)
            found.setdefault(container.strip().rsplit("-", 1)[0], []).append((lag, share))
    return {
        service: {
            "warnings": len(rows),
            "median_lag_ms": round(statistics.median(lag for lag, _ in rows) * 1000, 1),
            "median_loop_cpu_share": round(statistics.median(share for _, share in rows), 2),
        }
        for service, rows in sorted(found.items())
    }


# --- analysis ----------------------------------------------------------------------------


@dataclass
class FaultWindow:
    fault: Fault
    started: float
    times: FaultTimes
    ended: float

    @property
    def back(self) -> float:
        return self.times.back


def summarise(window: FaultWindow, samples: list[Sample]) -> dict[str, Any]:
    # A window holds the answers given in it: a request sent just before the next fault and
    # failed by it is that fault's error, not a late error of this one.
    inside = [s for s in samples if window.started <= s.answered < window.ended]
    target = window.fault.target
    if window.fault.kind == "restart":
        # A restart's errors are those of the requests that need the restarted service (all
        # of them for the gateway); others failing meanwhile are reported apart, as for the
        # datastores: a login that timed out in an overloaded run is not users' restart.
        affected = [s for s in inside if target in ("gateway", SERVICE_OF[s.op])]
        others = [s for s in inside if target not in ("gateway", SERVICE_OF[s.op])]
    else:
        # The same for a datastore: a request that does not need it failing meanwhile (or after
        # it is back) is not its error nor its recovery, but one of the others' errors.
        affected = [s for s in inside if target in NEEDS.get(s.op, {target})]
        others = [s for s in inside if target not in NEEDS.get(s.op, {target})]
    errors = [s for s in affected if s.failed]
    statuses = Counter("503 shed" if s.shed else str(s.status) for s in inside)
    error_seconds = {int(s.answered - window.started) for s in errors}
    summary: dict[str, Any] = {
        "fault": window.fault.name,
        "requests": len(inside),
        "statuses": dict(sorted(statuses.items())),
        "error_seconds": len(error_seconds),
        "error_span_seconds": round(
            max((s.answered for s in errors), default=window.started)
            - min((s.answered for s in errors), default=window.started),
            2,
        ),
        "slowest_ms": round(max((s.latency_ms for s in inside), default=0.0), 1),
    }
    summary["errors_of_requests_not_needing_it"] = sum(1 for s in others if s.failed)
    if window.fault.kind != "restart":
        # "Down" is the time the datastore was certainly killed or frozen, from the end of the
        # breaking command to the start of the restoring one: the commands' own time is not
        # counted as the fault's, on either side. (Until 2026-12-03 it ran from the start of the
        # breaking command to the end of the restoring one: the first second then began about
        # 0.4 s before PostgreSQL's processes died, and reads sent while `unpause` was thawing
        # it counted as sent to a frozen PostgreSQL.)
        times = window.times
        down = [s for s in inside if times.in_force + NOTICE_SECONDS <= s.started < times.restoring]
        # The target's answers are those to requests that need the datastore: a 503 or a
        # cached read. The others are judged by their errors (none allowed); their slowest is
        # shown for comparison, logins being slow by design (Argon2) whatever is down.
        needing = [s for s in down if target in NEEDS.get(s.op, {target})]
        unaffected = [s for s in down if target not in NEEDS.get(s.op, {target})]
        summary["slowest_needing_it_after_first_second_ms"] = round(
            max((s.latency_ms for s in needing), default=0.0), 1
        )
        summary["slowest_not_needing_it_after_first_second_ms"] = round(
            max((s.latency_ms for s in unaffected), default=0.0), 1
        )
        summary["breaking_command_seconds"] = round(times.in_force - window.started, 2)
        summary["restoring_command_seconds"] = round(times.back - times.restoring, 2)
        late = [s.answered for s in errors if s.answered >= window.back]
        summary["recovery_seconds"] = round(max(late) - window.back, 2) if late else 0.0
    return summary


def chart(window: FaultWindow, samples: list[Sample], path: Path) -> None:
    inside = [s for s in samples if window.started - 5 <= s.started < window.ended]
    figure, axes = plt.subplots(figsize=(8, 3.2))
    groups = {
        "2xx/3xx": ([s for s in inside if 0 < s.status < 400], "tab:green"),
        "4xx": ([s for s in inside if 400 <= s.status < 500], "tab:orange"),
        "5xx": ([s for s in inside if s.status >= 500 and not s.shed], "tab:red"),
        "503 shed (load)": ([s for s in inside if s.shed], "tab:purple"),
        "no answer": ([s for s in inside if s.status == 0], "black"),
    }
    for label, (group, colour) in groups.items():
        if group:
            axes.scatter(
                [s.started - window.started for s in group],
                [max(s.latency_ms, 0.1) for s in group],
                s=4,
                c=colour,
                label=f"{label} ({len(group)})",
            )
    axes.axvspan(0, window.back - window.started, color="grey", alpha=0.15, label="fault")
    axes.set_yscale("log")
    axes.set_xlabel("seconds since the fault")
    axes.set_ylabel("latency (ms)")
    axes.set_title(window.fault.name)
    axes.legend(loc="upper right", fontsize=7, markerscale=3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def memory_chart(series: list[tuple[float, dict[str, float]]], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(8, 3.2))
    services = sorted({name for _, sample in series for name in sample})
    for service in services:
        points = [(moment, sample[service]) for moment, sample in series if service in sample]
        axes.plot([p[0] for p in points], [p[1] for p in points], label=service)
    axes.set_xlabel("seconds since the load began")
    axes.set_ylabel("memory (MiB)")
    axes.legend(loc="upper left", fontsize=7, ncol=4)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def targets(result: dict[str, Any]) -> dict[str, bool]:
    faults = result["faults"]
    restarts = [f for f in faults if f["fault"].startswith("restart-")]
    datastores = [f for f in faults if not f["fault"].startswith("restart-")]
    lag = [v for v in result["event_loop_lag_p99_ms_steady"].values() if v is not None]
    return {
        "restart_errors_at_most_3_s": all(f["error_span_seconds"] <= 3 for f in restarts),
        "datastore_answers_within_200_ms": all(
            f["slowest_needing_it_after_first_second_ms"] <= FAST_ANSWER_MS for f in datastores
        ),
        "datastore_recovery_at_most_3_s": all(f["recovery_seconds"] <= 3 for f in datastores),
        "requests_not_needing_it_unaffected": all(
            f["errors_of_requests_not_needing_it"] == 0 for f in faults
        ),
        "no_lost_writes": result["lost_writes"] == 0,
        "no_stale_reads": result["stale_reads"] == 0,
        "no_500s": result["unexpected_5xx"] == 0 and result["logs"]["logged_500s"] == 0,
        "no_tracebacks": result["logs"]["tracebacks"] == 0,
        "no_secrets_in_logs": result["logs"]["secrets_in_logs"] == 0,
        "event_loop_lag_p99_below_50_ms": bool(lag) and all(v < 50 for v in lag),
    }


# --- the run -----------------------------------------------------------------------------


async def drive(stack: ComposeStack, faults: list[Fault]) -> dict[str, Any]:
    users = [
        VirtualUser(f"chaos-{index}-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18))
        for index in range(USERS)
    ]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=USERS + 10)
    async with aiohttp.ClientSession(stack.base_url, timeout=timeout, connector=connector) as http:
        load = Load(http, users)
        load.recording = False
        await seed(load)
        log("measuring capacity")
        capacity = await load.closed_loop(
            CAPACITY_CLIENTS, CAPACITY_SECONDS, warmup=CAPACITY_WARMUP_SECONDS
        )
        rate = capacity * LOAD_FRACTION
        log(f"capacity {capacity:.0f} req/s; offering {rate:.0f} req/s")
        load.recording = True
        origin = time.monotonic()
        windows: list[FaultWindow] = []

        lag_before = await asyncio.to_thread(loop_lag_buckets, stack)
        with MemorySampler(stack, origin) as memory:
            with ControlLagSampler() as control_lag:
                steady = asyncio.create_task(load.open_loop(rate, FAULT_INTERVAL))
                backlogged = await steady
            lag_after = await asyncio.to_thread(loop_lag_buckets, stack)
            running = asyncio.create_task(load.open_loop(rate, FAULT_INTERVAL * (len(faults) + 1)))
            for fault in faults:
                started = time.monotonic()
                log(f"fault: {fault.name}")
                times = await asyncio.to_thread(fault.inject, stack)
                await asyncio.sleep(max(0.0, started + FAULT_INTERVAL - time.monotonic()))
                windows.append(FaultWindow(fault, started, times, time.monotonic()))
            backlogged += await running
        lost = await final_check(load)
        collections = await asyncio.to_thread(gc_pauses, stack)

    samples = load.recorder.samples
    dump_for_analysis(stack.workdir, samples, windows)
    steady_samples = [s for s in samples if s.started < origin + FAULT_INTERVAL]
    stack_logs = stack.logs()
    result: dict[str, Any] = {
        "users": USERS,
        "capacity_rps": round(capacity, 1),
        "offered_rps": round(rate, 1),
        "load_fraction": LOAD_FRACTION,
        "fault_interval_seconds": FAULT_INTERVAL,
        "down_seconds": DOWN_SECONDS,
        "requests": len(samples),
        "backlogged_starts": backlogged,
        "steady_errors": sum(1 for s in steady_samples if s.failed),
        "load_shed": sum(1 for s in samples if s.shed),
        "faults": [summarise(window, samples) for window in windows],
        "lost_writes": len(lost),
        "lost_write_examples": lost[:5],
        "acknowledged_writes": sum(len(acks) for acks in load.recorder.acks.values()),
        "reads_checked": load.recorder.reads_checked,
        "stale_reads": len(load.recorder.stale_reads),
        "stale_read_examples": load.recorder.stale_reads[:5],
        "unexpected_5xx": sum(
            1 for s in samples if s.status >= 500 and s.status not in SERVER_ERRORS_EXPECTED
        ),
        "logs": scan_logs(stack_logs, load.recorder.secrets_seen),
        "event_loop_lag_warnings": lag_warnings(stack_logs),
        "gc_pauses": collections,
        "memory_mib": [{"t": moment, **sample} for moment, sample in memory.series],
        "event_loop_lag_p99_ms_steady": {
            service: _ms(quantile_from_buckets(lag_before.get(service, {}), buckets, 0.99))
            for service, buckets in lag_after.items()
        },
        "event_loop_lag_p99_ms_steady_idle_process": _ms(
            quantile_from_buckets({}, control_lag.buckets, 0.99)
        ),
    }
    result["targets"] = targets(result)
    CHARTS_DIR.mkdir(parents=True, exist_ok=True)
    for window in windows:
        chart(window, samples, CHARTS_DIR / f"chaos-{window.fault.name}.png")
    memory_chart(memory.series, CHARTS_DIR / "chaos-memory.png")
    return result


def dump_for_analysis(workdir: Path, samples: list[Sample], windows: list[FaultWindow]) -> None:
    """Every sample and fault window on the wall clock, next to stack.log, to read one against
    the other (the services log wall-clock times)."""
    to_wall = time.time() - time.monotonic()
    with (workdir / "samples.jsonl").open("w") as out:
        for window in windows:
            fault = {"fault": window.fault.name, "started": window.started + to_wall}
            times = {name: value + to_wall for name, value in asdict(window.times).items()}
            out.write(json.dumps({**fault, **times}) + "\n")
        for s in samples:
            row = {"t": s.started + to_wall, "op": s.op, "status": s.status, "ms": s.latency_ms}
            out.write(json.dumps({**row, "shed": s.shed}) + "\n")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _command_seconds(fault: dict[str, Any]) -> str:
    if "breaking_command_seconds" not in fault:
        return "—"
    return f"{fault['breaking_command_seconds']}, {fault['restoring_command_seconds']}"


def write_page(result: dict[str, Any]) -> None:
    """The generated part of docs/resilience.md, between its markers."""
    rows = [
        "| fault | requests | statuses | seconds with errors | error span (s) | slowest (ms) "
        "| slowest needing it, down after 1 s (ms) | slowest of the others (ms) "
        "| errors of the others | recovery (s) | breaking, restoring command (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fault in result["faults"]:
        statuses = ", ".join(f"{status}: {count}" for status, count in fault["statuses"].items())
        rows.append(
            f"| {fault['fault']} | {fault['requests']} | {statuses} | {fault['error_seconds']} "
            f"| {fault['error_span_seconds']} | {fault['slowest_ms']} "
            f"| {fault.get('slowest_needing_it_after_first_second_ms', '—')} "
            f"| {fault.get('slowest_not_needing_it_after_first_second_ms', '—')} "
            f"| {fault['errors_of_requests_not_needing_it']} "
            f"| {fault.get('recovery_seconds', '—')} "
            f"| {_command_seconds(fault)} |"
        )
    checks = "\n".join(
        f"- {'met' if met else '**missed**'}: {name.replace('_', ' ')}"
        for name, met in result["targets"].items()
    )
    charts = "\n\n".join(
        f"![{fault['fault']}](images/chaos-{fault['fault']}.png)" for fault in result["faults"]
    )
    generated = f"""<!-- chaos:begin (written by `make chaos`; edit bench/chaos.py instead) -->
Run of {time.strftime("%Y-%m-%d")}: {result["users"]} users, capacity {result["capacity_rps"]} \
req/s, offered {result["offered_rps"]} req/s ({result["load_fraction"]:.0%}), one fault every \
{result["fault_interval_seconds"]:g} s, datastores down for {result["down_seconds"]:g} s.
{result["requests"]} requests; {result["backlogged_starts"]} scheduled starts found all \
{result["users"]} users busy (the stack slower than the load offered: the machine's speed \
moves by 2x, and a run whose capacity was measured in a fast phase is overloaded in a slow \
one); {result["acknowledged_writes"]} acknowledged writes, \
{result["lost_writes"]} lost; {result["reads_checked"]} reads checked, \
{result["stale_reads"]} stale; {result["unexpected_5xx"]} 5xx other than 502/503/504; \
{result["load_shed"]} logins shed at auth's password-hashing bound ("503 shed": load, not \
a fault, so not counted as errors; {result["steady_errors"]} errors in the steady phases); \
{result["logs"]["tracebacks"]} tracebacks and {result["logs"]["secrets_in_logs"]} secrets in \
{result["logs"]["log_lines"]} log lines; event-loop lag p99 in the steady phase (ms): \
{result["event_loop_lag_p99_ms_steady"] or "not exported"}, and \
{result["event_loop_lag_p99_ms_steady_idle_process"]} ms for an idle process sampling its \
loop the same way on the same machine meanwhile. Lag warnings (above 100 ms) over the whole \
run, with the median share of the lagging interval that the loop's thread was on the CPU \
(near 1: busy with its own work; near 0: waiting for a CPU): \
{result["event_loop_lag_warnings"] or "none"}. Garbage collections per service since its \
last start (count, seconds in all, how many over 50 ms): {result["gc_pauses"] or "not exported"}.

{chr(10).join(rows)}

Targets:
{checks}

{charts}

![memory per container](images/chaos-memory.png)
<!-- chaos:end -->"""
    page = DOCS_PAGE.read_text() if DOCS_PAGE.exists() else "# Resilience\n\n"
    marked = re.compile(r"<!-- chaos:begin.*?<!-- chaos:end -->", re.DOTALL)
    page = (
        marked.sub(lambda _: generated, page) if marked.search(page) else f"{page}\n{generated}\n"
    )
    DOCS_PAGE.write_text(page)


def main() -> int:
    chosen = os.environ.get("CHAOS_FAULTS")
    faults = [f for f in FAULTS if not chosen or f.name in chosen.split(",")]
    with ComposeStack.started() as stack:
        result = asyncio.run(drive(stack, faults))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "chaos.json").write_text(json.dumps(result, indent=2) + "\n")
    write_page(result)
    missed = [name for name, met in result["targets"].items() if not met]
    log(f"wrote {OUTPUT / 'chaos.json'} and {DOCS_PAGE}; targets missed: {missed or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
