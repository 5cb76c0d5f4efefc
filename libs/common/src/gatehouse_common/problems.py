"""RFC 9457 problem details: one error shape for every service.

Every error response that is not an OAuth token-endpoint error is ``application/problem+json``
with ``type``, ``title``, ``status``, ``detail`` and the ``request_id`` that the response's
``X-Request-ID`` header carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gatehouse_common.logging import get_logger
from gatehouse_common.request_id import current_request_id

_log = get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://gatehouse.dev/problems/"


class Problem(BaseModel):
    """The documented shape of an error response (for OpenAPI)."""

    type: str = Field(examples=[f"{PROBLEM_TYPE_BASE}not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["No profile has this id."])
    request_id: str = Field(examples=["3f2b8c1e9a7d4e5f8a6b2c1d0e9f8a7b"])


# RFC 9110's names where Python's HTTPStatus (before 3.13) still has the RFC 7231 ones.
_RFC9110_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def status_title(status: int) -> str:
    """A problem's ``title``: the status's reason phrase (RFC 9110)."""
    return _RFC9110_TITLES.get(status) or HTTPStatus(status).phrase


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json answers."""
    return {
        status: {
            "model": Problem,
            "description": status_title(status),
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status in statuses
    }


class ProblemError(Exception):
    """A domain error, answered with a problem document by the one handler below.

    Each domain declares its errors in its ``errors.py`` as subclasses (``EmailTaken``,
    ``ProfileNotFound``) setting ``status`` and ``problem_type``; the ``title`` is the status's
    reason phrase. Services raise them; no endpoint translates errors itself.
    """

    status: int = 500
    problem_type: str = "about:blank"

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class DependencyUnavailable(ProblemError):
    """A required datastore does not answer: 503, naming it, never a 500."""

    status = 503
    problem_type = f"{PROBLEM_TYPE_BASE}dependency-unavailable"

    def __init__(self, dependency: str) -> None:
        super().__init__(
            f"A required datastore ({dependency}) is not reachable; try again shortly.",
            headers={"Retry-After": "5", "Cache-Control": "no-store"},
            extra={"dependency": dependency},
        )


def problem_response(
    status: int,
    detail: str,
    *,
    problem_type: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": status_title(status),
        "status": status,
        "detail": detail,
        "request_id": current_request_id(),
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def _problem_error_handler(_: Request, error: Exception) -> JSONResponse:
    exc = cast("ProblemError", error)
    return problem_response(
        exc.status,
        exc.detail,
        problem_type=exc.problem_type,
        headers=exc.headers,
        extra=exc.extra,
    )


def _unavailable_handler(dependency: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def unavailable(request: Request, error: Exception) -> Response:
        _log.warning("datastore_unavailable", dependency=dependency, error=type(error).__name__)
        return await _problem_error_handler(request, DependencyUnavailable(dependency))

    return unavailable


async def _http_exception_handler(_: Request, error: Exception) -> JSONResponse:
    exc = cast("StarletteHTTPException", error)
    detail = exc.detail if isinstance(exc.detail, str) else status_title(exc.status_code)
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _validation_error_handler(_: Request, error: Exception) -> JSONResponse:
    exc = cast("RequestValidationError", error)
    # Only location, message and type: the rejected input may be a password.
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return problem_response(
        422,
        "The request is not valid.",
        problem_type=f"{PROBLEM_TYPE_BASE}validation-error",
        extra={"errors": errors},
    )


def install_problem_handlers(
    app: FastAPI, unavailable: Mapping[type[Exception], str] | None = None
) -> None:
    """Answer HTTP, validation and domain errors as problem+json.

    ``unavailable`` maps a datastore client's connection errors to the datastore's name: raised
    anywhere, they are answered 503 ``DependencyUnavailable`` (and logged), never 500.
    Unexpected exceptions are answered by ``RequestContextMiddleware``, which sits outside
    the routing layer and so also covers errors raised by other middleware.
    """
    app.add_exception_handler(ProblemError, _problem_error_handler)
    for error_type, dependency in (unavailable or {}).items():
        app.add_exception_handler(error_type, _unavailable_handler(dependency))
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
