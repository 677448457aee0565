"""OpenTelemetry set-up and W3C trace-context carried through events and Kafka headers.

One trace runs from the HTTP request, through the event store (the envelope keeps the
traceparent), the relay's publish span and Kafka headers, to every consumer's effect.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.settings import TelemetrySettings

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


def setup_tracing(service_name: str, settings: TelemetrySettings) -> TracerProvider:
    """Install the process-wide tracer provider once; later calls return the same provider."""
    global _provider
    if _provider is not None:
        return _provider
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    processor: SpanProcessor | None = None
    if settings.exporter == "console":
        processor = SimpleSpanProcessor(ConsoleSpanExporter())
    elif settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
    if processor is not None:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """The remote parent context a traceparent names (empty context when there is none)."""
    if not traceparent:
        return otel_context.Context()
    return _propagator.extract({"traceparent": traceparent})
