"""Verification and password reset through the gateway, with the emails read from MailDev."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from joserfc import jws

from gatehouse_testing.problems import assert_problem
from tests.e2e.mailbox import Mailbox
from tests.e2e.public_api import Gateway
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

VERIFY_SUBJECT = "Confirm your email address for Gatehouse"
RESET_SUBJECT = "Reset your Gatehouse password"


def _claims(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(jws.extract_compact(access_token.encode()).payload)
    return claims


def test_registration_email_verifies_the_address(
    stack: Stack, gateway: Gateway, mailbox: Mailbox
) -> None:
    account = gateway.register()
    assert _claims(gateway.login(account).access_token)["email_verified"] is False

    (email,) = mailbox.wait_for(account.email, VERIFY_SUBJECT)
    token = mailbox.token(account.email, VERIFY_SUBJECT)
    assert f"{stack.base_url}/verify-email#token={token}" in email["text"]

    verified = gateway.verify_email(token)

    assert verified.status_code == 204, verified.text
    assert _claims(gateway.login(account).access_token)["email_verified"] is True
    assert_problem(gateway.verify_email(token), 400)


def test_password_reset_by_email_revokes_the_old_password_and_logins(
    gateway: Gateway, mailbox: Mailbox
) -> None:
    account = gateway.register()
    before = gateway.login(account)

    forgot = gateway.forgot_password(account.email)
    assert forgot.status_code == 202, forgot.text
    unknown = gateway.forgot_password(f"nobody-{secrets.token_hex(4)}@example.com")
    assert (unknown.status_code, unknown.json()) == (202, forgot.json())
    token = mailbox.token(account.email, RESET_SUBJECT)

    new_password = secrets.token_urlsafe(18)
    reset = gateway.reset_password(token, new_password)

    assert reset.status_code == 204, reset.text
    old_password = gateway.login_response(account)
    assert old_password.status_code == 400
    assert old_password.json()["error"] == "invalid_grant"
    old_refresh = gateway.refresh(before.refresh_token)
    assert old_refresh.status_code == 400
    assert old_refresh.json()["error"] == "invalid_grant"
    account.password = new_password
    assert gateway.login_response(account).status_code == 200
    assert_problem(gateway.reset_password(token, secrets.token_urlsafe(18)), 400)
