"""Errors of the profiles domain."""

from __future__ import annotations

from gatehouse_common.authentication import InvalidAccessToken
from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError


class ProfileNotFound(ProblemError):
    status = 404
    problem_type = f"{PROBLEM_TYPE_BASE}not-found"

    def __init__(self) -> None:
        super().__init__("No profile has this id.")


class InvalidCursor(ProblemError):
    status = 422
    problem_type = f"{PROBLEM_TYPE_BASE}validation-error"

    def __init__(self) -> None:
        super().__init__("The cursor is not one this service issued; start again without it.")


class ErasedAccountToken(InvalidAccessToken):
    """A token of an erased account (issued before the erasure reached every service)."""

    def __init__(self) -> None:
        super().__init__("the account was erased")
