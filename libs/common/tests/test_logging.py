"""Redaction: secrets never reach a log line, whatever the key or where the value hides."""

from __future__ import annotations

import json
import logging

import pytest

from gatehouse_common.logging import REDACTED, configure_logging, get_logger

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.fixture(autouse=True)
def json_logs() -> None:
    configure_logging("test")


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def test_secret_named_fields_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    get_logger("t").info(
        "login",
        password="hunter2",
        refresh_token="r-123",
        headers={"Authorization": "Bearer abc", "Cookie": "sid=1", "accept": "json"},
        email="a@example.com",
    )

    (line,) = _lines(capsys)
    assert line["password"] == REDACTED
    assert line["refresh_token"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED, "accept": "json"}
    assert line["email"] == "a@example.com"


def test_credentials_inside_free_text_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    get_logger("t").warning(f"upstream said Bearer {JWT} and token {JWT}", detail=[JWT])

    out = capsys.readouterr().out
    assert JWT not in out
    assert "Bearer abc" not in out
    assert REDACTED in out


def test_standard_library_loggers_are_json_and_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger("some.library").warning("retrying with %s", f"Authorization: Bearer {JWT}")

    (line,) = _lines(capsys)
    assert line["service"] == "test"
    assert line["level"] == "warning"
    assert JWT not in str(line["message"])


def test_exceptions_are_structured_without_frame_locals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def check(password: str) -> None:
        raise ValueError("bad")

    try:
        check("hunter2-local")
    except ValueError:
        get_logger("t").exception("failed")

    out = capsys.readouterr().out
    (line,) = [json.loads(text) for text in out.splitlines() if text]
    assert line["level"] == "error"
    assert line["exception"][0]["exc_type"] == "ValueError"
    assert "hunter2-local" not in out


def test_level_is_applied_and_can_change(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", "WARNING")
    get_logger("t").info("quiet")
    configure_logging("other", "DEBUG")
    get_logger("t").debug("loud")

    (line,) = _lines(capsys)
    assert line["message"] == "loud"
    assert line["service"] == "other"
    assert line["logger"] == "t"
