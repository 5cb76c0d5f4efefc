"""Problem types of the auth service, and 503 answers for datastore outages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gatehouse_common.logging import get_logger
from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError, problem_response

_log = get_logger(__name__)

UNAVAILABLE_TYPE = f"{PROBLEM_TYPE_BASE}dependency-unavailable"


class EmailTaken(ProblemError):
    status = 409
    title = "Conflict"
    problem_type = f"{PROBLEM_TYPE_BASE}email-taken"

    def __init__(self) -> None:
        super().__init__("An account with this email already exists.")


class LoginThrottled(ProblemError):
    status = 429
    title = "Too Many Requests"
    problem_type = f"{PROBLEM_TYPE_BASE}login-throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many failed logins; try again later.",
            headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
        )


class EmailRequestsThrottled(ProblemError):
    status = 429
    title = "Too Many Requests"
    problem_type = f"{PROBLEM_TYPE_BASE}email-requests-throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many email requests for this address; try again later.",
            headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
        )


class InvalidEmailToken(ProblemError):
    status = 400
    title = "Bad Request"
    problem_type = f"{PROBLEM_TYPE_BASE}invalid-email-token"

    def __init__(self) -> None:
        super().__init__(
            "The token is unknown, expired or already used.",
            headers={"Cache-Control": "no-store"},
        )


class WrongPassword(ProblemError):
    status = 400
    title = "Bad Request"
    problem_type = f"{PROBLEM_TYPE_BASE}wrong-password"

    def __init__(self) -> None:
        super().__init__("The current password is wrong.", headers={"Cache-Control": "no-store"})


class SessionNotFound(ProblemError):
    status = 404
    title = "Not Found"
    problem_type = f"{PROBLEM_TYPE_BASE}session-not-found"

    def __init__(self) -> None:
        super().__init__("You have no active login with this id.")


def _unavailable(dependency: str) -> JSONResponse:
    return problem_response(
        503,
        f"A required datastore ({dependency}) is not reachable; try again shortly.",
        problem_type=UNAVAILABLE_TYPE,
        headers={"Retry-After": "5", "Cache-Control": "no-store"},
        extra={"dependency": dependency},
    )


async def _mongo_unavailable(request: Request, error: Exception) -> JSONResponse:
    _log.warning("datastore_unavailable", dependency="mongodb", error=type(error).__name__)
    return _unavailable("mongodb")


async def _redis_unavailable(request: Request, error: Exception) -> JSONResponse:
    _log.warning("datastore_unavailable", dependency="redis", error=type(error).__name__)
    return _unavailable("redis")


def install_unavailable_handlers(app: FastAPI) -> None:
    """An outage of MongoDB or Redis answers 503 wherever it surfaces, never 500."""
    # ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
    app.add_exception_handler(ConnectionFailure, _mongo_unavailable)
    app.add_exception_handler(RedisConnectionError, _redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, _redis_unavailable)
