"""Logs of a full login + refresh + revoke hold no password and no token."""

from __future__ import annotations

import json

import pytest

from services.auth.tests.support import SettingsFactory, serving


async def test_no_secret_reaches_the_logs(
    make_settings: SettingsFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = "a very secret passphrase"
    async with serving(
        make_settings(log_level="DEBUG")
    ) as api:  # logging is set up writing to capsys
        user = await api.register(password=password)
        await api.login(user["email"], "a wrong passphrase!!")
        first = await api.tokens(user["email"], password)
        second = (await api.refresh(first["refresh_token"])).json()
        await api.refresh(first["refresh_token"])  # reuse: logged as a warning
        await api.revoke(second["refresh_token"])

    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    messages = {line["message"] for line in lines}
    assert {"login_failed", "login_succeeded", "refresh_succeeded"} <= messages
    assert "refresh_token_reuse_detected" in messages
    assert any(line.get("user_id") == user["id"] for line in lines)
    for secret in (
        password,
        "a wrong passphrase!!",
        first["access_token"],
        first["refresh_token"],
        second["access_token"],
        second["refresh_token"],
    ):
        assert secret not in output
    # Not even a recognisable piece of a token.
    assert first["refresh_token"][:16] not in output
    assert first["access_token"].split(".")[1][:24] not in output
