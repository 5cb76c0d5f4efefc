"""HEAD wherever GET is, and a 405 whose ``Allow`` lists every method of the path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import StreamingResponse
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from gatehouse_common.metrics import HTTP_REQUESTS

AppClient = Callable[[FastAPI], Awaitable[httpx2.AsyncClient]]


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/things/mine")
    async def read_mine() -> dict[str, str]:
        return {"name": "mine"}

    @router.patch("/things/mine")
    async def change_mine() -> dict[str, str]:
        return {"name": "changed"}

    @router.post("/things")
    async def create() -> dict[str, str]:
        return {"name": "new"}

    @router.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for chunk in (b"one ", b"two ", b"three"):
                yield chunk

        return StreamingResponse(chunks(), media_type="text/plain")

    return router


class EveryMethodRoute(BaseRoute):
    """Stands in for the gateway's proxy route, which takes HEAD itself."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if scope["path"] == "/proxied" else (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"x-method-seen", scope["method"].encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    built = make_app(_router())
    built.router.routes.append(EveryMethodRoute())
    return built


async def test_head_has_the_get_headers_and_no_body(app: FastAPI, client_for: AppClient) -> None:
    client = await client_for(app)

    get = await client.get("/things/mine")
    head = await client.head("/things/mine")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] != "0"
    assert head.headers["content-type"] == get.headers["content-type"]


async def test_head_of_a_streamed_response_sends_no_body(
    app: FastAPI, client_for: AppClient
) -> None:
    response = await (await client_for(app)).head("/stream")

    assert response.status_code == 200
    assert response.content == b""


async def test_head_is_counted_as_head(app: FastAPI, client_for: AppClient) -> None:
    counter = HTTP_REQUESTS.labels("HEAD", "/things/mine", "200")
    before = counter._value.get()

    await (await client_for(app)).head("/things/mine")

    assert counter._value.get() == before + 1


async def test_a_route_that_takes_head_gets_it_unchanged(
    app: FastAPI, client_for: AppClient
) -> None:
    response = await (await client_for(app)).head("/proxied")

    assert response.headers["x-method-seen"] == "HEAD"


async def test_head_where_there_is_no_get_is_405(app: FastAPI, client_for: AppClient) -> None:
    response = await (await client_for(app)).head("/things")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PUT", "DELETE"])
async def test_405_lists_every_method_of_the_path(
    app: FastAPI, client_for: AppClient, method: str
) -> None:
    response = await (await client_for(app)).request(method, "/things/mine")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, PATCH"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]
