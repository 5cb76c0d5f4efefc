"""Liveness and readiness.

``/health`` says the process runs and checks nothing else, so an orchestrator never restarts
a healthy process because a datastore is down. ``/ready`` runs every registered check
concurrently, each with its own timeout, and names the ones that fail. Checks are declared
when the app is built and take the lifespan's resources, so they probe what requests use.
An optional check (a dependency the service can serve without, such as the event channel)
never makes ``/ready`` fail: it shows as ``degraded`` and logs a warning.
Each evaluation also sets ``readiness_check_up{check}``, which the DependencyDown alert watches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Gauge
from pydantic import BaseModel

from gatehouse_common.logging import get_logger
from gatehouse_common.problems import PROBLEM_TYPE_BASE, problem_response, problem_responses
from gatehouse_common.resources import lifespan_resources

R = TypeVar("R")
ReadinessCheck = Callable[[R], Awaitable[object]]

_log = get_logger(__name__)

READINESS_CHECK_UP = Gauge(
    "readiness_check_up",
    "1 if the readiness check passed at its last evaluation (every /ready), 0 if it failed.",
    ["check"],
)


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessStatus(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, Literal["ok", "degraded"]]


class Readiness(Generic[R]):
    """Named async checks of the resources ``R``; a check passes when it returns, fails when it
    raises or times out."""

    def __init__(
        self,
        checks: dict[str, ReadinessCheck[R]] | None = None,
        *,
        optional: dict[str, ReadinessCheck[R]] | None = None,
        timeout_seconds: float = 2.0,
    ) -> None:
        self._checks = {**(checks or {}), **(optional or {})}
        self._optional = frozenset(optional or {})
        self._timeout = timeout_seconds

    async def failures(self, resources: R) -> dict[str, str]:
        """Map each failing check's name to a short reason; empty when all pass."""
        names = list(self._checks)
        results = await asyncio.gather(
            *(self._run(self._checks[name], resources) for name in names),
            return_exceptions=False,
        )
        for name, reason in zip(names, results, strict=True):
            READINESS_CHECK_UP.labels(name).set(0 if reason else 1)
        return {name: reason for name, reason in zip(names, results, strict=True) if reason}

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    def is_required(self, name: str) -> bool:
        return name not in self._optional

    async def _run(self, check: ReadinessCheck[R], resources: R) -> str:
        try:
            await asyncio.wait_for(check(resources), timeout=self._timeout)
        except TimeoutError:
            return f"no answer within {self._timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not ready"
            return type(exc).__name__
        return ""


def health_router(readiness: Readiness[Any]) -> APIRouter:
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
    async def ready(request: Request) -> ReadinessStatus | JSONResponse:
        failures = await readiness.failures(lifespan_resources(request.scope))
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
