"""The gateway's HTTP surface: the merged OpenAPI document, one proxy route per upstream and
the middleware that hands proxied requests to those routes directly.

Swagger UI for the document is in ``docs_ui``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.datastructures import URLPath
from starlette.requests import HTTPConnection, Request
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

from gatehouse_common.problems import ProblemError
from gatehouse_common.resources import resources_of
from gatehouse_gateway.resources import GatewayResources, Resources
from gatehouse_gateway.routing import Upstream, has_dot_segment

openapi_router = APIRouter(include_in_schema=False)


@openapi_router.get("/openapi.json")
async def openapi(resources: Resources) -> JSONResponse:
    return JSONResponse(await resources.docs.document())


class ProxyRoute(BaseRoute):
    """Matches every path under one upstream's prefix that has no dot segment.

    A Starlette route rather than an endpoint, so the proxy sees the raw ASGI channels.
    """

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        # Read by the metrics middleware as the route label: one series per upstream.
        self.path = upstream.prefix + "/{path:path}"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and self._upstream.serves(scope["path"])
            and not has_dot_segment(scope["path"])
        ):
            return Match.FULL, {"route": self}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = resources_of(HTTPConnection(scope), GatewayResources).proxy
        await proxy.handle(self._upstream, scope, receive, send)


class ProxyFirst:
    """Pure ASGI, the app's innermost middleware: a request for a proxied path goes straight
    to its ``ProxyRoute``; every other request goes on through the app.

    The layers skipped are Starlette's exception middleware, FastAPI's exit stack and its
    router, which matches the request against every route and included router before the
    proxy routes: they serve endpoints with dependencies and ``HTTPException``s, and cost a
    proxied request a tenth of the gateway's CPU (docs/performance.md). The proxy has neither;
    it raises only ``ProblemError`` before its response starts, answered here by the app's
    handler for it. The routes stay in the router too, where HEAD handling and the metrics
    label read them; the layers outside this one (request context, CORS, tracing, HEAD) see
    every request as before.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[ProxyRoute]) -> None:
        self.app = app
        self._routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for route in self._routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                try:
                    await route.handle(scope, receive, send)
                except ProblemError as exc:
                    request = Request(scope, receive)
                    response = await request.app.exception_handlers[ProblemError](request, exc)
                    await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
