"""What a user and an administrator do, through the gateway only."""

from __future__ import annotations

import uuid

import pytest

from gatehouse_testing.problems import assert_problem
from tests.e2e.public_api import Gateway
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_user_journey(gateway: Gateway) -> None:
    email = f"Journey-{uuid.uuid4().hex[:10]}@Example.com"
    account = gateway.register(email=email)
    assert account.email == email.lower()
    assert uuid.UUID(account.id)

    anonymous = gateway.client.get("/users/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    login = gateway.login_response(account)
    assert login.status_code == 200, login.text
    assert "no-store" in login.headers["cache-control"]
    first = gateway.tokens(login)
    assert login.json()["token_type"] == "Bearer"
    assert set(first.scope.split()) >= {"users:read", "users:write"}

    me = gateway.client.get("/users/me", headers=first.bearer)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == account.id
    assert me.json()["email"] == account.email

    patched = gateway.client.patch(
        "/users/me", json={"display_name": "Ada", "bio": "counts things"}, headers=first.bearer
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["display_name"] == "Ada"
    # The write is visible at once, also through the read cache.
    again = gateway.client.get("/users/me", headers=first.bearer)
    assert (again.json()["display_name"], again.json()["bio"]) == ("Ada", "counts things")

    refreshed = gateway.refresh(first.refresh_token)
    assert refreshed.status_code == 200, refreshed.text
    second = gateway.tokens(refreshed)
    assert second.refresh_token != first.refresh_token
    assert gateway.client.get("/users/me", headers=second.bearer).status_code == 200

    # Reuse of the spent refresh token revokes the whole login, including the newest token.
    reused = gateway.refresh(first.refresh_token)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    after_reuse = gateway.refresh(second.refresh_token)
    assert after_reuse.status_code == 400
    assert after_reuse.json()["error"] == "invalid_grant"

    # A new login is unaffected by the old one's revocation, until it is revoked itself.
    third = gateway.login(account)
    assert gateway.revoke(third.refresh_token).status_code == 200
    revoked = gateway.refresh(third.refresh_token)
    assert revoked.status_code == 400
    assert revoked.json()["error"] == "invalid_grant"
    assert gateway.revoke("not-a-token-we-issued").status_code == 200


def test_admin_journey(stack: Stack, gateway: Gateway) -> None:
    admin = gateway.register()
    stack.grant_admin(admin.email)
    admin_tokens = gateway.login(admin)
    assert "admin" in admin_tokens.scope.split()

    members = [gateway.register() for _ in range(3)]
    member_tokens = [gateway.login(member) for member in members]
    for tokens in member_tokens:  # a profile is created on first use
        assert gateway.client.get("/users/me", headers=tokens.bearer).status_code == 200

    forbidden = gateway.client.get("/users", headers=member_tokens[0].bearer)
    assert forbidden.status_code == 403
    assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]

    listed: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = gateway.client.get("/users", params=params, headers=admin_tokens.bearer)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        listed.extend(item["id"] for item in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages >= 2
    assert len(listed) == len(set(listed)), "a profile was listed twice"
    assert {member.id for member in members} <= set(listed)

    doomed = members[0].id
    deleted = gateway.client.delete(f"/users/{doomed}", headers=admin_tokens.bearer)
    assert deleted.status_code == 204, deleted.text
    gone = gateway.client.get(f"/users/{doomed}", headers=admin_tokens.bearer)
    assert_problem(gone, 404)
    still_there = gateway.client.get(f"/users/{members[1].id}", headers=admin_tokens.bearer)
    assert still_there.status_code == 200
