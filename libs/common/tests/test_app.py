"""The app factory: request ids, problem+json errors, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import httpx2
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from gatehouse_common.health import Readiness
from gatehouse_common.problems import ProblemError

AppClient = Callable[[FastAPI], httpx2.AsyncClient]


class Item(BaseModel):
    name: str = Field(min_length=1)
    password: str


class ItemMissing(ProblemError):
    status = 404
    title = "Not Found"
    problem_type = "https://gatehouse.dev/problems/item-missing"


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/items")
    async def create(item: Item) -> dict[str, str]:
        return {"name": item.name}

    @router.get("/items/{item_id}")
    async def read(item_id: int) -> dict[str, int]:
        raise ItemMissing(f"No item {item_id}.")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    return router


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app(_router())


async def test_health_checks_nothing_else(app: FastAPI, client_for: AppClient) -> None:
    response = await client_for(app).get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_request_id_is_generated_and_echoed(app: FastAPI, client_for: AppClient) -> None:
    client = client_for(app)

    generated = await client.get("/health")
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    rejected = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})

    assert len(generated.headers["x-request-id"]) == 32
    assert echoed.headers["x-request-id"] == "abc-123"
    assert rejected.headers["x-request-id"] != "bad id\twith spaces"


async def test_domain_error_is_problem_json(app: FastAPI, client_for: AppClient) -> None:
    response = await client_for(app).get("/items/7", headers={"X-Request-ID": "req-7"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://gatehouse.dev/problems/item-missing",
        "title": "Not Found",
        "status": 404,
        "detail": "No item 7.",
        "request_id": "req-7",
    }


async def test_unknown_route_is_problem_json(app: FastAPI, client_for: AppClient) -> None:
    response = await client_for(app).get("/nowhere")

    body = response.json()
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert body["request_id"] == response.headers["x-request-id"]
    assert {"type", "title", "status", "detail"} <= body.keys()


async def test_validation_error_never_echoes_input(app: FastAPI, client_for: AppClient) -> None:
    response = await client_for(app).post("/items", json={"name": "", "password": "s3cr3t-value"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "s3cr3t-value" not in response.text
    assert response.json()["errors"][0]["loc"] == ["body", "name"]


async def test_unhandled_exception_reveals_nothing(
    app: FastAPI, client_for: AppClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await client_for(app).get("/boom", headers={"X-Request-ID": "req-boom"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-boom"
    assert response.json()["request_id"] == "req-boom"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


async def test_access_log_line_has_the_contract_fields(
    app: FastAPI, client_for: AppClient, capsys: pytest.CaptureFixture[str]
) -> None:
    await client_for(app).get("/items/3", headers={"X-Request-ID": "req-log"})

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    access = [line for line in lines if line.get("message") == "request"]
    assert len(access) == 1
    assert access[0]["request_id"] == "req-log"
    assert access[0]["method"] == "GET"
    assert access[0]["path"] == "/items/3"
    assert access[0]["status"] == 404
    assert access[0]["service"] == "test"
    assert access[0]["level"] == "info"
    assert isinstance(access[0]["duration_ms"], float)
    assert "time" in access[0]


async def test_readiness_names_the_failing_check(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    readiness = Readiness(timeout_seconds=0.2)

    async def healthy() -> None:
        return None

    async def broken() -> None:
        raise ConnectionError("refused")

    async def stuck() -> None:
        await asyncio.sleep(10)

    readiness.register("postgres", healthy)
    readiness.register("redis", broken)
    readiness.register("mongo", stuck)
    client = client_for(make_app(readiness=readiness))

    response = await client.get("/ready")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["failing"] == ["mongo", "redis"]
    assert "redis (ConnectionError)" in response.json()["detail"]


async def test_readiness_sets_a_gauge_per_check_on_every_evaluation(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    readiness = Readiness()
    redis_up = True

    async def redis() -> None:
        if not redis_up:
            raise ConnectionError("refused")

    readiness.register("gauge-redis", redis)
    client = client_for(make_app(readiness=readiness))

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("readiness_check_up", {"check": "gauge-redis"})

    await client.get("/ready")
    assert gauge() == 1
    redis_up = False
    await client.get("/ready")
    assert gauge() == 0
    redis_up = True
    await client.get("/ready")
    assert gauge() == 1


async def test_readiness_ok_lists_checks(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    readiness = Readiness()

    async def healthy() -> None:
        return None

    readiness.register("postgres", healthy)

    response = await client_for(make_app(readiness=readiness)).get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok"}}


async def test_metrics_count_by_route_template(app: FastAPI, client_for: AppClient) -> None:
    client = client_for(app)
    await client.get("/items/1")
    await client.get("/items/2")

    text = (await client.get("/metrics")).text

    assert 'http_requests_total{method="GET",route="/items/{item_id}",status="404"}' in text
    assert "/items/1" not in text
    assert "http_request_duration_seconds_bucket" in text


async def test_metrics_can_be_hidden(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    response = await client_for(make_app(expose_metrics=False)).get("/metrics")

    assert response.status_code == 404


def test_uvicorn_access_log_is_silenced(app: FastAPI) -> None:
    assert logging.getLogger("uvicorn.access").propagate is False
