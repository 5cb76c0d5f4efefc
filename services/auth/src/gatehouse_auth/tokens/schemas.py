from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TokenRequest(BaseModel):
    """The token endpoint's form (RFC 6749 §4.3 and §6).

    Every member is optional here so that a missing one is an RFC 6749 ``invalid_request``
    (400) rather than a generic 422.
    """

    grant_type: str | None = Field(default=None, examples=["password"])
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None


class RevokeRequest(BaseModel):
    """The revocation endpoint's form (RFC 7009 §2.1); ``token_type_hint`` is not needed."""

    token: str | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str = Field(description="Opaque; single use. Keep it secret.")
    scope: str = Field(examples=["users:read users:write"])


class PublicJWK(BaseModel):
    kty: str
    kid: str
    alg: str
    use: Literal["sig"]
    n: str
    e: str


class JWKSet(BaseModel):
    keys: list[PublicJWK]
