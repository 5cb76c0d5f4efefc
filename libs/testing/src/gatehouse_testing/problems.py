"""Checks of RFC 9457 problem answers, as the contract defines them, for every test suite."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest


def problem_mismatches(response: httpx2.Response, status: int) -> list[str]:
    """What keeps ``response`` from being a problem with ``status``; empty when it is one.

    A problem: that status, ``application/problem+json``, a body with ``type``, ``title``,
    ``status`` and ``detail``, and a ``request_id`` equal to the ``X-Request-ID`` header.
    """
    if response.status_code != status:
        return [f"status {response.status_code}, not {status}: {response.text[:500]}"]
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("application/problem+json"):
        return [f"content-type {content_type!r}"]
    body = response.json()
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    mismatches = [
        f"no {member!r}" for member in ("type", "title", "detail") if not body.get(member)
    ]
    if body.get("status") != status:
        mismatches.append(f"body status {body.get('status')!r}")
    if body.get("request_id") != response.headers.get("x-request-id"):
        mismatches.append("request_id differs from the X-Request-ID header")
    return mismatches


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """Fail unless ``response`` is a problem with ``status``; return its body."""
    mismatches = problem_mismatches(response, status)
    if mismatches:
        pytest.fail("not the expected problem: " + "; ".join(mismatches))
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for an access token."""
    return {"Authorization": f"Bearer {token}"}
