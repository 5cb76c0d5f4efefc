"""Errors of the sessions domain (a user's logins and password change)."""

from __future__ import annotations

from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError


class WrongPassword(ProblemError):
    status = 400
    problem_type = f"{PROBLEM_TYPE_BASE}wrong-password"

    def __init__(self) -> None:
        super().__init__("The current password is wrong.", headers={"Cache-Control": "no-store"})


class SessionNotFound(ProblemError):
    status = 404
    problem_type = f"{PROBLEM_TYPE_BASE}session-not-found"

    def __init__(self) -> None:
        super().__init__("You have no active login with this id.")
