"""The gateway's HTTP surface: its API docs and one proxy route per upstream."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import URLPath
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from gatehouse_common.resources import resources_of
from gatehouse_gateway.openapi import docs_page
from gatehouse_gateway.resources import GatewayResources, Resources
from gatehouse_gateway.routing import Upstream, has_dot_segment

docs_router = APIRouter(include_in_schema=False)


@docs_router.get("/openapi.json")
async def openapi(resources: Resources) -> JSONResponse:
    return JSONResponse(await resources.docs.document())


@docs_router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    html, policy = docs_page(request.app.title)
    return HTMLResponse(html, headers={"content-security-policy": policy})


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
