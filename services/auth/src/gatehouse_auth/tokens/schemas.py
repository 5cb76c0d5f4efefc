from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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
