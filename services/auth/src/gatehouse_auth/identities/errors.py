"""Errors of the identities domain."""

from __future__ import annotations

from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError


class EmailTaken(ProblemError):
    status = 409
    problem_type = f"{PROBLEM_TYPE_BASE}email-taken"

    def __init__(self) -> None:
        super().__init__("An account with this email already exists.")
