"""The app factory: request ids, problem+json errors, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import httpx2
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gatehouse_common.app import CorsPolicy
from gatehouse_common.events import event_channel_check, open_event_redis
from gatehouse_common.health import Readiness
from gatehouse_common.problems import PROBLEM_MEDIA_TYPE, ProblemError, problem_responses
from gatehouse_common.request_id import current_request_id
from gatehouse_common.resources import resources_of
from gatehouse_testing.app import started

AppClient = Callable[[FastAPI], Awaitable[httpx2.AsyncClient]]


class Item(BaseModel):
    name: str = Field(min_length=1)
    password: str


class ItemMissing(ProblemError):
    status = 404
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
    client = await client_for(app)
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_request_id_is_generated_and_echoed(app: FastAPI, client_for: AppClient) -> None:
    client = await client_for(app)

    generated = await client.get("/health")
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    rejected = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})

    assert len(generated.headers["x-request-id"]) == 32
    assert echoed.headers["x-request-id"] == "abc-123"
    assert rejected.headers["x-request-id"] != "bad id\twith spaces"


async def test_domain_error_is_problem_json(app: FastAPI, client_for: AppClient) -> None:
    client = await client_for(app)
    response = await client.get("/items/7", headers={"X-Request-ID": "req-7"})

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
    client = await client_for(app)
    response = await client.get("/nowhere")

    body = response.json()
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert body["request_id"] == response.headers["x-request-id"]
    assert {"type", "title", "status", "detail"} <= body.keys()


async def test_validation_error_never_echoes_input(app: FastAPI, client_for: AppClient) -> None:
    client = await client_for(app)
    response = await client.post("/items", json={"name": "", "password": "s3cr3t-value"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "s3cr3t-value" not in response.text
    assert response.json()["errors"][0]["loc"] == ["body", "name"]


async def test_unhandled_exception_reveals_nothing(
    app: FastAPI, client_for: AppClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await client_for(app)
    response = await client.get("/boom", headers={"X-Request-ID": "req-boom"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-boom"
    assert response.json()["request_id"] == "req-boom"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


async def test_access_log_line_has_the_contract_fields(
    app: FastAPI, client_for: AppClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await client_for(app)
    await client.get("/items/3", headers={"X-Request-ID": "req-log"})

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
    async def healthy(_: None) -> None:
        return None

    async def broken(_: None) -> None:
        raise ConnectionError("refused")

    async def stuck(_: None) -> None:
        await asyncio.sleep(10)

    readiness = Readiness[None](
        {"postgres": healthy, "redis": broken, "mongo": stuck}, timeout_seconds=0.2
    )
    client = await client_for(make_app(readiness=readiness))

    response = await client.get("/ready")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["failing"] == ["mongo", "redis"]
    assert "redis (ConnectionError)" in response.json()["detail"]


async def test_readiness_sets_a_gauge_per_check_on_every_evaluation(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    redis_up = True

    async def redis(_: None) -> None:
        if not redis_up:
            raise ConnectionError("refused")

    readiness = Readiness[None]({"gauge-redis": redis})
    client = await client_for(make_app(readiness=readiness))

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
    async def healthy(_: None) -> None:
        return None

    readiness = Readiness[None]({"postgres": healthy})

    client = await client_for(make_app(readiness=readiness))

    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok"}}


async def test_metrics_count_by_route_template(app: FastAPI, client_for: AppClient) -> None:
    client = await client_for(app)
    await client.get("/items/1")
    await client.get("/items/2")

    text = (await client.get("/metrics")).text

    assert 'http_requests_total{method="GET",route="/items/{item_id}",status="404"}' in text
    assert "/items/1" not in text
    assert "http_request_duration_seconds_bucket" in text


async def test_metrics_count_failures_and_answers_of_outer_middleware(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    client = await client_for(make_app(_router(), cors=CorsPolicy(["https://app.example.com"])))
    await client.get("/boom")
    await client.options(
        "/items",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )

    text = (await client.get("/metrics")).text

    # The unhandled error: answered 500 outside routing, counted under the matched route.
    assert 'http_requests_total{method="GET",route="/boom",status="500"}' in text
    # The preflight, answered by CORS before routing: counted, under the unmatched label.
    assert 'http_requests_total{method="OPTIONS",route="<unmatched>",status="200"}' in text


async def test_metrics_can_be_hidden(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    client = await client_for(make_app(expose_metrics=False))
    response = await client.get("/metrics")

    assert response.status_code == 404


def test_uvicorn_access_log_is_silenced(app: FastAPI) -> None:
    assert logging.getLogger("uvicorn.access").propagate is False


@dataclass(frozen=True, slots=True)
class Counter:
    name: str


async def _counter(request: Request) -> Counter:
    return resources_of(request, Counter)


CounterResources = Annotated[Counter, Depends(_counter)]


async def test_lifespan_resources_reach_dependencies_and_readiness(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    closed: list[str] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[Counter]:
        yield Counter("the-resources")
        closed.append("closed")

    router = APIRouter()

    @router.get("/name")
    async def name(resources: CounterResources) -> dict[str, str]:
        return {"name": resources.name}

    async def named(resources: Counter) -> None:
        if resources.name != "the-resources":
            raise AssertionError(resources)

    app = make_app(router, lifespan=lifespan, readiness=Readiness[Counter]({"named": named}))
    async with started(app) as running, running.client() as client:
        assert (await client.get("/name")).json() == {"name": "the-resources"}
        assert (await client.get("/ready")).status_code == 200
    assert closed == ["closed"]


async def test_middleware_runs_inside_the_request_context(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    seen: list[str] = []

    class RecordRequestId:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(current_request_id())
            await self.app(scope, receive, send)

    client = await client_for(make_app(middleware=[Middleware(RecordRequestId)]))
    response = await client.get("/health", headers={"X-Request-ID": "req-mw"})

    assert response.status_code == 200
    assert seen == ["req-mw"]


async def test_cors_answers_only_listed_origins(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    client = await client_for(make_app(cors=CorsPolicy(["https://app.example.com"])))
    preflight = {"Access-Control-Request-Method": "GET"}

    allowed = await client.options(
        "/health", headers={"Origin": "https://app.example.com", **preflight}
    )
    refused = await client.options("/health", headers={"Origin": "https://evil.test", **preflight})

    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in refused.headers
    assert allowed.headers["x-request-id"]  # inside the request context


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Origin": "https://evil.test"}, "origin"),
        ({"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}, "method"),
        (
            {"Origin": "https://app.example.com", "Access-Control-Request-Headers": "x-secret"},
            "headers",
        ),
    ],
)
async def test_a_refused_cors_preflight_is_problem_json_with_the_request_id(
    make_app: Callable[..., FastAPI],
    client_for: AppClient,
    headers: dict[str, str],
    refused: str,
) -> None:
    client = await client_for(make_app(cors=CorsPolicy(["https://app.example.com"])))
    response = await client.options(
        "/health", headers={"Access-Control-Request-Method": "GET", **headers}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["request_id"] == response.headers["x-request-id"]
    assert problem["status"] == 400
    assert refused in problem["detail"]
    assert problem["type"].endswith("/cors-refused")


@pytest.mark.parametrize("path", ["/health/", "/items/7/", "/nowhere/"])
async def test_a_trailing_slash_is_404_problem_json_never_a_redirect(
    app: FastAPI, client_for: AppClient, path: str
) -> None:
    client = await client_for(app)
    response = await client.get(path, headers={"Host": "evil.example"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "location" not in response.headers


async def test_optional_check_failing_shows_degraded_and_stays_ready(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    async def healthy(_: object) -> None:
        return None

    async def broken(_: object) -> None:
        raise ConnectionError("refused")

    readiness = Readiness[object](
        {"postgres": healthy}, optional={"events": broken}, timeout_seconds=0.2
    )

    response = await (await client_for(make_app(readiness=readiness))).get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "events": "degraded"}}


async def test_event_channel_down_does_not_make_the_service_unready(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    unreachable = open_event_redis("redis://127.0.0.1:1/0", timeout_seconds=0.2, block_seconds=0)
    readiness = Readiness[object](
        optional=event_channel_check(lambda _: unreachable), timeout_seconds=0.5
    )
    try:
        response = await (await client_for(make_app(readiness=readiness))).get("/ready")
    finally:
        await unreachable.aclose()

    assert response.status_code == 200
    assert response.json()["checks"] == {"events": "degraded"}


async def test_errors_are_documented_as_the_problems_that_are_sent(
    make_app: Callable[..., FastAPI], client_for: AppClient
) -> None:
    router = APIRouter()

    @router.get("/things/{thing_id:uuid}")
    async def read_thing(thing_id: uuid.UUID) -> dict[str, str]:
        return {"id": str(thing_id)}

    @router.get("/things", responses=problem_responses(422))
    async def list_things(limit: int = 10) -> dict[str, int]:
        return {"limit": limit}

    client = await client_for(make_app(router))
    document = (await client.get("/openapi.json")).json()

    # The convertor refuses a malformed id before validation could: 404, never 422.
    assert (await client.get("/things/not-a-uuid")).status_code == 404
    assert "422" not in document["paths"]["/things/{thing_id}"]["get"]["responses"]
    # Where validation can fail, the documented 422 is the problem that is sent.
    assert (await client.get("/things?limit=x")).status_code == 422
    listed = document["paths"]["/things"]["get"]["responses"]["422"]
    assert listed["content"] == {
        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])
