"""Faults, one at a time; each test restores what it broke before it asserts the recovery.

Order matters only for speed: every test starts from a healthy stack and leaves one.
"""

from __future__ import annotations

import time

import httpx2
import pytest

from gatehouse_testing.problems import assert_problem
from tests.e2e.public_api import Account, Gateway, Tokens
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# A dependency that is down must be reported quickly, never by a hang.
FAST_FAILURE_SECONDS = 10.0
RECOVERY_SECONDS = 90.0


@pytest.fixture
def account(gateway: Gateway) -> Account:
    return gateway.register()


@pytest.fixture
def tokens(gateway: Gateway, account: Account) -> Tokens:
    tokens = gateway.login(account)
    # Creates the profile and makes users fetch (and cache) the JWKS before anything breaks.
    assert gateway.client.get("/users/me", headers=tokens.bearer).status_code == 200
    return tokens


def test_users_keeps_serving_without_redis(stack: Stack, gateway: Gateway, tokens: Tokens) -> None:
    before = gateway.client.get("/users/me", headers=tokens.bearer)  # now in the cache
    assert before.status_code == 200
    stack.stop("redis")
    try:
        read = gateway.client.get("/users/me", headers=tokens.bearer)
        assert read.status_code == 200, read.text
        write = gateway.client.patch(
            "/users/me", json={"bio": "written while Redis was down"}, headers=tokens.bearer
        )
        assert write.status_code == 200, write.text
    finally:
        stack.ensure_running("redis")
    # Redis keeps its data across the restart: the entry cached before the outage must not
    # come back in place of the write made during it.
    after = gateway.client.get("/users/me", headers=tokens.bearer)
    assert after.status_code == 200
    assert after.json()["bio"] == "written while Redis was down"


def test_issued_tokens_keep_working_without_auth(
    stack: Stack, gateway: Gateway, tokens: Tokens
) -> None:
    stack.stop("auth")
    try:
        read = gateway.client.get("/users/me", headers=tokens.bearer)
        assert read.status_code == 200, read.text
        started = time.monotonic()
        register = gateway.client.post("/auth/register", json={"email": "x@example.com"})
        assert time.monotonic() - started < FAST_FAILURE_SECONDS
        # Unreachable is 502/503, never 504: a stopped container's name stops resolving on
        # the internal network, so the gateway's connect timeout is what gives up here.
        assert register.status_code in {502, 503}, register.text
        assert_problem(register, register.status_code)
    finally:
        stack.ensure_running("auth")
    assert gateway.client.get("/ready").status_code == 200


def test_postgres_outage_answers_503_then_recovers(
    stack: Stack, gateway: Gateway, tokens: Tokens
) -> None:
    stack.stop("postgres")
    try:
        started = time.monotonic()
        write = gateway.client.patch(
            "/users/me", json={"bio": "lost to the outage"}, headers=tokens.bearer
        )
        assert time.monotonic() - started < FAST_FAILURE_SECONDS
        assert_problem(write, 503)
    finally:
        stack.ensure_running("postgres")

    def write_succeeds() -> httpx2.Response | None:
        response = gateway.client.patch(
            "/users/me", json={"bio": "back again"}, headers=tokens.bearer
        )
        return response if response.status_code == 200 else None

    gateway.wait_until(write_succeeds, timeout=RECOVERY_SECONDS)
    assert gateway.client.get("/users/me", headers=tokens.bearer).json()["bio"] == "back again"


def test_mongo_outage_answers_503_on_login_then_recovers(
    stack: Stack, gateway: Gateway, account: Account
) -> None:
    stack.stop("mongo")
    try:
        started = time.monotonic()
        login = gateway.login_response(account)
        assert time.monotonic() - started < FAST_FAILURE_SECONDS
        assert login.status_code == 503, login.text
    finally:
        stack.ensure_running("mongo")

    def login_succeeds() -> httpx2.Response | None:
        response = gateway.login_response(account)
        return response if response.status_code == 200 else None

    # The identity registered before the outage is still there (MongoDB's volume).
    gateway.wait_until(login_succeeds, timeout=RECOVERY_SECONDS)


def test_gateway_restart_loses_no_data(
    stack: Stack, gateway: Gateway, account: Account, tokens: Tokens
) -> None:
    patched = gateway.client.patch(
        "/users/me", json={"display_name": "Before restart"}, headers=tokens.bearer
    )
    assert patched.status_code == 200
    stack.restart("gateway")

    # A token issued before the restart is still valid, and so is the account.
    me = gateway.client.get("/users/me", headers=tokens.bearer)
    assert me.status_code == 200, me.text
    assert me.json()["display_name"] == "Before restart"
    fresh = gateway.login(account)
    assert gateway.client.get("/users/me", headers=fresh.bearer).json()["id"] == account.id


def test_sigterm_lets_in_flight_requests_finish(
    stack: Stack, gateway: Gateway, tokens: Tokens
) -> None:
    in_flight = 4
    # The gateway reads a request's whole body before it calls users, so the slow uploads are
    # sent to users directly, from inside the backend network: SIGTERM arrives while users is
    # still receiving them.
    uploads = stack.slow_patches_to_users(in_flight, tokens.access_token)
    try:
        time.sleep(1.5)  # every upload is being received by users now
        stack.signal("users", "SIGTERM")
        statuses, bios = uploads.finished()
        # Docker treats the stop signal like `docker stop`: no restart by the policy.
        # `compose wait` reports: container "<id>" exited with status code <n>
        waited = stack.run("wait", "users", check=False).stdout.strip()
    finally:
        stack.ensure_running("users")

    assert waited.endswith("status code 0"), f"users did not shut down cleanly: {waited}"
    assert statuses == [200] * in_flight, statuses
    assert all(bio.startswith("slow-") for bio in bios), bios

    def read_succeeds() -> httpx2.Response | None:
        response = gateway.client.get("/users/me", headers=tokens.bearer)
        return response if response.status_code == 200 else None

    # The gateway may still hold connections to the old process: it recovers by itself.
    gateway.wait_until(read_succeeds, timeout=RECOVERY_SECONDS)
