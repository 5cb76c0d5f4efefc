"""HTTP method semantics every service shares: HEAD wherever GET is, and a true ``Allow`` on 405.

FastAPI routes answer only the methods they declare, so HEAD would be 405 on every GET route.
And Starlette's router answers a method that no route of a path takes with the ``Allow`` of the
first route that matched the path alone: ``Allow: GET`` on ``/users/me``, where PATCH is routed
too (RFC 9110 §15.5.6 wants every method the resource supports).
"""

from __future__ import annotations

from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """Pure ASGI: answer HEAD as the GET of the same path would be answered, without its body.

    Only where no route takes HEAD itself: the gateway's proxy route matches every method and
    passes HEAD upstream, where this middleware answers it. The headers, ``Content-Length``
    included, are the GET's (RFC 9110 §9.3.2). Logs and metrics still see HEAD.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or self._routes_head(scope):
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server reads the method of its own scope to know that no body follows.
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send_without_body)
        finally:
            # What routing added (the matched route, for the metrics label) is seen outside.
            scope.update((key, value) for key, value in as_get.items() if key != "method")

    @staticmethod
    def _routes_head(scope: Scope) -> bool:
        # Starlette puts the application into the scope before any middleware runs.
        router: Router = scope["app"].router
        return any(route.matches(scope)[0] is Match.FULL for route in router.routes)


# RFC 9110 §9 and RFC 5789 (PATCH); CONNECT is for proxies.
_METHODS = ("DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def allowed_methods(router: Router, scope: Scope) -> list[str]:
    """Every method some route takes at ``scope``'s path, HEAD wherever GET is; sorted.

    Asked of each route through ``matches``, the one interface every route has (FastAPI keeps
    an included router as one route that holds its own).
    """
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] is Match.FULL for route in router.routes
        )
    }
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
