"""Schemathesis fuzzes the merged OpenAPI document through the gateway: the document is true.

Every check (``--checks all``) in every phase (the document's examples, coverage of its
boundaries, random fuzzing, and stateful sequences that feed one response into the next
request), as a fresh user with a real access token. Left out are only the operations that
would end that user's own login or account midway (revoking, signing out, erasing, changing
the password). Any finding fails the test, and the run's output says what to replay.

The run floods the public endpoints with invalid logins and registrations from one address,
so the stack's per-address throttles trip: it runs after the other e2e tests (``floods``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree

import pytest

if TYPE_CHECKING:
    from tests.e2e.public_api import Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.floods, pytest.mark.timeout(900)]

# Operations that would end the fuzzing user's own login or account midway, as regular
# expressions over schemathesis's operation label "METHOD /path template", matched whole. Broad
# on purpose, so that endpoints added under these paths stay out without an edit here: revoking
# (RFC 7009), changing or resetting the password (every earlier login revoked), signing out
# (DELETE /auth/sessions and /auth/sessions/{id}, or anything below), erasing the account.
# A new operation that ends the caller's login or account gets a line here, in the same form
# (docs/running.md); everything else is fuzzed.
SELF_ENDING = (
    r"POST /auth/revoke",
    r"POST /auth/password(/reset)?",
    r"DELETE /auth/sessions(/.*)?",
    r"DELETE /users/me(/.*)?",
)
EXCLUDED = "^(" + "|".join(SELF_ENDING) + ")$"
# Per phase and operation: keeps the whole run within about two minutes on a CI machine.
MAX_EXAMPLES = 40
# The bound for the run.
RUN_TIMEOUT_SECONDS = 180
# register, token, jwks, users me (GET, PATCH), list, by id (GET, DELETE), health, ready.
MIN_OPERATIONS = 10


def test_the_published_document_is_true(gateway: Gateway, tmp_path: Path) -> None:
    account = gateway.register()
    tokens = gateway.login(account)
    report_path = tmp_path / "schemathesis-junit.xml"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        str(gateway.client.base_url.join("/openapi.json")),
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--header",
        f"Authorization: Bearer {tokens.access_token}",
        "--exclude-name-regex",
        EXCLUDED,
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-junit-path",
        str(report_path),
        "--no-color",
    ]
    print(f"schemathesis report and replay cache: {tmp_path}")

    # In tmp_path, where schemathesis also keeps what `st replay` needs, out of the work tree.
    run = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )

    # Exit code 0: no check failed on any operation and no operation errored.
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    # And something was tested: one test case per operation in the report, none failing.
    report = ElementTree.parse(report_path)  # noqa: S314 - our own run's report
    suite = report.getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) >= MIN_OPERATIONS, run.stdout[-5000:]
    assert suite.get("failures") == suite.get("errors") == "0", run.stdout[-20000:]


@pytest.mark.parametrize(
    ("operation", "self_ending"),
    [
        ("POST /auth/revoke", True),
        ("POST /auth/password", True),
        ("POST /auth/password/reset", True),
        ("DELETE /auth/sessions", True),
        ("DELETE /auth/sessions/{session_id}", True),
        ("DELETE /users/me", True),
        ("POST /auth/password/forgot", False),
        ("GET /auth/sessions", False),
        ("PATCH /users/me", False),
        ("DELETE /users/{profile_id}", False),  # needs admin: the fuzzing user is refused
        ("POST /auth/token", False),
    ],
)
def test_only_self_ending_operations_are_left_out(operation: str, self_ending: bool) -> None:
    assert (re.fullmatch(EXCLUDED, operation) is not None) == self_ending


def test_operations_have_readable_unique_ids_and_described_parameters(gateway: Gateway) -> None:
    document = gateway.client.get("/openapi.json").json()
    operations = [
        operation
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    ]
    ids = [operation["operationId"] for operation in operations]
    assert len(ids) == len(set(ids)) >= MIN_OPERATIONS, ids
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in ids), ids
    for operation in operations:
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (operation["operationId"], parameter)
