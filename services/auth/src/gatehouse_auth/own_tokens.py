"""Auth's own bearer-protected endpoints verify access tokens as every other service does.

The verifier is the shared library code (``gatehouse_common.authentication``); only its JWKS
comes from the key set in memory instead of over HTTP, so auth never calls itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2

from gatehouse_auth.settings import AuthSettings
from gatehouse_auth.signing_keys import SigningKeySet
from gatehouse_common.authentication import token_verifier
from gatehouse_common.settings import TokenVerificationSettings
from gatehouse_common.tokens import AccessTokenVerifier

# Never resolved: requests to it are answered by the in-memory transport below.
_IN_MEMORY_JWKS_URL = "http://auth.in-memory/auth/.well-known/jwks.json"
# How late an expired token is still accepted; revocations are kept that much longer.
LEEWAY_SECONDS = 30


@asynccontextmanager
async def own_token_verifier(
    settings: AuthSettings, key_set: SigningKeySet
) -> AsyncIterator[AccessTokenVerifier]:
    def serve_jwks(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=key_set.public_jwks())

    verification = TokenVerificationSettings(
        jwt_issuer=settings.issuer,
        jwt_audience=settings.audience,
        jwks_url=_IN_MEMORY_JWKS_URL,
        jwt_leeway_seconds=LEEWAY_SECONDS,
    )
    async with token_verifier(verification, transport=httpx2.MockTransport(serve_jwks)) as verifier:
        yield verifier
