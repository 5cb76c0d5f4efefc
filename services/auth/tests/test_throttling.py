"""Login throttling per email and per client address (contract: 5 and 20 in 15 minutes)."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

import httpx2
import pytest
from prometheus_client import REGISTRY
from starlette.requests import Request

from gatehouse_auth.client_address import client_address
from gatehouse_auth.main import create_app
from gatehouse_auth.passwords import PasswordHasher
from services.auth.tests.support import AuthApi, SettingsFactory, running, serving


async def test_sixth_wrong_password_for_one_email_is_429(api: AuthApi) -> None:
    user = await api.register()
    for _ in range(5):
        assert (await api.login(user["email"], "wrong password!")).status_code == 400

    throttled = await api.login(user["email"], "wrong password!")

    assert throttled.status_code == 429
    assert throttled.headers["content-type"] == "application/problem+json"
    retry_after = int(throttled.headers["retry-after"])
    assert 890 <= retry_after <= 900
    # The right password is refused too until the window passes ...
    assert (await api.login(user["email"])).status_code == 429
    # ... for any spelling of the email, while other accounts are unaffected.
    assert (await api.login(user["email"].upper())).status_code == 429
    other = await api.register()
    assert (await api.login(other["email"])).status_code == 200


async def test_failures_below_the_limit_do_not_block_and_success_clears_them(
    api: AuthApi,
) -> None:
    user = await api.register()
    for _ in range(4):
        await api.login(user["email"], "wrong password!")
    assert (await api.login(user["email"])).status_code == 200

    for _ in range(4):
        assert (await api.login(user["email"], "wrong password!")).status_code == 400
    assert (await api.login(user["email"])).status_code == 200


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the hasher checks, in order: wraps ``PasswordHasher.verify``."""
    checked: list[str] = []
    verify = PasswordHasher.verify

    async def counting_verify(
        self: PasswordHasher, password: str, stored_hash: str | None
    ) -> tuple[bool, str | None]:
        checked.append(password)
        return await verify(self, password, stored_hash)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    return checked


def _throttled_total(limit: str) -> float:
    return REGISTRY.get_sample_value("auth_login_throttled_total", {"limit": limit}) or 0.0


def _assert_throttled(response: httpx2.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1


def _assert_checked_then_throttled(
    responses: list[httpx2.Response], password_checks: list[str], checked: int
) -> None:
    """``checked`` passwords were checked (each a 400); every other request was throttled."""
    statuses = sorted(response.status_code for response in responses)
    assert len(password_checks) == checked
    assert statuses == [400] * checked + [429] * (len(responses) - checked)
    for response in responses:
        if response.status_code == 429:
            _assert_throttled(response)


async def test_concurrent_wrong_passwords_for_one_email_get_five_checks(
    api: AuthApi, password_checks: list[str]
) -> None:
    user = await api.register()
    throttled_before = _throttled_total("email")

    responses = await asyncio.gather(
        *(api.login(user["email"], f"wrong password {n}") for n in range(30))
    )

    _assert_checked_then_throttled(responses, password_checks, checked=5)
    assert _throttled_total("email") - throttled_before == 25
    # The refused attempts took no place in the address's window either (5 failures, not 30).
    other = await api.register()
    assert (await api.login(other["email"])).status_code == 200


async def test_concurrent_wrong_current_passwords_get_five_checks_and_throttle_the_login(
    api: AuthApi, password_checks: list[str]
) -> None:
    """POST /auth/password checks ``current_password`` inside the login throttle, as the
    password grant does: the same reservation, the same counter."""
    user = await api.register()
    tokens = await api.tokens(user["email"])
    password_checks.clear()

    responses = await asyncio.gather(
        *(
            api.change_password(tokens["access_token"], f"wrong password {n}", "x" * 12)
            for n in range(30)
        )
    )

    _assert_checked_then_throttled(responses, password_checks, checked=5)
    _assert_throttled(await api.login(user["email"]))


async def test_concurrent_wrong_passwords_from_one_address_get_twenty_checks(
    api: AuthApi, password_checks: list[str]
) -> None:
    throttled_before = _throttled_total("address")

    # A different email each time: only the address's limit (20) applies.
    responses = await asyncio.gather(
        *(api.login(f"guess-{n}@example.com", "wrong password!") for n in range(30))
    )

    _assert_checked_then_throttled(responses, password_checks, checked=20)
    assert _throttled_total("address") - throttled_before == 10


async def test_successful_logins_do_not_count_against_the_address(
    make_settings: SettingsFactory,
) -> None:
    async with serving(make_settings(login_max_failures_per_address=3)) as api:
        user = await api.register()
        for _ in range(2):
            assert (await api.login("nobody@example.com", "wrong password!")).status_code == 400
        # Each success reserved a place of the address and gave it back.
        for _ in range(5):
            assert (await api.login(user["email"])).status_code == 200
        # ... but did not clear the address's failures: one more fills it.
        assert (await api.login("nobody@example.com", "wrong password!")).status_code == 400
        _assert_throttled(await api.login(user["email"]))


async def test_logins_refused_by_a_busy_hasher_do_not_count(
    make_settings: SettingsFactory,
    password_checks: list[str],
) -> None:
    # One slot, no queue, and a hash slow enough that the five requests overlap.
    settings = make_settings(
        password_hashing_concurrency=1,
        password_hashing_queue_limit=0,
        argon2_time_cost=2,
        argon2_memory_cost_kib=32768,
    )
    async with serving(settings) as api:
        user = await api.register()

        responses = await asyncio.gather(
            *(api.login(user["email"], "wrong password!") for _ in range(5))
        )

        statuses = sorted(response.status_code for response in responses)
        assert statuses[0] == 400
        assert 503 in statuses
        assert set(statuses) == {400, 503}
        for response in responses:
            if response.status_code == 503:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["retry-after"] == "1"
        failures = statuses.count(400)
        # The 503s checked nothing and gave their places back: the email has room for exactly
        # the failures that were really checked.
        for _ in range(5 - failures):
            assert (await api.login(user["email"], "wrong password!")).status_code == 400
        _assert_throttled(await api.login(user["email"], "wrong password!"))


async def test_failed_refresh_grants_do_not_count(api: AuthApi) -> None:
    user = await api.register()
    for _ in range(10):
        assert (await api.refresh("not a real token")).status_code == 400

    assert (await api.login(user["email"])).status_code == 200


async def test_window_frees_after_configured_seconds(make_settings: SettingsFactory) -> None:
    async with serving(
        make_settings(login_failure_window_seconds=2, login_max_failures_per_email=2)
    ) as api:
        user = await api.register()
        for _ in range(2):
            await api.login(user["email"], "wrong password!")
        throttled = await api.login(user["email"])
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) in {1, 2}

        await asyncio.sleep(2.1)

        assert (await api.login(user["email"])).status_code == 200


async def test_address_limit_uses_forwarded_for_only_from_trusted_proxy(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(
        login_max_failures_per_address=3,
        login_max_failures_per_email=100,
        trusted_proxies="10.0.0.0/8",
    )
    app = create_app(settings)
    async with running(app, client_address="10.1.2.3") as proxied:
        api = AuthApi(proxied)
        user = await api.register()
        attacker = {"x-forwarded-for": "203.0.113.7"}
        for _ in range(3):
            email = f"guess-{uuid.uuid4().hex[:6]}@example.com"
            assert (await api.login(email, "wrong password!", attacker)).status_code == 400

        assert (await api.login(user["email"], headers=attacker)).status_code == 429
        # Another client behind the same proxy is not blocked.
        other = {"x-forwarded-for": "203.0.113.8"}
        assert (await api.login(user["email"], headers=other)).status_code == 200
        # A client cannot dodge the limit by prepending a made-up hop.
        spoofed = {"x-forwarded-for": "198.51.100.1, 203.0.113.7"}
        assert (await api.login(user["email"], headers=spoofed)).status_code == 429

    async with running(app, client_address="192.0.2.50") as direct:
        api = AuthApi(direct)
        for _ in range(3):
            await api.login("someone@example.com", "wrong password!")
        # An untrusted peer's X-Forwarded-For is ignored: it is counted under its own address.
        fresh = {"x-forwarded-for": "203.0.113.99"}
        assert (await api.login(user["email"], headers=fresh)).status_code == 429


def _request(peer: str | None, forwarded: list[str]) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    scope = {
        "type": "http",
        "headers": headers,
        "client": (peer, 1234) if peer else None,
    }
    return Request(scope)


PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["1.1.1.1, 198.51.100.1, 10.0.0.9"], "198.51.100.1"),
        ("10.0.0.2", ["1.1.1.1", "198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["garbage, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["198.51.100.1, garbage"], "10.0.0.2"),
        ("10.0.0.2", [], "10.0.0.2"),
        ("fd00::1", ["2001:db8::1"], "2001:db8::1"),
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], expected: str) -> None:
    assert client_address(_request(peer, forwarded), PROXIES) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_address(_request("10.0.0.2", ["198.51.100.1"]), ()) == "10.0.0.2"
