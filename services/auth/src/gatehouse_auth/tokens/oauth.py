"""RFC 6749 §5.2 error responses of the token endpoint."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Literal, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

OAuthErrorCode = Literal["invalid_request", "invalid_grant", "unsupported_grant_type"]

# RFC 6749 §5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthErrorBody(BaseModel):
    error: OAuthErrorCode
    error_description: str


class OAuthError(Exception):
    def __init__(self, error: OAuthErrorCode, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


async def _oauth_error_handler(_: Request, error: Exception) -> JSONResponse:
    oauth_error = cast("OAuthError", error)
    body = OAuthErrorBody(error=oauth_error.error, error_description=oauth_error.description)
    return JSONResponse(body.model_dump(), status_code=400, headers=NO_STORE)


class OAuthRoute(APIRoute):
    """A route of the OAuth endpoints: a parameter that fails validation is RFC 6749 (§5.2) and
    RFC 7009 (§2.2.1) ``invalid_request``, not a 422 problem.

    So a required parameter can be declared required, and the OpenAPI document says so.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                names = sorted({str(error["loc"][-1]) for error in exc.errors() if error["loc"]})
                raise OAuthError(
                    "invalid_request", f"Missing or invalid parameter: {', '.join(names)}."
                ) from None

        return handle


def install_oauth_error_handler(app: FastAPI) -> None:
    app.add_exception_handler(OAuthError, _oauth_error_handler)


def oauth_error_responses() -> dict[int | str, dict[str, object]]:
    return {
        400: {
            "model": OAuthErrorBody,
            "description": "RFC 6749 error: invalid_request, invalid_grant or "
            "unsupported_grant_type",
        }
    }
