"""Access-token verification shared by the gateway and every upstream service."""

from gatehouse_common.tokens.jwks import JWKSClient
from gatehouse_common.tokens.verifier import (
    ALLOWED_ALGORITHMS,
    AccessTokenVerifier,
    InvalidTokenError,
    Principal,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AccessTokenVerifier",
    "InvalidTokenError",
    "JWKSClient",
    "Principal",
]
