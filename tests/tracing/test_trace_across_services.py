"""One request through the gateway to users is one trace: the users span is a child of the
gateway's, and both carry the request id.

Both services run as built by their factories, with tracing on; only the collector is
replaced, by the SDK's in-memory exporter. users serves on a real loopback port (with its
PostgreSQL and Redis), so the gateway's traceparent crosses a real HTTP hop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import gatehouse_common.app
from gatehouse_common.request_id import REQUEST_ID_HEADER
from gatehouse_common.tracing import REQUEST_ID_ATTRIBUTE
from gatehouse_gateway.main import create_app as create_gateway
from gatehouse_testing.app import started
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.network import free_port
from gatehouse_testing.servers import ServerThread
from gatehouse_users.main import create_app as create_users
from services.gateway.tests.support import gateway_settings
from services.users.tests.support import alembic, create_database, settings_for

# Tracing is on when an endpoint is set; the exporter that would send there is replaced.
COLLECTOR = "http://collector.test:4318"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Every app created in the test exports its spans here instead of over OTLP."""
    exporter = InMemorySpanExporter()

    def in_memory_provider(service: str, otlp_endpoint: str | None) -> TracerProvider | None:
        if not otlp_endpoint:
            return None
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider

    monkeypatch.setattr(gatehouse_common.app, "tracer_provider", in_memory_provider)
    yield exporter
    exporter.clear()


@pytest.fixture(scope="module")
async def users_database_url(postgres_url: str) -> str:
    """A new database on the shared server, migrated by the real migration command."""
    url = await create_database(postgres_url)
    await alembic(url, "upgrade", "head")
    return url


@pytest.fixture
async def gateway_to_users(
    spans: InMemorySpanExporter, issuer: TestIssuer, users_database_url: str, redis_url: str
) -> AsyncIterator[httpx2.AsyncClient]:
    users_settings = settings_for(users_database_url, redis_url, otlp_endpoint=COLLECTOR)
    users = create_users(users_settings, jwks_transport=issuer.transport())
    with ServerThread(users) as users_server:
        # Nothing listens at auth's URL: the traced request goes to users only.
        settings = gateway_settings(
            users_server.url,
            redis_url,
            auth_url=f"http://127.0.0.1:{free_port()}",
            otlp_endpoint=COLLECTOR,
        )
        gateway = create_gateway(settings, jwks_transport=issuer.transport())
        async with started(gateway) as running, running.client("http://gateway.test") as client:
            yield client


def server_spans(exporter: InMemorySpanExporter, request_id: str) -> dict[str, ReadableSpan]:
    """service name -> its server span of the request (the gateway's startup fetches of the
    upstreams' API documents are requests too, with ids of their own)."""
    found: dict[str, ReadableSpan] = {}
    for span in exporter.get_finished_spans():
        attributes = span.attributes or {}
        if span.kind is SpanKind.SERVER and attributes.get(REQUEST_ID_ATTRIBUTE) == request_id:
            service = str(span.resource.attributes[SERVICE_NAME])
            assert service not in found, f"two {service} server spans for one request"
            found[service] = span
    return found


async def wait_for_spans(exporter: InMemorySpanExporter, request_id: str) -> None:
    """users ends its span after its last byte is sent, which may be after the gateway's.

    The span ends in the users server's thread, so the exporter is polled: an asyncio.Event
    cannot be set from there.
    """
    deadline = time.monotonic() + 10
    while len(server_spans(exporter, request_id)) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_one_request_is_one_trace_across_gateway_and_users(
    gateway_to_users: httpx2.AsyncClient, spans: InMemorySpanExporter, issuer: TestIssuer
) -> None:
    token = issuer.mint(str(uuid.uuid4()))

    response = await gateway_to_users.get("/users/me", headers={"authorization": f"Bearer {token}"})
    request_id = response.headers[REQUEST_ID_HEADER]
    await wait_for_spans(spans, request_id)

    assert response.status_code == 200, response.text
    found = server_spans(spans, request_id)
    assert set(found) == {"gateway", "users"}  # the request id is on both spans
    gateway_span, users_span = found["gateway"], found["users"]
    assert users_span.context.trace_id == gateway_span.context.trace_id
    assert users_span.parent is not None
    assert users_span.parent.span_id == gateway_span.context.span_id
    # The gateway started the trace, and nothing else of the request is outside it.
    assert gateway_span.parent is None
    in_trace = [
        span
        for span in spans.get_finished_spans()
        if span.context.trace_id == gateway_span.context.trace_id
    ]
    assert len(in_trace) == 2


async def test_a_client_traceparent_is_continued(
    gateway_to_users: httpx2.AsyncClient, spans: InMemorySpanExporter, issuer: TestIssuer
) -> None:
    """The gateway joins the caller's trace rather than starting one of its own."""
    trace_id = uuid.uuid4().hex
    parent_span_id = uuid.uuid4().hex[:16]

    response = await gateway_to_users.get(
        "/users/me",
        headers={
            "authorization": f"Bearer {issuer.mint(str(uuid.uuid4()))}",
            "traceparent": f"00-{trace_id}-{parent_span_id}-01",
        },
    )
    await wait_for_spans(spans, response.headers[REQUEST_ID_HEADER])

    assert response.status_code == 200, response.text
    found = server_spans(spans, response.headers[REQUEST_ID_HEADER])
    gateway_span, users_span = found["gateway"], found["users"]
    assert gateway_span.parent is not None
    assert gateway_span.parent.span_id == int(parent_span_id, 16)
    assert gateway_span.context.trace_id == users_span.context.trace_id == int(trace_id, 16)
