"""Header policy of the proxy: what goes upstream, what comes back.

Hop-by-hop headers are dropped both ways; the client's forwarding headers are replaced (or,
from a trusted proxy, extended); identity-looking headers never reach an upstream; the request
id and the trace context are the gateway's; a response's ``Location`` never names an upstream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import ip_address
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from starlette.types import Scope

from gatehouse_common.request_id import REQUEST_ID_HEADER, current_request_id
from gatehouse_common.settings import IPNetwork

Header = tuple[bytes, bytes]

# RFC 9110 §7.6.1 plus the de-facto ones; headers named in `Connection` are removed too.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        # Answered by the gateway's own server; passed on, it would make the upstream
        # client wait for a second 100 Continue.
        b"expect",
    }
)
# Set by the gateway itself; a client's copy is dropped (or, from a trusted proxy, extended).
_FORWARDING = frozenset({b"forwarded", b"x-real-ip", b"x-forwarded-for", b"x-forwarded-proto"})
_FORWARDING_PREFIX = b"x-forwarded-"
# Headers some stacks read as an already authenticated identity. Upstreams trust none of them,
# and the gateway drops them so that no component behind it ever can.
_IDENTITY_PREFIXES = (
    b"x-user",
    b"x-auth",
    b"x-remote-",
    b"remote-user",
    b"x-principal",
    b"x-email",
    b"x-scope",
    b"x-jwt",
    b"x-identity",
    b"x-client-cert",
    b"x-ssl-client",
    b"x-consumer",
    b"x-userinfo",
    b"x-ms-client-principal",
    b"x-amzn-oidc",
    b"x-goog-authenticated",
)
# The ASGI server writes its own; an upstream's copy would be a duplicate.
_SERVER_SET_RESPONSE_HEADERS = frozenset({b"date", b"server"})
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
_DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | _SERVER_SET_RESPONSE_HEADERS
_NO_TOKENS: frozenset[bytes] = frozenset()
# Response headers holding a URL that may name the upstream itself (RFC 9110 §10.2.2, §8.7).
_URL_HEADERS = frozenset({b"location", b"content-location"})
_REQUEST_ID = REQUEST_ID_HEADER.encode()


def upstream_headers(scope: Scope, trusted_proxies: Sequence[IPNetwork]) -> list[Header]:
    """The request headers to send upstream."""
    raw: Iterable[Header] = scope["headers"]
    named_by_connection = _connection_tokens(raw)
    client = scope.get("client")
    peer = client[0] if client else None
    trusted = _is_trusted(peer, trusted_proxies)
    kept: list[Header] = []
    forwarded_for: list[bytes] = []
    forwarded_proto = forwarded_host = host = None
    for name, value in raw:
        if name in HOP_BY_HOP or name in named_by_connection:
            continue
        if name == b"host":
            host = value
        elif name in _FORWARDING or name.startswith(_FORWARDING_PREFIX):
            if trusted:
                if name == b"x-forwarded-for":
                    forwarded_for.append(value)
                elif name == b"x-forwarded-proto":
                    forwarded_proto = value
                elif name == b"x-forwarded-host":
                    forwarded_host = value
        elif name != _REQUEST_ID and not name.startswith(_IDENTITY_PREFIXES):
            kept.append((name, value))

    if peer:
        forwarded_for.append(peer.encode())
    if forwarded_for:
        kept.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    kept.append((b"x-forwarded-proto", forwarded_proto or scope["scheme"].encode()))
    if forwarded_host or host:
        kept.append((b"x-forwarded-host", forwarded_host or host or b""))
    kept.append((_REQUEST_ID, current_request_id().encode()))
    return _with_current_trace(kept)


class InternalOrigins:
    """The upstreams' host names, which no answer may show a client (on any port).

    An upstream that builds an absolute URL from its own address (Starlette's trailing-slash
    redirect does, from the ``Host`` the gateway's client sent it) would hand the client
    ``http://users:8002/...``: an internal name, and a URL the client cannot follow.
    """

    def __init__(self, base_urls: Iterable[str]) -> None:
        self._hosts = frozenset((urlsplit(url).hostname or "").lower() for url in base_urls)

    def relative(self, url: bytes) -> bytes:
        """``url`` as a path when it names an upstream, otherwise unchanged."""
        try:
            parts = urlsplit(url.decode("latin-1"))
        except ValueError:  # e.g. an unbalanced "[": nobody can follow it
            return b"/"
        if not parts.netloc or (parts.hostname or "").lower() not in self._hosts:
            return url
        # One leading slash: "//host/..." would be a network-path reference to another host.
        path = "/" + parts.path.lstrip("/\\")
        return parts._replace(scheme="", netloc="", path=path).geturl().encode("latin-1")


def response_headers(raw: Iterable[Header], internal: InternalOrigins) -> list[Header]:
    """The upstream's response headers to pass on to the client, names in lower case."""
    headers = [(name.lower(), value) for name, value in raw]
    named_by_connection = _connection_tokens(headers)
    return [
        (name, internal.relative(value) if name in _URL_HEADERS else value)
        for name, value in headers
        if name not in _DROPPED_RESPONSE_HEADERS and name not in named_by_connection
    ]


def _is_trusted(peer: str | None, trusted_proxies: Sequence[IPNetwork]) -> bool:
    if not peer or not trusted_proxies:
        return False
    try:
        address = ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted_proxies)


def _connection_tokens(headers: Iterable[Header]) -> frozenset[bytes]:
    values = [value for name, value in headers if name == b"connection"]
    if not values:  # the common case, without building a set
        return _NO_TOKENS
    return frozenset(
        token.strip().lower() for value in values for token in value.split(b",") if token.strip()
    )


def _with_current_trace(headers: list[Header]) -> list[Header]:
    """Replace the client's ``traceparent`` with the gateway's span when tracing is on.

    With tracing off there is no current span, nothing is injected, and the client's
    ``traceparent`` goes upstream unchanged; the propagators are not even asked (they cost
    about 2 % of a proxied request's CPU).
    """
    if not trace.get_current_span().get_span_context().is_valid:
        return headers
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        return headers
    kept = [(name, value) for name, value in headers if name not in _TRACE_HEADERS]
    kept.extend((name.encode(), value.encode()) for name, value in carrier.items())
    return kept
