"""The sync-dependency check finds a plain ``def`` anywhere in a route's dependency tree."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI

from gatehouse_testing.dependencies import sync_dependencies


async def _async_leaf() -> int:
    return 1


def _sync_leaf() -> int:
    return 2


async def _async_parent(value: Annotated[int, Depends(_sync_leaf)]) -> int:
    return value


def _app(router: APIRouter) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    return app


def test_all_async_passes() -> None:
    router = APIRouter()

    @router.get("/ok")
    async def ok(value: Annotated[int, Depends(_async_leaf)]) -> int:
        return value

    assert sync_dependencies(_app(router)) == []


def test_a_sync_dependency_deep_in_the_tree_is_found() -> None:
    router = APIRouter()

    @router.get("/nested")
    async def nested(value: Annotated[int, Depends(_async_parent)]) -> int:
        return value

    assert sync_dependencies(_app(router)) == ["GET /nested: _sync_leaf"]


def test_a_sync_endpoint_is_found() -> None:
    router = APIRouter()

    @router.get("/sync")
    def sync_endpoint() -> int:
        return 3

    assert sync_dependencies(_app(router)) == [
        "GET /sync: test_a_sync_endpoint_is_found.<locals>.sync_endpoint"
    ]
