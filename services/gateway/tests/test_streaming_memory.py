"""A 50 MiB response streams through a gateway process without the process growing by 10 MiB.

The gateway runs as a real process (``python -m gatehouse_gateway``, as in its container) so
that its resident set can be read from /proc; the upstream is the stub server, which also
serves the JWKS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.network import free_port
from services.gateway.tests.support import MIB, UpstreamStub

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads memory use from /proc"
)


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.fixture
def gateway_process(
    upstream: UpstreamStub, stub_issuer: TestIssuer, redis_url: str
) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_AUTH_URL": upstream.url,
        "GATEWAY_USERS_URL": upstream.url,
        "GATEWAY_JWKS_URL": f"{upstream.url}/auth/.well-known/jwks.json",
        "GATEWAY_JWT_ISSUER": stub_issuer.issuer,
        "GATEWAY_JWT_AUDIENCE": stub_issuer.audience,
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_EVENTS_REDIS_URL": redis_url,
    }
    process = subprocess.Popen(  # noqa: S603 - fixed argument list
        [
            sys.executable,
            "-m",
            "gatehouse_gateway",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx2.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("gateway process did not become ready")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_50_mib_response_streams_with_bounded_memory(
    gateway_process: tuple[str, int], stub_issuer: TestIssuer
) -> None:
    url, pid = gateway_process
    headers = {"authorization": f"Bearer {stub_issuer.mint()}"}
    with httpx2.Client(base_url=url, timeout=30) as client:
        # Warm up: imports, connection pools and buffers are in place before measuring.
        for _ in range(3):
            assert len(client.get("/users/big?mib=2", headers=headers).content) == 2 * MIB
        peak_before = _kib(pid, "VmHWM")

        received = 0
        with client.stream("GET", "/users/big?mib=50", headers=headers) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += len(chunk)
        peak_after = _kib(pid, "VmHWM")

    assert received == 50 * MIB
    growth_mib = (peak_after - peak_before) / 1024
    assert growth_mib < 10, f"gateway peak RSS grew by {growth_mib:.1f} MiB"
