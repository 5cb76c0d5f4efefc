"""Runs after the journeys and the faults (files run in name order): the logs of the whole
run, every container of the stack, hold none of the credentials that went through it, and
nothing of the emails it sent (their tokens and links)."""

from __future__ import annotations

import pytest

from gatehouse_testing.mail import token_in
from tests.e2e.mailbox import Mailbox
from tests.e2e.public_api import Gateway
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_logs_hold_no_token_or_password(stack: Stack, gateway: Gateway, mailbox: Mailbox) -> None:
    # At least one login and one email, so there is something to look for even when run alone.
    account = gateway.register()
    # This runs after the floods (schemathesis), which trip the per-address login throttle of
    # a stack whose clients all share one address: a 429 is fine here, the run's earlier
    # logins and their tokens are in the logs.
    login = gateway.login_response(account)
    assert login.status_code in (200, 429), login.text
    mailbox.wait_for(account.email, "Confirm your email address for Gatehouse")
    emailed: set[str] = set()
    for email in mailbox.emails():
        token = token_in(email)
        emailed.update((token, f"#token={token}"))

    logs = stack.logs()
    # The logs are really there: one access-log line per request, with its request id.
    assert '"request_id"' in logs
    assert "/auth/token" in logs

    leaked = [
        secret
        for secret in gateway.seen_secrets | set(stack.datastore_passwords()) | emailed
        if secret in logs
    ]
    assert not leaked, f"{len(leaked)} credential(s) found in the logs"
    assert "#token=" not in logs, "an emailed link is in the logs"
