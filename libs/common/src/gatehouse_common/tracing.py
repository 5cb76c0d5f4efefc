"""OpenTelemetry tracing, on only when an OTLP endpoint is configured."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from starlette.types import ASGIApp


def tracer_provider(service: str, otlp_endpoint: str | None) -> TracerProvider | None:
    """A provider exporting to ``otlp_endpoint`` (``.../v1/traces``), or None when unset."""
    if not otlp_endpoint:
        return None
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def traced(app: ASGIApp, provider: TracerProvider) -> ASGIApp:
    """Wrap ``app`` so each request is a server span that continues an incoming traceparent."""
    trace.set_tracer_provider(provider)
    return OpenTelemetryMiddleware(app, tracer_provider=provider)
