"""Security headers of every response, and the Content-Security-Policy of HTML pages.

The request-context middleware passes every response's headers through
``with_security_headers``, which also sets the request's ``X-Request-ID``:

- ``X-Content-Type-Options: nosniff`` always;
- no ``Server`` header, whoever set it (an upstream's included);
- ``Cache-Control: no-store`` unless the route chose its own cache policy (the JWKS is
  ``public, max-age=60``): caching is opted into, so no personal data or token is ever
  stored by a browser or a shared cache because a route forgot to say so;
- ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`` unless the route
  set its own: a JSON answer loads nothing and is framed by no one. An HTML page (the API
  docs) sets ``html_page_policy()``.
"""

from __future__ import annotations

from collections.abc import Iterable

from gatehouse_common.request_id import REQUEST_ID_HEADER

Headers = list[tuple[bytes, bytes]]

API_RESPONSE_POLICY = "default-src 'none'; frame-ancestors 'none'"

_CACHE_CONTROL = b"cache-control"
_CSP = b"content-security-policy"
_REQUEST_ID = REQUEST_ID_HEADER.encode()
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (_CACHE_CONTROL, b"no-store")
_DENY_ALL = (_CSP, API_RESPONSE_POLICY.encode())
_DROPPED = frozenset({b"server", b"x-content-type-options", _REQUEST_ID})


def with_security_headers(headers: Iterable[tuple[bytes, bytes]], request_id: bytes) -> Headers:
    """``headers`` (lower-case names, as ASGI has them) with the headers above applied and
    ``X-Request-ID: request_id`` instead of any the app set. One pass, one new list: this
    runs for every response."""
    kept: Headers = []
    has_cache_control = has_policy = False
    for header in headers:
        name = header[0]
        if name in _DROPPED:
            continue
        if name == _CACHE_CONTROL:
            has_cache_control = True
        elif name == _CSP:
            has_policy = True
        kept.append(header)
    kept.append(_NOSNIFF)
    if not has_cache_control:
        kept.append(_NO_STORE)
    if not has_policy:
        kept.append(_DENY_ALL)
    kept.append((_REQUEST_ID, request_id))
    return kept


def html_page_policy(
    *,
    scripts: Iterable[str] = (),
    styles: Iterable[str] = (),
    images: Iterable[str] = (),
) -> str:
    """A restrictive policy for an HTML page: its own origin plus the sources it names.

    With nothing named, the page may load only from its own origin (the gateway's ``/docs``):
    serve scripts and styles as files rather than inline, and no ``'unsafe-inline'`` or
    hash is needed. Nothing may frame the page, post a form elsewhere or change its base URL.
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
