"""A check that an app has no sync ``def`` endpoint or dependency.

FastAPI runs a plain ``def`` endpoint or dependency in its thread pool: a thread hand-off per
request, usually for an attribute read, and a pool that a slow one can exhaust.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute


def _is_async(call: Callable[..., Any]) -> bool:
    while isinstance(call, functools.partial):
        call = call.func
    if inspect.isfunction(call) or inspect.ismethod(call):
        return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
    if inspect.isclass(call):
        return False  # a class used as a dependency is instantiated synchronously
    dunder_call = getattr(call, "__call__", None)  # noqa: B004 - the instance's own __call__
    return dunder_call is not None and _is_async(dunder_call)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI keeps an included router as one route holding the original router.
        included = getattr(route, "original_router", None)
        if isinstance(included, APIRouter):
            yield from _api_routes(included.routes)


def sync_dependencies(app: FastAPI) -> list[str]:
    """``"METHOD path: name"`` for every endpoint or dependency of ``app`` that is not async."""
    found: list[str] = []
    for route in _api_routes(app.routes):
        for call in _calls(route.dependant):
            if not _is_async(call):
                name = getattr(call, "__qualname__", type(call).__qualname__)
                found.append(f"{','.join(sorted(route.methods or ()))} {route.path}: {name}")
    return found
