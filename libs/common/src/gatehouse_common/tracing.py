"""OpenTelemetry tracing, on only when an OTLP endpoint is configured.

The SDK, the exporter and the ASGI instrumentation are imported only then: with tracing off
they would add 0.15 s to every start of a service (docs/resilience.md: a restart's errors
last as long as the new process takes to start). The API (``opentelemetry.trace``), which
the gateway uses to propagate context, is light and always there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from gatehouse_common.request_id import current_request_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from starlette.types import ASGIApp

# The same key as in the log lines, so a trace is found from a log line and back.
REQUEST_ID_ATTRIBUTE = "request_id"


def tracer_provider(service: str, otlp_endpoint: str | None) -> TracerProvider | None:
    """A provider exporting to ``otlp_endpoint`` (``.../v1/traces``), or None when unset."""
    if not otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def _record_request_id(span: trace.Span, _scope: dict[str, Any]) -> None:
    # The request context middleware, outside this one, has bound the id already.
    if span.is_recording():
        span.set_attribute(REQUEST_ID_ATTRIBUTE, current_request_id())


def traced(app: ASGIApp, provider: TracerProvider) -> ASGIApp:
    """Wrap ``app`` so each request is a server span that continues an incoming traceparent.

    One span per request, carrying the request id: no child span per ASGI message, which for
    a streamed body would be one per chunk. The provider is this app's, not made global, so
    two apps in one process (as in the tests) keep their own settings.
    """
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: PLC0415

    return OpenTelemetryMiddleware(
        app,
        tracer_provider=provider,
        server_request_hook=_record_request_id,
        exclude_spans=["receive", "send"],
    )
