"""Tracing is off without an OTLP endpoint and continues incoming traces when on."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from gatehouse_common.tracing import tracer_provider


def test_off_without_endpoint() -> None:
    assert tracer_provider("svc", None) is None
    assert tracer_provider("svc", "") is None


def test_on_with_endpoint() -> None:
    provider = tracer_provider("svc", "http://collector:4318")

    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "svc"
    provider.shutdown()
