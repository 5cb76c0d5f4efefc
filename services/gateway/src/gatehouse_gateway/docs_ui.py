"""Swagger UI for the merged API document, served by the gateway itself: no CDN.

Swagger UI's script, stylesheet and icon come from the pinned ``fastapi-offline`` package;
the script that starts it is ours (``static/swagger-ui-init.js``). The page has no inline
script or style, so its Content-Security-Policy allows nothing but the gateway's own origin.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.exceptions import HTTPException

from gatehouse_common.security_headers import html_page_policy

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"

_SWAGGER_UI = Path(fastapi_offline.__file__).parent / "static"
_OWN = Path(__file__).parent / "static"

# An allow-list: the route serves these files and nothing else.
DOCS_ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (_SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (_SWAGGER_UI / "swagger-ui.css", "text/css"),
    "favicon.png": (_SWAGGER_UI / "favicon.png", "image/png"),
    "swagger-ui-init.js": (_OWN / "swagger-ui-init.js", "text/javascript"),
}

# Only the gateway's own origin: no inline script or style, nothing from another host. The
# Authorize dialog's and "Try it out"'s calls are same-origin, and Swagger UI's icons are data:
# URIs in its stylesheet, which the policy allows.
DOCS_PAGE_POLICY = html_page_policy()
_ASSET_CACHE_CONTROL = "public, max-age=3600"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-ui-init.js"></script>
</body>
</html>
"""


docs_ui_router = APIRouter(include_in_schema=False)


@docs_ui_router.get(DOCS_PATH)
async def docs(request: Request) -> HTMLResponse:
    page = _PAGE.format(title=html.escape(f"{request.app.title} - docs"), assets=ASSETS_PATH)
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": DOCS_PAGE_POLICY,
            "Cache-Control": "no-cache",
        },
    )


@docs_ui_router.get(ASSETS_PATH + "/{name}")
async def docs_asset(name: str) -> FileResponse:
    if name not in DOCS_ASSETS:
        raise HTTPException(404, "No such docs asset.")
    path, media_type = DOCS_ASSETS[name]
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": _ASSET_CACHE_CONTROL}
    )
