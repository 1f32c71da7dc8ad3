"""OpenTelemetry for the proxy: continue the caller's W3C trace, time the upstream call
and the enqueue, and give the trace id to the event's meta.

Tracing is off unless a `TracerProvider` is given (the CLI builds one with an OTLP
exporter when an endpoint is configured). Off, the proxy still reads the incoming
`traceparent` and puts its trace id into the event's meta, and forwards the header
unchanged; on, it opens a SERVER span for the request (child of the incoming context),
a CLIENT span for the upstream call and an INTERNAL span for the enqueue, and forwards
the CLIENT span's `traceparent` so the model's own spans nest under it.
"""

from __future__ import annotations

import re
from typing import Any, Final

from opentelemetry import trace as otel
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

_TRACEPARENT: Final = re.compile(rb"^\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE: Final = b"0" * 32
_ZERO_SPAN: Final = b"0" * 16


def parse_traceparent(value: bytes | str | None) -> tuple[str, str, int] | None:
    """(trace id hex, parent span id hex, flags) of a valid W3C traceparent, else None."""
    if not value:
        return None
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    m = _TRACEPARENT.match(raw.lower())
    if m is None or m.group(1) == b"ff":
        return None
    trace_id, span_id = m.group(2), m.group(3)
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id.decode(), span_id.decode(), int(m.group(4), 16)


class RequestTrace:
    """The spans of one proxied request (only when tracing is on)."""

    __slots__ = ("_ctx", "_trace", "server", "trace_id", "traceparent", "upstream")

    def __init__(self, trace: Tracing, incoming: bytes | None, name: str) -> None:
        self._trace = trace
        parent = parse_traceparent(incoming)
        ctx = None
        if parent is not None:
            ctx = otel.set_span_in_context(
                NonRecordingSpan(
                    SpanContext(
                        int(parent[0], 16),
                        int(parent[1], 16),
                        is_remote=True,
                        trace_flags=TraceFlags(parent[2] & 0x01),
                    )
                )
            )
        tracer = trace.tracer
        self.server = tracer.start_span(name, context=ctx, kind=SpanKind.SERVER)
        self._ctx = otel.set_span_in_context(self.server)
        self.upstream = tracer.start_span("upstream", context=self._ctx, kind=SpanKind.CLIENT)
        sc = self.upstream.get_span_context()
        self.trace_id = f"{sc.trace_id:032x}"
        self.traceparent = (
            f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}".encode()
        )

    def upstream_done(self, status: int | None) -> None:
        if status is not None:
            self.upstream.set_attribute("http.response.status_code", status)
        else:
            self.upstream.set_status(Status(StatusCode.ERROR, "no response from the model"))
        self.upstream.end()

    def enqueue_span(self) -> Any:
        return self._trace.tracer.start_span("enqueue", context=self._ctx, kind=SpanKind.INTERNAL)

    def finish(self, status: int | None) -> None:
        if status is not None:
            self.server.set_attribute("http.response.status_code", status)
        self.server.end()


class Tracing:
    """Factory of `RequestTrace`s; `enabled` is False without a tracer provider."""

    def __init__(self, tracer_provider: Any | None = None) -> None:
        self.provider = tracer_provider
        self.enabled = tracer_provider is not None
        self.tracer = (
            tracer_provider.get_tracer("driftwarden.collector") if tracer_provider else None
        )

    def start(self, incoming: bytes | None, name: str) -> RequestTrace | None:
        return RequestTrace(self, incoming, name) if self.enabled else None

    def shutdown(self) -> None:
        if self.provider is not None and hasattr(self.provider, "shutdown"):
            self.provider.shutdown()


def otlp_tracer_provider(endpoint: str | None, service_name: str = "driftwarden-collector") -> Any:
    """An SDK tracer provider exporting over OTLP/HTTP in batches.

    `endpoint` is the traces URL (e.g. `http://otel-collector:4318/v1/traces`); None uses
    the exporter's own `OTEL_EXPORTER_OTLP_*` environment variables.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
