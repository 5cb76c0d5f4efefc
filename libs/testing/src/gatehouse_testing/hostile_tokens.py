"""Access tokens of the shapes that once crashed verification to a 500 (issue 11), and
relatives: every service and the gateway must answer each with 401 ``invalid_token``.

Each token is a ``str`` of code points below 256, as an ASGI server decodes header bytes;
send it with ``bearer_header_bytes`` (httpx2 encodes ``str`` header values as ASCII only).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from gatehouse_testing.issuer import TestIssuer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hostile_tokens(issuer: TestIssuer) -> dict[str, str]:
    """Malformed tokens by description; those that reach the claims are validly signed."""
    now = int(time.time())
    header: dict[str, Any] = {"alg": "RS256", "typ": "at+jwt", "kid": issuer.active_kid}
    claims: dict[str, Any] = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "3d1f5c4e-6c1a-4f6e-9a1b-0f2d8c7e5a90",
        "iat": now,
        "exp": now + 600,
        "jti": "hostile",
        "scope": "users:read users:write admin",
    }

    def signed(header_members: dict[str, Any], claim_members: dict[str, Any]) -> str:
        return issuer.sign_segments(
            json.dumps({**header, **header_members}).encode(),
            json.dumps({**claims, **claim_members}).encode(),
        )

    valid_header = _b64(json.dumps(header).encode())
    return {
        "alg is a list": signed({"alg": ["RS256"]}, {}),
        "alg is an object": signed({"alg": {"RS256": True}}, {}),
        # 3000 levels stay inside the 8 KiB token limit, so the parser meets them.
        "deeply nested header": _b64(b"[" * 3000 + b"]" * 3000) + ".e30.c2ln",
        "non-ASCII bytes in the payload segment": f"{valid_header}.\xe9\xff30.c2ln",
        "kid is null": signed({"kid": None}, {}),
        "exp is a string": signed({}, {"exp": "tomorrow"}),
        "exp of 400 digits": signed({}, {"exp": 10**400}),
        "aud is an object": signed({}, {"aud": {issuer.audience: True}}),
        "scope is a list": signed({}, {"scope": ["admin"]}),
        "longer than 8 KiB": valid_header + "." + "A" * 9000 + ".c2ln",
    }


def bearer_header_bytes(token: str) -> dict[bytes, bytes]:
    """An ``Authorization`` header carrying ``token`` byte for byte (Latin-1)."""
    return {b"authorization": b"Bearer " + token.encode("latin-1")}
