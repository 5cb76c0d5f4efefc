"""The contract's "Account lifecycle", through the gateway: logins, sign-out, password change,
erasure, re-registration; and revocation reaching the edge.

Every revocation source (``/auth/revoke``, refresh-token reuse, ending one login, signing out
everywhere, a password change, erasure) must make the old access token refused with 401
``invalid_token`` by the gateway and by users within 5 seconds, although its signature and
``exp`` are still valid, and still after the gateway restarts.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable

import httpx2
import pytest

from gatehouse_testing.problems import assert_problem
from tests.e2e.public_api import Account, Gateway, Tokens
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# The contract's bound for a revocation (or a registration) to reach every service.
PROPAGATION_SECONDS = 5.0


def session_id(tokens: Tokens) -> str:
    """The ``sid`` claim of the access token (the login it was issued for)."""
    payload = tokens.access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    sid: str = claims["sid"]
    return sid


def within(seconds: float, since: float, probe: Callable[[], bool], what: str) -> None:
    """``probe`` holds on an attempt that started at most ``seconds`` after ``since``."""
    while True:
        started = time.monotonic()
        if probe():
            return
        if started - since > seconds:
            pytest.fail(f"{what}: not within {seconds:g}s")
        time.sleep(0.2)


def assert_password_grant_refused_within(
    gateway: Gateway, account: Account, since: float, what: str
) -> None:
    """The account's password grant is invalid_grant within the propagation bound."""
    within(
        PROPAGATION_SECONDS,
        since,
        lambda: gateway.login_response(account).status_code == 400,
        f"{what}: the password grant is invalid_grant",
    )


def is_refused(response: httpx2.Response) -> bool:
    return response.status_code == 401 and response.headers.get("www-authenticate", "").startswith(
        'Bearer error="invalid_token"'
    )


def assert_refused_everywhere(
    stack: Stack, gateway: Gateway, tokens: Tokens, since: float, what: str
) -> None:
    """The access token is refused by the gateway and by users itself, in time."""
    within(
        PROPAGATION_SECONDS,
        since,
        lambda: is_refused(gateway.client.get("/users/me", headers=tokens.bearer)),
        f"{what}: the gateway refuses the access token",
    )
    within(
        PROPAGATION_SECONDS,
        since,
        lambda: stack.users_status("/users/me", tokens.access_token) == 401,
        f"{what}: users refuses the access token",
    )


def assert_accepted(gateway: Gateway, tokens: Tokens) -> None:
    response = gateway.client.get("/users/me", headers=tokens.bearer)
    assert response.status_code == 200, response.text


def assert_invalid_grant(response: httpx2.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"


def test_registration_creates_the_profile_with_its_display_name(gateway: Gateway) -> None:
    account = gateway.register(display_name="Ada Lovelace")
    since = time.monotonic()
    reader = gateway.login(gateway.register())

    def profile_exists() -> bool:
        response = gateway.client.get(f"/users/{account.id}", headers=reader.bearer)
        return response.status_code == 200 and bool(
            response.json()["display_name"] == "Ada Lovelace"
        )

    # Without the new user ever calling GET /users/me.
    within(PROPAGATION_SECONDS, since, profile_exists, "the profile made at registration")


def test_logins_listed_one_ended_then_every_one(stack: Stack, gateway: Gateway) -> None:
    account = gateway.register()
    first, second = gateway.login(account), gateway.login(account)

    listed = gateway.client.get("/auth/sessions", headers=first.bearer)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [session_id(second), session_id(first)]
    assert [item["current"] for item in items] == [False, True]
    assert all({"id", "created_at", "last_used_at", "current"} <= item.keys() for item in items)

    # Someone else's login, or one that does not exist: 404, and nothing is ended.
    stranger = gateway.login(gateway.register())
    for unknown in (session_id(stranger), str(uuid.uuid4())):
        missing = gateway.client.delete(f"/auth/sessions/{unknown}", headers=first.bearer)
        assert_problem(missing, 404)
    assert_accepted(gateway, stranger)

    # End one login: its tokens are refused, the other login is untouched.
    ended = gateway.client.delete(f"/auth/sessions/{session_id(second)}", headers=first.bearer)
    assert ended.status_code == 204, ended.text
    assert_refused_everywhere(stack, gateway, second, time.monotonic(), "ending one login")
    assert_invalid_grant(gateway.refresh(second.refresh_token))
    assert_accepted(gateway, first)
    remaining = gateway.client.get("/auth/sessions", headers=first.bearer).json()["items"]
    assert [item["id"] for item in remaining] == [session_id(first)]

    # Sign out everywhere: every login of the user.
    third = gateway.login(account)
    everywhere = gateway.client.delete("/auth/sessions", headers=third.bearer)
    assert everywhere.status_code == 204, everywhere.text
    since = time.monotonic()
    for tokens in (first, third):
        assert_refused_everywhere(stack, gateway, tokens, since, "signing out everywhere")
        assert_invalid_grant(gateway.refresh(tokens.refresh_token))
    # Signing out is not erasure: the password still logs in.
    assert_accepted(gateway, gateway.login(account))


def test_revoke_and_refresh_reuse_reach_the_edge(stack: Stack, gateway: Gateway) -> None:
    account = gateway.register()

    revoked = gateway.login(account)
    assert_accepted(gateway, revoked)
    assert gateway.revoke(revoked.refresh_token).status_code == 200
    assert_refused_everywhere(stack, gateway, revoked, time.monotonic(), "/auth/revoke")

    first = gateway.login(account)
    rotated = gateway.tokens(gateway.refresh(first.refresh_token))
    assert_accepted(gateway, rotated)
    assert_invalid_grant(gateway.refresh(first.refresh_token))  # reuse: the login is revoked
    since = time.monotonic()
    for tokens in (first, rotated):
        assert_refused_everywhere(stack, gateway, tokens, since, "refresh-token reuse")


def test_password_change_ends_every_earlier_login(stack: Stack, gateway: Gateway) -> None:
    account = gateway.register()
    first, second = gateway.login(account), gateway.login(account)
    new_password = secrets.token_urlsafe(18)

    assert_problem(gateway.change_password(first, "not-the-password", new_password), 400)
    assert_accepted(gateway, first)

    changed = gateway.change_password(first, account.password, new_password)
    assert changed.status_code == 200, changed.text
    fresh = gateway.tokens(changed)
    since = time.monotonic()

    for tokens in (first, second):
        assert_refused_everywhere(stack, gateway, tokens, since, "password change")
        assert_invalid_grant(gateway.refresh(tokens.refresh_token))
    assert_accepted(gateway, fresh)  # the new login survives its own revocation event
    assert_invalid_grant(gateway.login_response(account))  # the old password
    account.password = new_password
    assert_accepted(gateway, gateway.login(account))


def test_erasing_yourself_then_registering_again(stack: Stack, gateway: Gateway) -> None:
    account = gateway.register()
    logins = [gateway.login(account) for _ in range(2)]
    assert_accepted(gateway, logins[0])  # the profile exists
    reader = gateway.login(gateway.register())

    erased = gateway.client.delete("/users/me", headers=logins[0].bearer)
    assert erased.status_code == 204, erased.text
    since = time.monotonic()

    for tokens in logins:
        assert_refused_everywhere(stack, gateway, tokens, since, "erasure")
    assert_password_grant_refused_within(gateway, account, since, "erasure")
    assert_invalid_grant(gateway.login_response(account))
    for tokens in logins:
        assert_invalid_grant(gateway.refresh(tokens.refresh_token))
    gone = gateway.client.get(f"/users/{account.id}", headers=reader.bearer)
    assert_problem(gone, 404)
    # No request with an old token brings the profile back.
    assert gateway.client.get("/users/me", headers=logins[1].bearer).status_code == 401
    assert_problem(gateway.client.get(f"/users/{account.id}", headers=reader.bearer), 404)

    again = gateway.register(email=account.email, password=account.password)
    assert again.id != account.id  # a new user
    tokens = gateway.login(again)
    me = gateway.client.get("/users/me", headers=tokens.bearer)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == again.id
    assert_problem(gateway.client.get(f"/users/{account.id}", headers=reader.bearer), 404)


def test_an_administrator_erases_another_account(stack: Stack, gateway: Gateway) -> None:
    admin = gateway.register()
    stack.grant_admin(admin.email)
    admin_tokens = gateway.login(admin)
    member = gateway.register()
    member_tokens = gateway.login(member)
    assert_accepted(gateway, member_tokens)

    erased = gateway.client.delete(f"/users/{member.id}", headers=admin_tokens.bearer)
    assert erased.status_code == 204, erased.text
    since = time.monotonic()

    assert_refused_everywhere(stack, gateway, member_tokens, since, "erasure by an administrator")
    assert_password_grant_refused_within(gateway, member, since, "erasure by an administrator")
    assert_invalid_grant(gateway.refresh(member_tokens.refresh_token))
    again = gateway.client.delete(f"/users/{member.id}", headers=admin_tokens.bearer)
    assert_problem(again, 404)
    assert_accepted(gateway, admin_tokens)


def test_an_erasure_while_auth_is_down_is_applied_when_it_returns(
    stack: Stack, gateway: Gateway
) -> None:
    account = gateway.register()
    tokens = gateway.login(account)
    assert_accepted(gateway, tokens)  # the profile exists; users has auth's keys
    stack.stop("auth")
    try:
        erased = gateway.client.delete("/users/me", headers=tokens.bearer)
        assert erased.status_code == 204, erased.text
        # users and the gateway refuse the token without auth.
        assert_refused_everywhere(stack, gateway, tokens, time.monotonic(), "erasure, auth down")
    finally:
        stack.ensure_running("auth")
    since = time.monotonic()
    assert_password_grant_refused_within(gateway, account, since, "erasure after auth's restart")
    assert_invalid_grant(gateway.refresh(tokens.refresh_token))


def test_revocations_survive_a_gateway_restart(stack: Stack, gateway: Gateway) -> None:
    account = gateway.register()
    revoked, kept = gateway.login(account), gateway.login(account)
    ended = gateway.client.delete(f"/auth/sessions/{session_id(revoked)}", headers=kept.bearer)
    assert ended.status_code == 204, ended.text
    assert_refused_everywhere(stack, gateway, revoked, time.monotonic(), "before the restart")

    stack.restart("gateway")  # waits until it is healthy again

    # The restarted gateway replayed the stream before it served.
    assert is_refused(gateway.client.get("/users/me", headers=revoked.bearer))
    assert_accepted(gateway, kept)
