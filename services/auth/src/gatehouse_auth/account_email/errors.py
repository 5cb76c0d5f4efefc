"""Errors of the account-email domain (verification and password reset)."""

from __future__ import annotations

from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError


class EmailRequestsThrottled(ProblemError):
    status = 429
    problem_type = f"{PROBLEM_TYPE_BASE}email-requests-throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many email requests for this address; try again later.",
            headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
        )


class InvalidEmailToken(ProblemError):
    status = 400
    problem_type = f"{PROBLEM_TYPE_BASE}invalid-email-token"

    def __init__(self) -> None:
        super().__init__(
            "The token is unknown, expired or already used.",
            headers={"Cache-Control": "no-store"},
        )
