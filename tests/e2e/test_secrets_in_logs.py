"""Runs after the journeys and the faults (files run in name order): the logs of the whole
run, every container of the stack, hold none of the credentials that went through it."""

from __future__ import annotations

import pytest

from tests.e2e.public_api import Gateway
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_logs_hold_no_token_or_password(stack: Stack, gateway: Gateway) -> None:
    # At least one login, so there is something to look for even when run alone.
    account = gateway.register()
    gateway.login(account)

    logs = stack.logs()
    # The logs are really there: one access-log line per request, with its request id.
    assert '"request_id"' in logs
    assert "/auth/token" in logs

    leaked = [
        secret
        for secret in gateway.seen_secrets | set(stack.datastore_passwords())
        if secret in logs
    ]
    assert not leaked, f"{len(leaked)} credential(s) found in the logs"
