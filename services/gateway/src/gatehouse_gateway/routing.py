"""The route table: which upstream serves a path, and which routes are public.

Routing is by path prefix only and never rewrites the path: ``/users/me`` is sent to the users
upstream as ``/users/me``. Scopes are not checked here: the upstreams are the one place that
knows what each route needs (see docs/gateway.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gatehouse_gateway.settings import GatewaySettings


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    prefix: str
    base_url: str

    def serves(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")


# Reachable without a token. The gateway's own /health, /ready, /docs and /openapi.json are
# FastAPI routes outside the proxy and need no entry here.
PUBLIC_ROUTES = frozenset(
    {
        ("POST", "/auth/register"),
        ("POST", "/auth/token"),
        ("POST", "/auth/revoke"),
        # Emailed tokens are the credential here; /auth/verify/resend needs an access token.
        ("POST", "/auth/verify"),
        ("POST", "/auth/password/forgot"),
        ("POST", "/auth/password/reset"),
        ("GET", "/auth/.well-known/jwks.json"),
        ("HEAD", "/auth/.well-known/jwks.json"),
    }
)


@dataclass(frozen=True, slots=True)
class RouteTable:
    upstreams: tuple[Upstream, ...]
    public_routes: frozenset[tuple[str, str]] = PUBLIC_ROUTES

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> RouteTable:
        return cls(
            upstreams=(
                Upstream("auth", "/auth", str(settings.auth_url).rstrip("/")),
                Upstream("users", "/users", str(settings.users_url).rstrip("/")),
            )
        )

    def upstream_for(self, path: str) -> Upstream | None:
        for upstream in self.upstreams:
            if upstream.serves(path):
                return upstream
        return None

    def is_public(self, method: str, path: str) -> bool:
        return (method, path) in self.public_routes


def has_dot_segment(path: str) -> bool:
    """True for ``.``/``..`` segments (also once percent-decoded, as ASGI servers present them).

    Such a path could be normalised by a client library or an upstream into one outside the
    routed prefix, such as an upstream's root ``/metrics``. Backslashes count as separators
    because some servers treat them so.
    """
    if "." not in path:  # most paths: nothing to split
        return False
    return any(segment in {".", ".."} for segment in _SEPARATORS.split(path))


_SEPARATORS = re.compile(r"[/\\]")
