"""Verification and password reset against a real MailDev, read through its REST API."""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import time
from typing import Any

import httpx2
import pytest
from joserfc import jws

from gatehouse_auth.database import AuthDatabase
from gatehouse_auth.main import create_app
from gatehouse_testing.mail import MailCatcher, token_in
from gatehouse_testing.problems import assert_problem
from services.auth.tests.support import PUBLIC_BASE_URL, AuthApi, SettingsFactory, running, serving

NEW_PASSWORD = "a brand new passphrase"

pytestmark = pytest.mark.usefixtures("email_worker")


def _claims(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(jws.extract_compact(access_token.encode()).payload)
    return claims


async def _stored(database: AuthDatabase, email: str) -> list[dict[str, Any]]:
    cursor = database.email_tokens.find({"email": email})
    return [document async for document in cursor]


async def test_registration_sends_a_verification_email_whose_token_verifies(
    api: AuthApi, maildev: MailCatcher, database: AuthDatabase
) -> None:
    user = await api.register()
    before = await api.tokens(user["email"])
    assert _claims(before["access_token"])["email_verified"] is False

    (email,) = await maildev.wait_for_emails(user["email"])
    assert email["subject"] == "Confirm your email address for Gatehouse"
    assert email["from"][0]["address"] == "gatehouse@example.com"
    token = token_in(email)
    assert len(token) >= 43  # 256 bits, base64url
    link = f"{PUBLIC_BASE_URL}/verify-email#token={token}"
    # The link and the token as plain text, in both parts.
    assert link in email["text"]
    assert f"\n{token}\n" in email["text"]
    assert f'href="{link}"' in email["html"]
    assert f"<code>{token}</code>" in email["html"]

    verified = await api.verify(token)

    assert verified.status_code == 204, verified.text
    after = await api.tokens(user["email"])
    assert _claims(after["access_token"])["email_verified"] is True
    # Single use.
    assert_problem(await api.verify(token), 400)
    # Only the hash is kept, and the plain token left the outbox once the email was sent.
    (stored,) = await _stored(database, user["email"])
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert "pending_token" not in stored
    assert token not in str(stored)


async def test_resend_sends_a_new_verification_email(
    api: AuthApi, maildev: MailCatcher, client: httpx2.AsyncClient
) -> None:
    user = await api.register()
    await maildev.wait_for_emails(user["email"])
    tokens = await api.tokens(user["email"])

    resent = await api.resend(tokens["access_token"])

    assert resent.status_code == 202, resent.text
    first, second = await maildev.wait_for_emails(user["email"], count=2)
    assert token_in(first) != token_in(second)
    assert (await api.verify(token_in(second))).status_code == 204
    # Verified: a resend is accepted and sends nothing more.
    assert (await api.resend(tokens["access_token"])).status_code == 202
    await asyncio.sleep(1.0)
    assert len(await maildev.emails(user["email"])) == 2
    # Behind a token.
    assert_problem(await client.post("/auth/verify/resend"), 401)
    assert_problem(await api.resend("not-a-token"), 401)


async def test_forgot_and_reset_set_the_password_and_revoke_every_login(
    api: AuthApi, maildev: MailCatcher
) -> None:
    user = await api.register()
    logins = [await api.tokens(user["email"]) for _ in range(2)]

    forgot = await api.forgot(user["email"].upper())

    assert forgot.status_code == 202, forgot.text
    emails = await maildev.wait_for_emails(user["email"], count=2)
    (reset_email,) = [e for e in emails if e["subject"] == "Reset your Gatehouse password"]
    token = token_in(reset_email)
    assert f"{PUBLIC_BASE_URL}/reset-password#token={token}" in reset_email["text"]

    reset = await api.reset(token, NEW_PASSWORD)

    assert reset.status_code == 204, reset.text
    old_password = await api.login(user["email"])
    assert old_password.status_code == 400
    assert old_password.json()["error"] == "invalid_grant"
    for login in logins:
        refreshed = await api.refresh(login["refresh_token"])
        assert refreshed.status_code == 400
        assert refreshed.json()["error"] == "invalid_grant"
    assert (await api.login(user["email"], NEW_PASSWORD)).status_code == 200
    # Single use.
    assert_problem(await api.reset(token, "yet another passphrase"), 400)
    assert (await api.login(user["email"], NEW_PASSWORD)).status_code == 200


async def test_forgot_for_an_unknown_email_is_202_alike_and_sends_nothing(
    api: AuthApi, maildev: MailCatcher, database: AuthDatabase
) -> None:
    user = await api.register()
    unknown = "nobody-here@example.com"

    known_answer = await api.forgot(user["email"])
    unknown_answer = await api.forgot(unknown)

    assert unknown_answer.status_code == known_answer.status_code == 202
    assert unknown_answer.json() == known_answer.json()
    assert unknown_answer.headers["content-type"] == known_answer.headers["content-type"]
    await maildev.wait_for_emails(user["email"], count=2)
    assert await maildev.emails(unknown) == []
    assert await _stored(database, unknown) == []


async def test_forgot_takes_about_as_long_for_an_unknown_email(
    make_settings: SettingsFactory,
) -> None:
    async with serving(
        make_settings(email_requests_max_per_email=100, email_requests_max_per_address=100)
    ) as api:
        user = await api.register()

        async def median_seconds(email: str) -> float:
            durations = []
            for _ in range(9):
                started = time.perf_counter()
                assert (await api.forgot(email)).status_code == 202
                durations.append(time.perf_counter() - started)
            return statistics.median(durations)

        known = await median_seconds(user["email"])
        unknown = await median_seconds("nobody-at-all@example.com")

    # A known address costs one more insert: a millisecond or two, lost in network jitter.
    assert abs(known - unknown) < 0.05


@pytest.mark.parametrize("endpoint", ["verify", "reset"])
async def test_unknown_token_is_400_problem(api: AuthApi, endpoint: str) -> None:
    token = "x" * 43
    response = await (api.verify(token) if endpoint == "verify" else api.reset(token, NEW_PASSWORD))
    assert_problem(response, 400)


async def test_expired_tokens_are_400_problem(
    make_settings: SettingsFactory, maildev: MailCatcher
) -> None:
    async with serving(
        make_settings(verify_email_token_ttl_seconds=2, reset_password_token_ttl_seconds=2)
    ) as api:
        user = await api.register()
        assert (await api.forgot(user["email"])).status_code == 202
        emails = await maildev.wait_for_emails(user["email"], count=2)
        verify_token, reset_token = (token_in(email) for email in emails)
        await asyncio.sleep(2.5)

        assert_problem(await api.verify(verify_token), 400)
        assert_problem(await api.reset(reset_token, NEW_PASSWORD), 400)
        assert (await api.tokens(user["email"]))["scope"]  # the old password still works


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/auth/verify", {}, id="verify-no-token"),
        pytest.param("/auth/verify", {"token": 12345}, id="verify-number"),
        pytest.param("/auth/verify", {"token": {"$ne": ""}}, id="verify-operator"),
        pytest.param("/auth/verify", {"token": "x" * 257}, id="verify-too-long"),
        pytest.param("/auth/password/forgot", {"email": "not-an-email"}, id="forgot-bad-email"),
        pytest.param("/auth/password/forgot", {"email": {"$gt": ""}}, id="forgot-operator"),
        pytest.param(
            "/auth/password/reset", {"token": "x" * 43, "new_password": "short"}, id="reset-short"
        ),
        pytest.param(
            "/auth/password/reset", {"token": "x" * 43, "new_password": "x" * 129}, id="reset-long"
        ),
        pytest.param("/auth/password/reset", {"new_password": NEW_PASSWORD}, id="reset-no-token"),
    ],
)
async def test_invalid_bodies_are_422(
    client: httpx2.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    assert_problem(await client.post(path, json=body), 422)


async def test_forgot_is_throttled_per_email_and_per_address(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(
        make_settings(email_requests_max_per_email=2, email_requests_max_per_address=3)
    )
    async with running(app, client_address="192.0.2.10") as client:
        api = AuthApi(client)
        target = "target@example.com"
        assert [(await api.forgot(target)).status_code for _ in range(3)] == [202, 202, 429]
        throttled = await api.forgot(target)
        assert_problem(throttled, 429)
        assert int(throttled.headers["retry-after"]) > 0
        # Refused requests do not count: the address has one left, then it is refused too.
        assert (await api.forgot("other@example.com")).status_code == 202
        assert (await api.forgot("another@example.com")).status_code == 429
    async with running(app, client_address="192.0.2.11") as client:
        api = AuthApi(client)
        assert (await api.forgot("third@example.com")).status_code == 202
        assert (await api.forgot(target)).status_code == 429


async def test_resend_is_throttled(make_settings: SettingsFactory) -> None:
    async with serving(make_settings(email_requests_max_per_email=2)) as api:
        user = await api.register()
        tokens = await api.tokens(user["email"])
        statuses = [(await api.resend(tokens["access_token"])).status_code for _ in range(3)]
        assert statuses == [202, 202, 429]


async def test_reset_email_arrives_after_a_mail_server_outage(
    api: AuthApi, maildev: MailCatcher, database: AuthDatabase
) -> None:
    user = await api.register()
    await maildev.wait_for_emails(user["email"])
    maildev.stop()
    try:
        started = asyncio.get_running_loop().time()
        forgot = await api.forgot(user["email"])
        elapsed = asyncio.get_running_loop().time() - started
        assert forgot.status_code == 202
        assert elapsed < 1.0
        await _wait_for_failed_attempts(database, user["email"], attempts=2)
    finally:
        maildev.start()

    (email,) = await maildev.wait_for_emails(user["email"])
    assert email["subject"] == "Reset your Gatehouse password"
    assert (await api.reset(token_in(email), NEW_PASSWORD)).status_code == 204


async def _wait_for_failed_attempts(database: AuthDatabase, email: str, attempts: int) -> None:
    """Until the reset email to ``email`` has failed ``attempts`` times and waits for a retry."""
    for _ in range(200):
        documents = await _stored(database, email)
        if any(
            d["purpose"] == "reset_password"
            and d["send_attempts"] >= attempts
            and d["lease_owner"] is None
            for d in documents
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no reset email failed {attempts} times")
