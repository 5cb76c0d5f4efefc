"""A user's logins through the gateway: two logins, list, end one, sign out everywhere, change
the password. The ended logins' access tokens are refused by auth's own bearer endpoints
within 5 seconds (the edge and users refuse them too once they run a revocation feed)."""

from __future__ import annotations

import secrets
import time

import pytest

from gatehouse_testing.problems import assert_problem
from tests.e2e.public_api import Gateway, Tokens

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REVOCATION_BOUND_SECONDS = 5.0


def _session_ids(gateway: Gateway, tokens: Tokens) -> list[str]:
    response = gateway.client.get("/auth/sessions", headers=tokens.bearer)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _refused_by_auth(gateway: Gateway, tokens: Tokens) -> None:
    deadline = time.monotonic() + REVOCATION_BOUND_SECONDS
    while True:
        response = gateway.client.get("/auth/sessions", headers=tokens.bearer)
        if response.status_code == 401:
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
            return
        assert response.status_code == 200, response.text
        assert time.monotonic() < deadline, "a revoked access token still works after 5 s"
        time.sleep(0.2)


def test_logins_can_be_listed_and_ended(gateway: Gateway) -> None:
    account = gateway.register()
    first = gateway.login(account)
    second = gateway.login(account)

    listed = gateway.client.get("/auth/sessions", headers=second.bearer)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == 2
    assert [item["current"] for item in items] == [True, False]  # newest first: this one
    first_id = items[1]["id"]

    ended = gateway.client.delete(f"/auth/sessions/{first_id}", headers=second.bearer)
    assert ended.status_code == 204, ended.text
    assert gateway.refresh(first.refresh_token).json()["error"] == "invalid_grant"
    _refused_by_auth(gateway, first)
    assert _session_ids(gateway, second) == [items[0]["id"]]

    everywhere = gateway.client.delete("/auth/sessions", headers=second.bearer)
    assert everywhere.status_code == 204, everywhere.text
    assert gateway.refresh(second.refresh_token).json()["error"] == "invalid_grant"
    _refused_by_auth(gateway, second)
    assert len(_session_ids(gateway, gateway.login(account))) == 1


def test_a_password_change_starts_a_new_login_and_ends_the_others(gateway: Gateway) -> None:
    account = gateway.register()
    earlier = gateway.login(account)
    new_password = secrets.token_urlsafe(18)

    assert_problem(gateway.change_password(earlier, "not the password", new_password), 400)
    changed = gateway.change_password(earlier, account.password, new_password)
    assert changed.status_code == 200, changed.text
    fresh = gateway.tokens(changed)
    assert gateway.refresh(earlier.refresh_token).json()["error"] == "invalid_grant"
    _refused_by_auth(gateway, earlier)
    assert len(_session_ids(gateway, fresh)) == 1
    old_password = gateway.login_response(account)
    assert old_password.json()["error"] == "invalid_grant"
    account.password = new_password
    assert gateway.login_response(account).status_code == 200
