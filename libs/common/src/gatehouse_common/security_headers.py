"""Security headers of every response, and the Content-Security-Policy of HTML pages.

The request-context middleware passes every response's headers through
``with_security_headers``:

- ``X-Content-Type-Options: nosniff`` always;
- no ``Server`` header, whoever set it (an upstream's included);
- ``Cache-Control: no-store`` unless the route chose its own cache policy (the JWKS is
  ``public, max-age=60``): caching is opted into, so no personal data or token is ever
  stored by a browser or a shared cache because a route forgot to say so;
- ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`` unless the route
  set its own: a JSON answer loads nothing and is framed by no one. An HTML page (the API
  docs) sets ``html_page_policy(...)`` and lists what its scripts need.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

API_RESPONSE_POLICY = "default-src 'none'; frame-ancestors 'none'"

_CACHE_CONTROL = b"cache-control"
_CSP = b"content-security-policy"
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_DROPPED = frozenset({b"server", b"x-content-type-options"})
_DEFAULTS = ((_CACHE_CONTROL, b"no-store"), (_CSP, API_RESPONSE_POLICY.encode()))


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """``headers`` (lower-case names, as ASGI has them) with the headers above applied."""
    kept: Headers = []
    present: set[bytes] = set()
    for name, value in headers:
        if name in _DROPPED:
            continue
        present.add(name)
        kept.append((name, value))
    kept.append(_NOSNIFF)
    kept.extend(default for default in _DEFAULTS if default[0] not in present)
    return kept


def script_hash(source: str) -> str:
    """The CSP source expression that allows exactly this inline script."""
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def html_page_policy(
    *,
    scripts: Iterable[str] = (),
    styles: Iterable[str] = (),
    images: Iterable[str] = (),
) -> str:
    """A restrictive policy for an HTML page: its own origin plus the sources it names.

    ``scripts`` holds ``script_hash(...)`` values for inline scripts (or a ``'nonce-...'``),
    and origins for external ones; nothing may frame the page, post a form elsewhere or
    change its base URL.
    """
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *scripts],
        "style-src": ["'self'", *styles],
        "img-src": ["'self'", "data:", *images],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())
