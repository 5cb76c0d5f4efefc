"""The trace context the proxy sends upstream, with and without a current span."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from gatehouse_gateway.headers import upstream_headers

CLIENT_TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SCOPE = {
    "type": "http",
    "scheme": "http",
    "client": ("127.0.0.1", 50000),
    "headers": [(b"host", b"gateway.test"), (b"traceparent", CLIENT_TRACEPARENT)],
}


def test_without_a_span_the_clients_traceparent_goes_upstream() -> None:
    headers = upstream_headers(SCOPE, ())
    assert [value for name, value in headers if name == b"traceparent"] == [CLIENT_TRACEPARENT]


def test_with_tracing_on_traceparent_names_the_gateways_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("proxy") as span:
        headers = upstream_headers(SCOPE, ())
    context = span.get_span_context()
    expected = (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}".encode()
    )
    assert [value for name, value in headers if name == b"traceparent"] == [expected]
