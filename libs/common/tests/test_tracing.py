"""Tracing is off without an OTLP endpoint and continues incoming traces when on.

The trace across the gateway and users (one trace, parent and child, request id on both) is
tests/tracing/test_trace_across_services.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx2
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from gatehouse_common.tracing import tracer_provider


def test_off_without_endpoint() -> None:
    assert tracer_provider("svc", None) is None
    assert tracer_provider("svc", "") is None


def test_on_with_endpoint() -> None:
    provider = tracer_provider("svc", "http://collector:4318")

    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "svc"
    provider.shutdown()


@pytest.fixture
def process_wide_provider() -> Iterator[InMemorySpanExporter]:
    """A process-wide tracer provider, as a library or a second app might set; then unset.

    OpenTelemetry sets it once per process, so the fixture restores its private state.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = (trace._TRACER_PROVIDER_SET_ONCE, trace._TRACER_PROVIDER)
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    trace.set_tracer_provider(provider)
    yield exporter
    trace._TRACER_PROVIDER_SET_ONCE, trace._TRACER_PROVIDER = saved
    provider.shutdown()


async def test_an_app_without_an_endpoint_traces_nothing_beside_a_process_wide_provider(
    process_wide_provider: InMemorySpanExporter,
    make_app: Callable[..., FastAPI],
    client_for: Callable[[FastAPI], Awaitable[httpx2.AsyncClient]],
) -> None:
    response = await (await client_for(make_app())).get("/health")

    assert response.status_code == 200
    assert process_wide_provider.get_finished_spans() == ()
