"""``make bench``: the stack on loopback, each scenario's variants run alternately with wrk.

Datastores run as throwaway containers with published loopback ports; auth, users, the
gateways and nginx run as host processes, one per variant, all started once and idle while
another variant is measured. Results go to ``bench/results/latest.json`` and ``latest.md``.
Everything is stopped and removed at exit, also on failure or Ctrl-C.

Environment knobs: ``BENCH_DURATION`` (seconds per wrk run, default 8), ``BENCH_ROUNDS``
(alternating rounds, default 3), ``BENCH_OUTPUT`` (results directory).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import micro  # bench/micro.py: this directory is on sys.path when run as a script

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ALEMBIC_INI = REPO / "services" / "users" / "alembic.ini"
DURATION = int(os.environ.get("BENCH_DURATION", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
OUTPUT = Path(os.environ.get("BENCH_OUTPUT", str(BENCH_DIR / "results")))
HIGH_CONCURRENCY = 64
ISSUER = "http://127.0.0.1/auth"
AUDIENCE = "gatehouse-api"
PASSWORD = "bench-password-0123"  # noqa: S105 - a throwaway account of a throwaway stack
SEED_USERS = 20
READ_ROUTE = "/users/{profile_id}"
GATEWAY_TRANSPORTS = ("aiohttp", "httpx2")
DEFAULT_GATEWAY = "gateway-aiohttp"
FLOOR = "floor"  # bench/floor.py: a bare FastAPI app on the same server settings
JWKS_PATH = "/auth/.well-known/jwks.json"
SERVICE_PROCESSES = ("auth", "users", DEFAULT_GATEWAY, FLOOR)
# Targets, as multiples of the floor measured in the same run (docs/performance.md says why).
CPU_X_FLOOR_MAX = 3.0
CPU_X_FLOOR_MAX_HEAVY = 6.0  # the proxied read and users' reads do real work per request
GATEWAY_ADDED_P50_MS_MAX = 0.5
GATEWAY_THROUGHPUT_VS_DIRECT_MIN = 0.90
VERIFICATION_X_RAW_RS256_MAX = 2.5
REVOCATION_CHECK_US_MAX = 5.0
RSS_MIB_MAX = 150.0
# Which scenarios to run (comma-separated); all by default. For working on one of them.
SCENARIOS = set(os.environ.get("BENCH_SCENARIOS", "micro,gateway,cache,login,profile").split(","))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout} s")


@dataclass
class Stack:
    """What was started, so that ``stop`` can take all of it down again."""

    workdir: Path
    containers: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    # How the services reach the datastores ("container addresses", or "published ports"
    # where this host cannot reach Docker's bridge): part of what a run measured.
    datastores_via: str = ""

    def container(self, name: str, image: str, port: int, *args: str) -> int:
        full_name = f"gatehouse-bench-{os.getpid()}-{name}"
        subprocess.run(
            [
                *("docker", "run", "-d", "--rm", "--name", full_name),
                *("-p", f"127.0.0.1::{port}", *args, image),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        self.containers.append(full_name)
        mapped = subprocess.run(
            ["docker", "port", full_name, f"{port}/tcp"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()[0]
        return int(mapped.rsplit(":", 1)[1])

    def process(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_file = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def service(self, name: str, package: str, env: dict[str, str]) -> str:
        """Start a service as its image does (``python -m <package>``) on a free port."""
        port = free_port()
        self.ports[name] = port
        self.process(
            name,
            [sys.executable, "-m", package, "--host", "127.0.0.1", "--port", str(port)],
            env,
        )
        return f"http://127.0.0.1:{port}"

    def cpu_seconds(self, name: str) -> float:
        """CPU time so far of a started process, or of every process of a started container
        (PostgreSQL runs a backend per connection)."""
        if name in self.processes:
            return cpu_seconds(self.processes[name].pid)
        return container_cpu_seconds(f"gatehouse-bench-{os.getpid()}-{name}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.containers:
            subprocess.run(
                ["docker", "rm", "-f", *self.containers],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
                timeout=60,
            )


def ready(url: str) -> Callable[[], bool]:
    return lambda: http("GET", url + "/ready", timeout=2)[0] == 200


def start_datastores(stack: Stack) -> dict[str, str]:
    postgres = stack.container(
        "postgres",
        os.environ.get("POSTGRES_IMAGE", "postgres:16-alpine"),
        5432,
        "-e",
        "POSTGRES_USER=bench",
        "-e",
        "POSTGRES_PASSWORD=bench",
        "-e",
        "POSTGRES_DB=users",
    )
    redis = stack.container("redis", os.environ.get("REDIS_IMAGE", "redis:7-alpine"), 6379)
    mongo = stack.container("mongo", os.environ.get("MONGO_IMAGE", "mongo:7"), 27017)

    def postgres_accepts() -> bool:
        return (
            subprocess.run(
                # Over TCP: the image's first start serves initdb on its socket only, and the
                # container's address (``direct_address``) is tried once, right after this.
                [
                    *("docker", "exec", stack.containers[0]),
                    *("pg_isready", "-q", "-h", "127.0.0.1", "-U", "bench"),
                ],
                check=False,
                timeout=10,
            ).returncode
            == 0
        )

    wait_until("postgres", postgres_accepts)
    # The services reach the datastores as in a deployment, at the containers' own addresses
    # on Docker's bridge, where this host reaches it (Linux; PostgreSQL, listening by now,
    # tells). Elsewhere (Docker Desktop) through the ports published on 127.0.0.1, which
    # docker-proxy serves: a userland process copying every byte between two sockets, which
    # added 80 µs to each Redis round trip here, took a tenth of a core under load, and had
    # users wait on its cache while the gateway's requests were in flight
    # (docs/performance.md).
    postgres_ip = container_ip(stack.containers[0])
    if postgres_ip and _accepts(postgres_ip, 5432):
        stack.datastores_via = "container addresses"
        hosts = {
            "postgres": (postgres_ip, 5432),
            "redis": (container_ip(stack.containers[1]), 6379),
            "mongo": (container_ip(stack.containers[2]), 27017),
        }
    else:
        stack.datastores_via = "published ports"
        hosts = {
            "postgres": ("127.0.0.1", postgres),
            "redis": ("127.0.0.1", redis),
            "mongo": ("127.0.0.1", mongo),
        }
    for name in ("redis", "mongo"):
        host, port = hosts[name]
        wait_until(f"{name} at {host}:{port}", lambda host=host, port=port: _accepts(host, port))  # type: ignore[misc]
    at = {name: f"{host}:{port}" for name, (host, port) in hosts.items()}
    return {
        "database_url": f"postgresql+asyncpg://bench:bench@{at['postgres']}/users",
        "redis_url": f"redis://{at['redis']}/0",
        "mongo_url": f"mongodb://{at['mongo']}",
    }


def container_ip(container: str) -> str:
    """The container's address on Docker's bridge ("" in a network mode without one)."""
    return subprocess.run(
        [
            *("docker", "inspect", "-f"),
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def start_services(stack: Stack, stores: dict[str, str]) -> dict[str, str]:
    """auth, three users processes (the variants), two gateways and nginx; their URLs."""
    keys = stack.workdir / "signing-keys.json"
    subprocess.run(
        [sys.executable, "-m", "gatehouse_auth.cli.keys", "generate", "--file", str(keys)],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
    )
    urls: dict[str, str] = {}
    urls["auth"] = stack.service(
        "auth",
        "gatehouse_auth",
        {
            "AUTH_MONGO_URL": stores["mongo_url"],
            "AUTH_REDIS_URL": stores["redis_url"],
            # The event channel (outbox relay, erasure consumer, revocation feed): same Redis.
            "AUTH_EVENTS_REDIS_URL": stores["redis_url"],
            "AUTH_SIGNING_KEYS_FILE": str(keys),
            "AUTH_ISSUER": ISSUER,
            "AUTH_AUDIENCE": AUDIENCE,
        },
    )
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "upgrade", "head"],
        check=True,
        timeout=120,
        env={**os.environ, "USERS_DATABASE_URL": stores["database_url"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until("auth", ready(urls["auth"]))
    users_env = {
        "USERS_DATABASE_URL": stores["database_url"],
        "USERS_REDIS_URL": stores["redis_url"],
        "USERS_EVENTS_REDIS_URL": stores["redis_url"],
        "USERS_JWT_ISSUER": ISSUER,
        "USERS_JWT_AUDIENCE": AUDIENCE,
        "USERS_JWKS_URL": urls["auth"] + "/auth/.well-known/jwks.json",
    }
    urls["users"] = stack.service("users", "gatehouse_users", users_env)
    urls["users-cache-off"] = stack.service(
        "users-cache-off", "gatehouse_users", {**users_env, "USERS_CACHE_ENABLED": "false"}
    )
    urls["users-cache-off-nullpool"] = stack.service(
        "users-cache-off-nullpool",
        "gatehouse_users",
        {**users_env, "USERS_CACHE_ENABLED": "false", "USERS_DB_POOL_CLASS": "null"},
    )
    gateway_env = {
        "GATEWAY_AUTH_URL": urls["auth"],
        "GATEWAY_USERS_URL": urls["users"],
        "GATEWAY_JWT_ISSUER": ISSUER,
        "GATEWAY_JWT_AUDIENCE": AUDIENCE,
        "GATEWAY_JWKS_URL": urls["auth"] + "/auth/.well-known/jwks.json",
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_EVENTS_REDIS_URL": stores["redis_url"],
    }
    for transport in GATEWAY_TRANSPORTS:
        urls[f"gateway-{transport}"] = stack.service(
            f"gateway-{transport}",
            "gatehouse_gateway",
            {**gateway_env, "GATEWAY_UPSTREAM_TRANSPORT": transport},
        )
    urls[FLOOR] = stack.service(FLOOR, "floor", {"PYTHONPATH": str(BENCH_DIR)})
    urls["nginx"] = start_nginx(stack, stack.ports["users"])
    for name, url in urls.items():
        if name not in ("nginx", FLOOR):
            wait_until(name, ready(url))
    wait_until(FLOOR, lambda: http("GET", urls[FLOOR] + "/users/floor")[0] == 200)
    wait_until("nginx", lambda: _accepts("127.0.0.1", int(urls["nginx"].rsplit(":", 1)[1])))
    return urls


def start_nginx(stack: Stack, users_port: int) -> str:
    """Debian's nginx as our own process: plain ``proxy_pass`` with upstream keep-alive."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    prefix = stack.workdir / "nginx"
    prefix.mkdir()
    user = "user root;" if os.geteuid() == 0 else ""
    config = prefix / "nginx.conf"
    config.write_text(
        f"""{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream users {{ server 127.0.0.1:{users_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://users;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )
    stack.process("nginx", [nginx, "-p", str(prefix), "-c", str(config)], {})
    return f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Seed:
    token: str
    paths: list[str]
    email: str


def seed(urls: dict[str, str]) -> Seed:
    """Register users, log the first one in, create every profile (GET /users/me)."""
    emails = [f"bench{index}@example.com" for index in range(SEED_USERS)]
    paths = []
    token = ""
    for email in emails:
        status, _ = http(
            "POST",
            urls["auth"] + "/auth/register",
            body=json.dumps({"email": email, "password": PASSWORD}).encode(),
            headers={"content-type": "application/json"},
        )
        if status != 201:
            raise RuntimeError(f"register {email}: {status}")
        own_token = login(urls["auth"], email)
        token = token or own_token
        status, body = http(
            "GET", urls["users"] + "/users/me", headers={"authorization": f"Bearer {own_token}"}
        )
        if status != 200:
            raise RuntimeError(f"GET /users/me: {status} {body[:200]!r}")
        paths.append(f"/users/{json.loads(body)['id']}")
    return Seed(token=token, paths=paths, email=emails[0])


def login(auth_url: str, email: str) -> str:
    form = urllib.parse.urlencode(
        {"grant_type": "password", "username": email, "password": PASSWORD}
    ).encode()
    status, body = http(
        "POST",
        auth_url + "/auth/token",
        body=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    if status != 200:
        raise RuntimeError(f"login: {status} {body[:200]!r}")
    token: str = json.loads(body)["access_token"]
    return token


def wrk(
    url: str, script: str, connections: int, duration: int, env: dict[str, str]
) -> dict[str, Any]:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH_DIR / "wrk" / script),
        url,
    ]
    completed = subprocess.run(
        argv,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("BENCH "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    errors = sum(
        result[key]
        for key in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
    )
    if errors:
        raise RuntimeError(f"wrk against {url}: {errors} errors: {result}")
    return result


def statements_per_request(users_url: str) -> tuple[float, float]:
    """(sum, count) of the users_db_statements_per_request histogram for the read route."""
    _, body = http("GET", users_url + "/metrics")
    values = {"sum": 0.0, "count": 0.0}
    for kind in values:
        pattern = (
            rf'^users_db_statements_per_request_{kind}\{{route="{re.escape(READ_ROUTE)}"\}} (\S+)$'
        )
        match = re.search(pattern, body.decode(), re.MULTILINE)
        values[kind] = float(match.group(1)) if match else 0.0
    return values["sum"], values["count"]


Runs = dict[str, list[dict[str, Any]]]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def container_cpu_seconds(container: str) -> float:
    """CPU time of a container's processes so far, from its cgroup: ``cpu.stat`` of cgroup v2
    (also mounted at ``unified/`` on hybrid hosts), else v1's ``cpuacct.usage``."""
    pid = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Pid}}", container],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    paths = dict(
        line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    )
    root = Path("/sys/fs/cgroup")
    for v2 in (root / paths.get("", "/").lstrip("/"), root / "unified" / paths.get("", "/")[1:]):
        stat = v2 / "cpu.stat"
        if stat.exists():
            usage = next(
                line for line in stat.read_text().splitlines() if line.startswith("usage_usec")
            )
            return int(usage.split()[1]) / 1e6
    v1 = next(path for controllers, path in paths.items() if "cpuacct" in controllers.split(","))
    return int((root / "cpuacct" / v1.lstrip("/") / "cpuacct.usage").read_text()) / 1e9


@dataclass(frozen=True)
class Variant:
    """A URL to load, the processes (or datastore containers) whose CPU time per request is
    recorded, and what the variant's wrk script needs beyond the shared environment."""

    url: str
    processes: tuple[str, ...] = ()
    wrk_env: dict[str, str] = field(default_factory=dict)


def alternate(
    stack: Stack,
    variants: dict[str, Variant],
    connections: int,
    wrk_env: dict[str, str],
    on_run: Callable[[str, dict[str, Any]], None] | None = None,
) -> Runs:
    """Every variant once per round, in the same order; a short warm-up run first."""
    for variant in variants.values():
        wrk(variant.url, "bearer.lua", connections, 2, {**wrk_env, **variant.wrk_env})
    runs: Runs = {name: [] for name in variants}
    for round_number in range(1, ROUNDS + 1):
        for name, variant in variants.items():
            cpu_before = {process: stack.cpu_seconds(process) for process in variant.processes}
            result = wrk(
                variant.url, "bearer.lua", connections, DURATION, {**wrk_env, **variant.wrk_env}
            )
            result["cpu_ms_per_request"] = {
                process: (stack.cpu_seconds(process) - before) * 1000 / result["requests"]
                for process, before in cpu_before.items()
            }
            if on_run is not None:
                on_run(name, result)
            runs[name].append(result)
            cpu = ", ".join(
                f"{process} {ms:.2f}" for process, ms in result["cpu_ms_per_request"].items()
            )
            log(
                f"round {round_number} c={connections} {name}: {result['rps']:.0f} req/s, "
                f"p50 {result['p50_us'] / 1000:.2f} ms, CPU ms/request: {cpu}"
            )
    return runs


def paired_median(
    runs: Runs,
    name: str,
    base: str,
    figure: Callable[[dict[str, Any]], float],
    base_figure: Callable[[dict[str, Any]], float] | None = None,
) -> float:
    """The median over rounds of variant ``name``'s figure divided by ``base``'s in the same
    round. The machine changes speed by up to 2x between rounds, and a round's variants run
    within a minute of each other: a ratio of medians mixed rounds of different speeds (one
    run's uncached read was 6.4, 8.6 and 5.3x the floor round by round, 6.94x as a ratio of
    medians)."""
    base_figure = base_figure or figure
    return statistics.median(
        figure(run) / base_figure(base_run)
        for run, base_run in zip(runs[name], runs[base], strict=True)
    )


def medians(runs: Runs) -> dict[str, dict[str, Any]]:
    """Per variant, the medians over rounds, and where the run had a floor variant each as a
    multiple of the floor's (keys ending in ``_x_floor``: the median of the rounds' ratios)."""
    figures = {
        name: {
            "rps": round(statistics.median(run["rps"] for run in results), 1),
            "p50_ms": round(statistics.median(run["p50_us"] for run in results) / 1000, 3),
            "p99_ms": round(statistics.median(run["p99_us"] for run in results) / 1000, 3),
            "runs_rps": [round(run["rps"], 1) for run in results],
            "cpu_ms_per_request": {
                process: round(
                    statistics.median(run["cpu_ms_per_request"][process] for run in results), 3
                )
                for process in results[0]["cpu_ms_per_request"]
            },
        }
        for name, results in runs.items()
    }
    if FLOOR in runs:
        for name, variant in figures.items():
            variant["p50_x_floor"] = round(
                paired_median(runs, name, FLOOR, lambda run: run["p50_us"]), 2
            )
            variant["cpu_ms_per_request_x_floor"] = {
                process: round(
                    paired_median(
                        runs,
                        name,
                        FLOOR,
                        lambda run, process=process: run["cpu_ms_per_request"][process],
                        lambda run: run["cpu_ms_per_request"][FLOOR],
                    ),
                    2,
                )
                for process in variant["cpu_ms_per_request"]
            }
            variant["rps_vs_floor"] = round(
                paired_median(runs, name, FLOOR, lambda run: run["rps"]), 3
            )
    return figures


def gateway_overhead(stack: Stack, urls: dict[str, str], wrk_env: dict[str, str]) -> dict[str, Any]:
    # Direct, the default gateway and nginx run one after the other: their throughput ratios
    # compare runs seconds apart, before the machine's speed moves much.
    variants = {
        FLOOR: Variant(urls[FLOOR], (FLOOR,)),
        # auth's cheapest public read, to hold every service to the same floor.
        "auth-jwks": Variant(urls["auth"], ("auth",), {"BENCH_PATHS": JWKS_PATH}),
        "direct": Variant(urls["users"], ("users",)),
    }
    for transport in GATEWAY_TRANSPORTS:
        name = f"gateway-{transport}"
        variants[name] = Variant(urls[name], (name, "users"))
    variants["nginx"] = Variant(urls["nginx"], ("users",))
    single_runs = alternate(stack, variants, 1, wrk_env)
    loaded_runs = alternate(stack, variants, HIGH_CONCURRENCY, wrk_env)
    single, loaded = medians(single_runs), medians(loaded_runs)
    direct_p50 = single["direct"]["p50_ms"]
    comparison = {
        name: {
            "added_p50_ms_at_c1": round(single[name]["p50_ms"] - direct_p50, 3),
            "added_p50_at_c1_x_floor": round(
                (single[name]["p50_ms"] - direct_p50) / single[FLOOR]["p50_ms"], 2
            ),
            f"throughput_vs_direct_at_c{HIGH_CONCURRENCY}": round(
                paired_median(loaded_runs, name, "direct", lambda run: run["rps"]), 3
            ),
        }
        for name in variants
        if name.startswith(("gateway-", "nginx"))
    }
    return {"c1": single, f"c{HIGH_CONCURRENCY}": loaded, "vs_direct": comparison}


def cache_and_pool(stack: Stack, urls: dict[str, str], wrk_env: dict[str, str]) -> dict[str, Any]:
    # The uncached read right after the floor it is divided by, and the cached one after it.
    variants = {
        FLOOR: Variant(urls[FLOOR], (FLOOR,)),
        # PostgreSQL's CPU too: what the cache saves is the database's work as much as users'.
        "cache-off": Variant(urls["users-cache-off"], ("users-cache-off", "postgres")),
        "cache-on": Variant(urls["users"], ("users", "postgres")),
        "cache-off-nullpool": Variant(
            urls["users-cache-off-nullpool"], ("users-cache-off-nullpool",)
        ),
    }
    statements: dict[str, list[float]] = collections.defaultdict(list)
    before: dict[str, tuple[float, float]] = {}

    def count_statements(name: str, _: dict[str, Any]) -> None:
        if name == FLOOR:
            return
        after = statements_per_request(variants[name].url)
        total, count = after[0] - before[name][0], after[1] - before[name][1]
        statements[name].append(total / count if count else float("nan"))
        before[name] = after

    measured = [name for name in variants if name != FLOOR]
    for name in measured:
        wrk(variants[name].url, "bearer.lua", HIGH_CONCURRENCY, 2, wrk_env)
        before[name] = statements_per_request(variants[name].url)
    runs = alternate(stack, variants, HIGH_CONCURRENCY, wrk_env, on_run=count_statements)
    figures = medians(runs)
    for name in measured:
        figures[name]["db_statements_per_request"] = round(statistics.median(statements[name]), 4)
    cache_ratio = paired_median(runs, "cache-on", "cache-off", lambda run: run["rps"])
    pool_ratio = paired_median(runs, "cache-off", "cache-off-nullpool", lambda run: run["rps"])
    return {
        "connections": HIGH_CONCURRENCY,
        "variants": figures,
        "cache_on_vs_off": round(cache_ratio, 2),
        "pooled_vs_nullpool": round(pool_ratio, 2),
        "targets": {
            "cache_statements_per_request_max": 0.05,
            "cache_on_vs_off_min": 1.5,
            "pooled_vs_nullpool_min": 2.0,
            "cache_met": figures["cache-on"]["db_statements_per_request"] <= 0.05
            and cache_ratio >= 1.5,
            "pool_met": pool_ratio >= 2.0,
        },
    }


def login_throughput(urls: dict[str, str], email: str) -> dict[str, Any]:
    env = {"BENCH_EMAIL": urllib.parse.quote(email), "BENCH_PASSWORD": PASSWORD}
    results = []
    for connections in (1, 4):
        result = wrk(urls["auth"] + "/auth/token", "login.lua", connections, DURATION, env)
        log(
            f"login c={connections}: {result['rps']:.1f} req/s, "
            f"p50 {result['p50_us'] / 1000:.0f} ms"
        )
        results.append(
            {
                "connections": connections,
                "rps": round(result["rps"], 1),
                "p50_ms": round(result["p50_us"] / 1000, 1),
            }
        )
    return {"token_endpoint": results}


def profile_gateway(stack: Stack, urls: dict[str, str], wrk_env: dict[str, str]) -> dict[str, Any]:
    """py-spy on the default gateway under c=64 load: where its CPU time goes."""
    raw = stack.workdir / "gateway-profile.txt"
    pid = stack.processes["gateway-aiohttp"].pid
    spy = subprocess.Popen(
        [
            *("uvx", "py-spy", "record", "--pid", str(pid), "--duration", str(DURATION)),
            *("--rate", "250", "--nonblocking", "--format", "raw", "--output", str(raw)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # py-spy attaches before the load starts
    wrk(urls["gateway-aiohttp"], "bearer.lua", HIGH_CONCURRENCY, DURATION + 1, wrk_env)
    spy.wait(timeout=60)
    if not raw.exists():
        return {"error": "py-spy wrote no profile"}
    collapsed = raw.read_text()
    # Collapsed stacks, for flamegraph tools (gunzip first); compressed: it is data in git.
    (OUTPUT / "gateway-profile.txt.gz").write_bytes(gzip.compress(collapsed.encode(), mtime=0))
    return summarise_profile(collapsed)


# Where a stack frame's file lives decides which layer the sample is charged to.
_LAYERS = (
    ("gatehouse_gateway", "gateway proxy code"),
    ("gatehouse_common", "gatehouse_common middleware (logging, metrics, request id)"),
    ("aiohttp", "aiohttp client"),
    ("starlette", "starlette/FastAPI"),
    ("fastapi", "starlette/FastAPI"),
    ("structlog", "structlog"),
    ("prometheus_client", "prometheus_client"),
    ("opentelemetry", "opentelemetry"),
    ("uvicorn", "uvicorn (HTTP server)"),
    ("asyncio", "asyncio event loop"),
)


def summarise_profile(collapsed: str) -> dict[str, Any]:
    """Self time by function and inclusive time by layer from py-spy's collapsed stacks."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        self_time[frames[-1]] += count
        layers = {label for frame in frames for marker, label in _LAYERS if marker in frame}
        for label in layers:
            inclusive[label] += count
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "top_self": [
            {"frame": frame, "share": round(count / total, 3)}
            for frame, count in self_time.most_common(15)
        ],
        "inclusive_by_layer": {
            label: round(count / total, 3) for label, count in inclusive.most_common()
        },
    }


def resident_mib(stack: Stack) -> dict[str, float]:
    """Resident memory of each service process now (after the load), in MiB."""
    memory = {}
    for name in SERVICE_PROCESSES:
        status = Path(f"/proc/{stack.processes[name].pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
        memory[name] = round(int(match.group(1)) / 1024, 1) if match else float("nan")
    return memory


def evaluate_targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every target with its measured figure and whether it was met (scenarios not run: left
    out)."""
    checks: dict[str, dict[str, Any]] = {}

    def check(name: str, value: float, limit: float, *, at_least: bool = False) -> None:
        met = value >= limit if at_least else value <= limit
        bound = f"{'≥' if at_least else '≤'} {limit:g}"
        checks[name] = {"value": value, "target": bound, "met": met}

    if "gateway_overhead" in results:
        overhead = results["gateway_overhead"]
        loaded = overhead[f"c{HIGH_CONCURRENCY}"]
        versus = overhead["vs_direct"][DEFAULT_GATEWAY]
        gateway_cpu = loaded[DEFAULT_GATEWAY]["cpu_ms_per_request_x_floor"][DEFAULT_GATEWAY]
        check("gateway_proxied_read_cpu_x_floor", gateway_cpu, CPU_X_FLOOR_MAX_HEAVY)
        auth_cpu = loaded["auth-jwks"]["cpu_ms_per_request_x_floor"]["auth"]
        check("auth_jwks_cpu_x_floor", auth_cpu, CPU_X_FLOOR_MAX)
        check("gateway_added_p50_ms_at_c1", versus["added_p50_ms_at_c1"], GATEWAY_ADDED_P50_MS_MAX)
        check(
            f"gateway_throughput_vs_direct_at_c{HIGH_CONCURRENCY}",
            versus[f"throughput_vs_direct_at_c{HIGH_CONCURRENCY}"],
            GATEWAY_THROUGHPUT_VS_DIRECT_MIN,
            at_least=True,
        )
    if "cache_and_pool" in results:
        variants = results["cache_and_pool"]["variants"]
        for name, process, label in (
            ("cache-on", "users", "cached"),
            ("cache-off", "users-cache-off", "uncached"),
        ):
            ratio = variants[name]["cpu_ms_per_request_x_floor"][process]
            check(f"users_{label}_read_cpu_x_floor", ratio, CPU_X_FLOOR_MAX_HEAVY)
    if "token_verification" in results:
        verification = results["token_verification"]
        check(
            "uncached_verification_x_raw_rs256",
            verification["uncached_x_raw_rs256"],
            VERIFICATION_X_RAW_RS256_MAX,
        )
    for name, mib in results.get("memory_rss_mib", {}).items():
        if name != FLOOR:
            check(f"{name}_rss_mib", mib, RSS_MIB_MAX)
    return checks


def draw_charts(results: dict[str, Any]) -> list[str]:
    """PNG charts next to the results: throughput and p50 per variant, CPU as floor multiples."""
    import matplotlib as mpl  # noqa: PLC0415 - only the full run draws

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    drawn = []
    overhead = results.get("gateway_overhead")
    if overhead:
        single, loaded = overhead["c1"], overhead[f"c{HIGH_CONCURRENCY}"]
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
        names = list(loaded)
        left.bar(names, [loaded[name]["rps"] for name in names], color="tab:blue")
        left.set_title(f"throughput at c={HIGH_CONCURRENCY} (req/s)")
        right.bar(names, [single[name]["p50_ms"] for name in names], color="tab:orange")
        right.set_title("p50 at c=1 (ms)")
        for axes in (left, right):
            axes.tick_params(axis="x", rotation=30, labelsize=8)
        figure.tight_layout()
        figure.savefig(OUTPUT / "throughput-latency.png", dpi=100)
        plt.close(figure)
        drawn.append("throughput-latency.png")
    bars: dict[str, float] = {}
    if overhead:
        loaded = overhead[f"c{HIGH_CONCURRENCY}"]
        bars["gateway (proxied read)"] = loaded[DEFAULT_GATEWAY]["cpu_ms_per_request_x_floor"][
            DEFAULT_GATEWAY
        ]
        bars["users (direct, cached)"] = loaded["direct"]["cpu_ms_per_request_x_floor"]["users"]
        bars["auth (JWKS)"] = loaded["auth-jwks"]["cpu_ms_per_request_x_floor"]["auth"]
    if "cache_and_pool" in results:
        variants = results["cache_and_pool"]["variants"]
        bars["users (uncached)"] = variants["cache-off"]["cpu_ms_per_request_x_floor"][
            "users-cache-off"
        ]
    if bars:
        figure, axes = plt.subplots(figsize=(8, 3.2))
        axes.barh(list(bars), list(bars.values()), color="tab:purple")
        axes.axvline(1, color="black", linewidth=0.8)
        axes.axvline(CPU_X_FLOOR_MAX, color="tab:green", linestyle="--", label="target 3x")
        axes.axvline(CPU_X_FLOOR_MAX_HEAVY, color="tab:red", linestyle="--", label="target 6x")
        axes.set_xlabel(f"CPU per request, multiples of the floor (c={HIGH_CONCURRENCY})")
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(OUTPUT / "cpu-x-floor.png", dpi=100)
        plt.close(figure)
        drawn.append("cpu-x-floor.png")
    return drawn


def machine() -> dict[str, Any]:
    memory_kib = 0
    with contextlib.suppress(OSError), Path("/proc/meminfo").open() as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    cpu_model = ""
    with contextlib.suppress(OSError), Path("/proc/cpuinfo").open() as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "cpu": cpu_model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


@contextlib.contextmanager
def running_stack() -> Iterator[tuple[Stack, dict[str, str]]]:
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as workdir:
        stack = Stack(Path(workdir))

        def interrupted(signum: int, _: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupted)
        try:
            stores = start_datastores(stack)
            log("datastores up")
            urls = start_services(stack, stores)
            log("services up: " + ", ".join(f"{name} {url}" for name, url in urls.items()))
            yield stack, urls
        except BaseException:
            for log_file in sorted(stack.workdir.glob("*.log")):
                tail = log_file.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log_file.name}\n" + "\n".join(tail), file=sys.stderr)
            raise
        finally:
            stack.stop()


def main() -> None:
    started = time.monotonic()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": {"duration_s": DURATION, "rounds": ROUNDS, "load_generator": "wrk -t1"},
    }
    if "micro" in SCENARIOS:
        log("micro-benchmarks: token verification, revocation check, Argon2")
        results["token_verification"] = asyncio.run(micro.token_verification())
        results["revocation"] = micro.revocation_check()
        results["argon2"] = micro.password_hashing()
    with running_stack() as (stack, urls):
        results["settings"]["datastores_via"] = stack.datastores_via
        seeded = seed(urls)
        wrk_env = {"BENCH_TOKEN": seeded.token, "BENCH_PATHS": " ".join(seeded.paths)}
        if "gateway" in SCENARIOS:
            log("scenario 1: gateway overhead")
            results["gateway_overhead"] = gateway_overhead(stack, urls, wrk_env)
        if "cache" in SCENARIOS:
            log("scenarios 2 and 3: cache and pool")
            results["cache_and_pool"] = cache_and_pool(stack, urls, wrk_env)
        if "login" in SCENARIOS:
            log("scenario 5: login")
            results["login"] = login_throughput(urls, seeded.email)
        if "profile" in SCENARIOS:
            log("profile of the gateway under load")
            results["gateway_profile"] = profile_gateway(stack, urls, wrk_env)
        results["memory_rss_mib"] = resident_mib(stack)
    results["targets"] = evaluate_targets(results)
    results["charts"] = draw_charts(results)
    results["elapsed_s"] = round(time.monotonic() - started)
    (OUTPUT / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    if {"micro", "gateway", "cache", "login", "profile"} <= SCENARIOS:
        (OUTPUT / "latest.md").write_text(render_markdown(results))
    log(f"done in {results['elapsed_s']} s: {OUTPUT / 'latest.json'}, {OUTPUT / 'latest.md'}")


def _mark(met: bool) -> str:
    return "met" if met else "**missed**"


def render_markdown(results: dict[str, Any]) -> str:
    box = results["machine"]
    overhead = results["gateway_overhead"]
    single, loaded = overhead["c1"], overhead[f"c{HIGH_CONCURRENCY}"]
    cache = results["cache_and_pool"]
    tokens = results["token_verification"]
    argon = results["argon2"]
    lines = [
        "# Gatehouse benchmark results",
        "",
        f"{results['date']} · {box['cores']} cores · {box['memory_gib']} GiB · {box['cpu']} · "
        f"Python {box['python']} · wrk -t1, {results['settings']['duration_s']} s per run, "
        f"{results['settings']['rounds']} alternating rounds, medians · "
        f"datastores reached at their {results['settings']['datastores_via']} · "
        f"total {results['elapsed_s']} s",
        "",
        "## Targets (figures as multiples of the floor measured in the same rounds)",
        "",
        "| target | measured | bound | |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {name} | {check['value']:g} | {check['target']} | {_mark(check['met'])} |"
        for name, check in results["targets"].items()
    ]
    lines += [""] + [f"![{chart}]({chart})" for chart in results.get("charts", [])]
    lines += [
        "",
        "## 1. Gateway overhead: GET /users/{id}, cache warm; the floor answers the same path",
        "",
        f"| path | p50 c=1 (ms) | added p50 (ms) | p50 x floor | req/s c={HIGH_CONCURRENCY} "
        f"| vs direct | p99 c={HIGH_CONCURRENCY} (ms) | CPU ms/request c={HIGH_CONCURRENCY} "
        "(x floor) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in single:
        versus = overhead["vs_direct"].get(name)
        added = f"{versus['added_p50_ms_at_c1']:+.2f}" if versus else "—"
        ratio = f"{versus[f'throughput_vs_direct_at_c{HIGH_CONCURRENCY}']:.0%}" if versus else "—"
        cpu = ", ".join(
            f"{process} {ms:.2f} ({loaded[name]['cpu_ms_per_request_x_floor'][process]:.1f}x)"
            for process, ms in loaded[name]["cpu_ms_per_request"].items()
        )
        lines.append(
            f"| {name} | {single[name]['p50_ms']:.2f} | {added} "
            f"| {single[name]['p50_x_floor']:.1f} | {loaded[name]['rps']:.0f} | {ratio} "
            f"| {loaded[name]['p99_ms']:.1f} | {cpu} |"
        )
    lines += [
        "",
        f"## 2-3. Cache and pool: GET /users/{{id}} direct, c={HIGH_CONCURRENCY}",
        "",
        "| variant | req/s | p50 (ms) | CPU ms/request (x floor) | DB statements / request |",
        "|---|---:|---:|---|---:|",
    ]
    for name, figures in cache["variants"].items():
        statements = figures.get("db_statements_per_request")
        cpu = ", ".join(
            f"{process} {ms:.2f} ({figures['cpu_ms_per_request_x_floor'][process]:.1f}x)"
            for process, ms in figures["cpu_ms_per_request"].items()
        )
        lines.append(
            f"| {name} | {figures['rps']:.0f} | {figures['p50_ms']:.1f} | {cpu} "
            f"| {'—' if statements is None else f'{statements:.3f}'} |"
        )
    targets = cache["targets"]
    lines += [
        "",
        f"- cache on / off: {cache['cache_on_vs_off']:.2f}x (target ≥ 1.5x, ≤ 0.05 statements "
        f"per request): {_mark(targets['cache_met'])}",
        f"- pooled / NullPool: {cache['pooled_vs_nullpool']:.2f}x (target ≥ 2x): "
        f"{_mark(targets['pool_met'])}",
        "",
        "## 4. Token verification (in-process, warm JWKS, RS256-2048)",
        "",
        "| | µs per verification | target |",
        "|---|---:|---:|",
        f"| raw RS256 signature check (`cryptography`), the floor | {tokens['raw_rs256_us']:.1f} "
        "| — |",
        f"| full verification (cache off) | {tokens['uncached_us']:.1f} "
        f"({tokens['uncached_x_raw_rs256']:.2f}x raw) | ≤ {VERIFICATION_X_RAW_RS256_MAX:g}x raw — "
        f"{_mark(tokens['uncached_x_raw_rs256'] <= VERIFICATION_X_RAW_RS256_MAX)} |",
        f"| token already verified | {tokens['cached_us']:.2f} | < 5 — "
        f"{_mark(tokens['cached_us'] < 5)} |",
        "",
        "## 5. Login",
        "",
        f"Argon2id time_cost={argon['time_cost']}, memory={argon['memory_cost_kib']} KiB, "
        f"parallelism={argon['parallelism']}: **{argon['hash_ms']:.0f} ms per hash** "
        "(wall time of one hash, nothing else running).",
        "",
        "| POST /auth/token (password grant), connections | req/s | p50 (ms) |",
        "|---:|---:|---:|",
    ]
    for row in results["login"]["token_endpoint"]:
        lines.append(f"| {row['connections']} | {row['rps']:.1f} | {row['p50_ms']:.0f} |")
    lines += ["", "## Resident memory after the run (MiB)", "", "| process | RSS |", "|---|---:|"]
    lines += [f"| {name} | {mib:.0f} |" for name, mib in results["memory_rss_mib"].items()]
    profile = results["gateway_profile"]
    if profile.get("samples"):
        lines += [
            "",
            f"## Gateway profile (py-spy, c={HIGH_CONCURRENCY}, aiohttp transport, "
            f"{profile['samples']} samples)",
            "",
            "| layer (inclusive) | share of samples |",
            "|---|---:|",
        ]
        lines += [
            f"| {label} | {share:.0%} |" for label, share in profile["inclusive_by_layer"].items()
        ]
        lines += ["", "| hottest frames (self) | share |", "|---|---:|"]
        lines += [f"| `{row['frame']}` | {row['share']:.1%} |" for row in profile["top_self"][:10]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
