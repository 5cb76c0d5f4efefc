from __future__ import annotations

from typing import Annotated, Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field

# A parameter that is sent is never empty (an empty one is RFC 6749 invalid_request, as a missing
# one is).
_Parameter = Annotated[str, Field(min_length=1)]


class TokenRequest(BaseModel):
    """The token endpoint's form (RFC 6749 §4.3 and §6): `grant_type` and the members its
    grant needs. A missing or empty member is `invalid_request`, an unknown grant
    `unsupported_grant_type` (both 400)."""

    # One branch per grant says which members it needs; the endpoint checks them itself, so
    # that a missing one is RFC 6749 invalid_request rather than a generic 422. MISSING, not
    # None: a member may be left out, not be null.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "title": "Password grant (RFC 6749 §4.3)",
                    "properties": {"grant_type": {"const": "password"}},
                    "required": ["username", "password"],
                },
                {
                    "title": "Refresh token grant (RFC 6749 §6)",
                    "properties": {"grant_type": {"const": "refresh_token"}},
                    "required": ["refresh_token"],
                },
            ]
        }
    )

    grant_type: _Parameter = Field(
        description="`password` or `refresh_token`; any other is `unsupported_grant_type`.",
        examples=["password"],
    )
    username: _Parameter | MISSING = Field(
        default=MISSING, description="The account's email (password grant)."
    )
    password: _Parameter | MISSING = Field(
        default=MISSING, description="The account's password (password grant)."
    )
    refresh_token: _Parameter | MISSING = Field(
        default=MISSING, description="The refresh token to spend (refresh_token grant)."
    )


class RevokeRequest(BaseModel):
    """The revocation endpoint's form (RFC 7009 §2.1); ``token_type_hint`` is not needed. A
    missing or empty ``token`` is ``invalid_request``."""

    token: _Parameter = Field(description="The refresh token to revoke.")


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
