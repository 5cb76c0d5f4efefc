"""Liveness and readiness.

``/health`` says the process runs and checks nothing else, so an orchestrator never restarts
a healthy process because a datastore is down. ``/ready`` runs every registered check
concurrently, each with its own timeout, and names the ones that fail. A check registered
with ``required=False`` (a dependency the service can serve without, such as the event
channel) never makes ``/ready`` fail: it shows as ``degraded`` and logs a warning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gatehouse_common.logging import get_logger
from gatehouse_common.problems import PROBLEM_TYPE_BASE, problem_response, problem_responses

ReadinessCheck = Callable[[], Awaitable[object]]

_log = get_logger(__name__)


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessStatus(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, Literal["ok", "degraded"]]


class Readiness:
    """Named async checks; a check passes when it returns, fails when it raises or times out."""

    def __init__(self, timeout_seconds: float = 2.0) -> None:
        self._checks: dict[str, ReadinessCheck] = {}
        self._optional: set[str] = set()
        self._timeout = timeout_seconds

    def register(self, name: str, check: ReadinessCheck, *, required: bool = True) -> None:
        self._checks[name] = check
        if not required:
            self._optional.add(name)

    async def failures(self) -> dict[str, str]:
        """Map each failing check's name to a short reason; empty when all pass."""
        names = list(self._checks)
        results = await asyncio.gather(
            *(self._run(self._checks[name]) for name in names), return_exceptions=False
        )
        return {name: reason for name, reason in zip(names, results, strict=True) if reason}

    def is_required(self, name: str) -> bool:
        return name not in self._optional

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def _run(self, check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), timeout=self._timeout)
        except TimeoutError:
            return f"no answer within {self._timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not ready"
            return type(exc).__name__
        return ""


def health_router(readiness: Readiness) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", response_model=HealthStatus, summary="Liveness")
    async def health() -> HealthStatus:
        return HealthStatus()

    @router.get(
        "/ready",
        response_model=ReadinessStatus,
        summary="Readiness",
        responses=problem_responses(503),
    )
    async def ready() -> ReadinessStatus | JSONResponse:
        failures = await readiness.failures()
        blocking = {name: why for name, why in failures.items() if readiness.is_required(name)}
        if blocking:
            _log.warning("not_ready", failures=failures)
            return problem_response(
                503,
                "Not ready: " + ", ".join(f"{name} ({why})" for name, why in blocking.items()),
                problem_type=f"{PROBLEM_TYPE_BASE}not-ready",
                extra={"failing": sorted(blocking)},
            )
        if failures:
            _log.warning("degraded", failures=failures)
        return ReadinessStatus(
            checks={name: "degraded" if name in failures else "ok" for name in readiness.names}
        )

    return router
