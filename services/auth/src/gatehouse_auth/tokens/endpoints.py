from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from gatehouse_auth.dependencies import ClientAddress, SigningKeys, Tokens
from gatehouse_auth.tokens.oauth import (
    NO_STORE,
    FormParameters,
    OAuthError,
    form_request_body,
    oauth_error_responses,
)
from gatehouse_auth.tokens.schemas import JWKSet, RevokeRequest, TokenRequest, TokenResponse
from gatehouse_common.problems import problem_responses

router = APIRouter(prefix="/auth", tags=["auth"])


def _required(name: str, value: str | None) -> str:
    if not value:
        raise OAuthError("invalid_request", f"The '{name}' parameter is required.")
    return value


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="Get tokens (OAuth 2.0 password or refresh_token grant)",
    description="RFC 6749 §4.3 (`grant_type=password&username=EMAIL&password=...`) and §6 "
    "(`grant_type=refresh_token&refresh_token=...`). Every refresh returns a new refresh "
    "token and spends the old one; presenting a spent one revokes the whole login. "
    "The body must be `application/x-www-form-urlencoded` with no parameter repeated "
    "(RFC 6749 §3.2); otherwise 400 `invalid_request`.",
    openapi_extra=form_request_body(TokenRequest),
    responses={
        200: {"headers": {"Cache-Control": {"schema": {"type": "string"}}}},
        **oauth_error_responses(),
        **problem_responses(429, 503),
    },
)
async def token(parameters: FormParameters, tokens: Tokens, address: ClientAddress) -> JSONResponse:
    form = TokenRequest.model_validate(parameters)
    grant = _required("grant_type", form.grant_type)
    if grant == "password":
        issued = await tokens.password_grant(
            _required("username", form.username), _required("password", form.password), address
        )
    elif grant == "refresh_token":
        issued = await tokens.refresh_grant(_required("refresh_token", form.refresh_token))
    else:
        raise OAuthError(
            "unsupported_grant_type", "Supported grant types: password, refresh_token."
        )
    return JSONResponse(issued.model_dump(), headers=NO_STORE)


@router.post(
    "/revoke",
    summary="Revoke a refresh token and its whole login (RFC 7009)",
    description="Always 200 for a well-formed request, also for unknown tokens. "
    "Access tokens cannot be revoked; they expire.",
    openapi_extra=form_request_body(RevokeRequest),
    responses={
        200: {"description": "Revoked, or nothing to revoke (empty body)"},
        **oauth_error_responses(),
        **problem_responses(503),
    },
)
async def revoke(parameters: FormParameters, tokens: Tokens) -> Response:
    await tokens.revoke(_required("token", RevokeRequest.model_validate(parameters).token))
    return Response(status_code=200, headers=NO_STORE)


@router.get(
    "/.well-known/jwks.json",
    response_model=JWKSet,
    summary="Public signing keys (JWK set)",
    description="Every key that may still verify a live access token; public members only.",
)
async def jwks(keys: SigningKeys) -> JSONResponse:
    document: dict[str, Any] = keys.public_jwks()
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})
