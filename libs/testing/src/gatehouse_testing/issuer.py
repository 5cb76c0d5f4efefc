"""A test token issuer: signs access tokens like auth does and serves its JWKS in-process.

Services other than auth only consume tokens; this stands in for auth in their tests.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import httpx2
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

ISSUER = "https://auth.gatehouse.test"
AUDIENCE = "gatehouse"
JWKS_URL = "http://auth.test/auth/.well-known/jwks.json"


def verification_settings() -> dict[str, str]:
    """The ``TokenVerificationSettings`` fields of a service that accepts this issuer's tokens
    (its JWKS served in-process at ``JWKS_URL``), for a service's test settings."""
    return {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "jwks_url": JWKS_URL}


class TestIssuer:
    """Holds RSA signing keys, mints tokens, and answers JWKS requests through a transport."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys: dict[str, RSAKey] = {}
        self.active_kid = self.add_key()
        self.jwks_requests = 0
        self.jwks_available = True

    def add_key(self, kid: str | None = None) -> str:
        kid = kid or uuid.uuid4().hex[:12]
        self.keys[kid] = RSAKey.generate_key(
            2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"}
        )
        return kid

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet(list(self.keys.values())).as_dict(private=False))

    def mint(  # noqa: PLR0913 - a test overrides any claim or header by keyword
        self,
        subject: str | None = None,
        *,
        scopes: str = "users:read users:write",
        email: str | None = None,
        lifetime: int = 900,
        kid: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        key: RSAKey | None = None,
    ) -> str:
        now = int(time.time())
        subject = subject or str(uuid.uuid4())
        kid = kid or self.active_kid
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "email": email or f"{subject[:8]}@example.com",
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "sid": str(uuid.uuid4()),
            "scope": scopes,
            **(claims or {}),
        }
        body = {name: value for name, value in body.items() if value is not None}
        protected = {"alg": "RS256", "kid": kid, "typ": "at+jwt", **(header or {})}
        return jwt.encode(protected, body, key or self.keys[kid])

    def sign_segments(self, header: bytes, claims: bytes, kid: str | None = None) -> str:
        """A token of any header and claims bytes, validly RS256-signed with a published key.

        joserfc refuses to produce malformed tokens; hostile-input tests need them signed,
        so that the verifier's checks after the signature are reached too.
        """
        signing_input = f"{_base64url(header)}.{_base64url(claims)}"
        private_key = self.keys[kid or self.active_kid].get_op_key("sign")
        signature = private_key.sign(signing_input.encode(), PKCS1v15(), SHA256())
        return f"{signing_input}.{_base64url(signature)}"

    def transport(self) -> httpx2.MockTransport:
        """An httpx2 transport answering the JWKS URL, or failing while unavailable."""

        def handle(request: httpx2.Request) -> httpx2.Response:
            self.jwks_requests += 1
            if not self.jwks_available:
                raise httpx2.ConnectError("issuer down", request=request)
            return httpx2.Response(200, json=self.jwks())

        return httpx2.MockTransport(handle)


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
