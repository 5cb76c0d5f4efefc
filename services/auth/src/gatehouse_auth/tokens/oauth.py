"""The OAuth endpoints' form bodies (RFC 6749 §3.2) and error responses (§5.2)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
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


FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# Far more than any OAuth request has; unrecognised parameters are ignored (§3.2), not stored.
_MAX_PARAMETERS = 32


async def _form_parameters(request: Request) -> dict[str, str]:
    """The body's parameters, parsed here rather than by FastAPI's form handling, which takes
    multipart bodies too and lets the last of a repeated parameter win.

    RFC 6749 §3.2 and §4.3.2 ask for ``application/x-www-form-urlencoded`` and say a parameter
    must not be sent more than once: anything else is ``invalid_request``, as is a body that
    is not valid UTF-8 form encoding.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise OAuthError("invalid_request", f"The request body must be {FORM_MEDIA_TYPE}.")
    try:
        pairs = parse_qsl(
            (await request.body()).decode(),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=_MAX_PARAMETERS,
        )
    except ValueError:  # UnicodeDecodeError included
        raise OAuthError("invalid_request", "The request body is not a valid form.") from None
    parameters: dict[str, str] = {}
    for name, value in pairs:
        if name in parameters:
            raise OAuthError("invalid_request", f"The '{name}' parameter is repeated.")
        parameters[name] = value
    return parameters


# An OAuth endpoint's form parameters by name; ``form_request_body`` documents them.
FormParameters = Annotated[dict[str, str], Depends(_form_parameters)]


def form_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``openapi_extra`` documenting ``model`` as the endpoint's form body (the
    parameters come from ``FormParameters``, which FastAPI cannot see into)."""
    return {
        "requestBody": {
            "required": True,
            "content": {FORM_MEDIA_TYPE: {"schema": model.model_json_schema()}},
        }
    }


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
