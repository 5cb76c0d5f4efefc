"""Errors of the token endpoint that are problems (its RFC 6749 errors are in ``oauth.py``)."""

from __future__ import annotations

from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError


class LoginThrottled(ProblemError):
    status = 429
    problem_type = f"{PROBLEM_TYPE_BASE}login-throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many failed logins; try again later.",
            headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
        )
