"""Security headers of every response, applied by the request-context middleware."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable

import httpx2
import pytest
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import HTMLResponse

from gatehouse_common.problems import ProblemError
from gatehouse_common.security_headers import html_page_policy, script_hash

AppClient = Callable[[FastAPI], Awaitable[httpx2.AsyncClient]]
PAGE_POLICY = html_page_policy(scripts=[script_hash("start()")])


class Gone(ProblemError):
    status = 410
    title = "Gone"
    problem_type = "https://gatehouse.dev/problems/gone"


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/me")
    async def me() -> dict[str, str]:
        return {"email": "someone@example.com"}

    @router.get("/keys")
    async def keys() -> Response:
        return Response(b"{}", headers={"cache-control": "public, max-age=60"})

    @router.get("/banner")
    async def banner() -> Response:
        return Response(b"{}", headers={"server": "leaky/1.0", "x-content-type-options": "x"})

    @router.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>", headers={"content-security-policy": PAGE_POLICY})

    @router.get("/gone")
    async def gone() -> None:
        raise Gone("It is gone.")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unhandled")

    return router


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app(_router())


@pytest.mark.parametrize("path", ["/me", "/gone", "/boom", "/no-such-route", "/health"])
async def test_every_response_is_nosniff_no_store_and_loads_nothing(
    app: FastAPI, client_for: AppClient, path: str
) -> None:
    response = await (await client_for(app)).get(path)

    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )
    assert "server" not in response.headers


async def test_a_route_keeps_its_own_cache_policy(app: FastAPI, client_for: AppClient) -> None:
    response = await (await client_for(app)).get("/keys")

    assert response.headers.get_list("cache-control") == ["public, max-age=60"]


async def test_a_server_banner_is_removed_and_nosniff_is_not_overridden(
    app: FastAPI, client_for: AppClient
) -> None:
    response = await (await client_for(app)).get("/banner")

    assert "server" not in response.headers
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_an_html_page_keeps_its_own_policy(app: FastAPI, client_for: AppClient) -> None:
    response = await (await client_for(app)).get("/page")

    assert response.headers.get_list("content-security-policy") == [PAGE_POLICY]


def test_html_page_policy_allows_only_what_it_names() -> None:
    policy = dict(
        directive.split(" ", 1)
        for directive in html_page_policy(scripts=["'sha256-x'"]).split("; ")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self' 'sha256-x'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert "unsafe-inline" not in " ".join(policy.values())


def test_script_hash_is_the_csp_sha256_source() -> None:
    expected = base64.b64encode(hashlib.sha256(b"start()").digest()).decode()
    assert script_hash("start()") == f"'sha256-{expected}'"


def test_services_serve_no_docs_page_of_their_own(app: FastAPI) -> None:
    paths = {getattr(route, "path", None) for route in app.routes}
    assert "/openapi.json" in paths
    assert "/docs" not in paths
    assert "/redoc" not in paths
