"""OpenTelemetry set-up and W3C trace-context carried through events and Kafka headers.

One trace runs from the HTTP request, through the event store (the envelope keeps the
traceparent), the relay's publish span and Kafka headers, to every consumer's effect.
"""

from __future__ import annotations

from typing import Any

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
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

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


def instrument_engine(engine: AsyncEngine) -> None:
    """A client span per SQL statement, child of whatever span is current (request, consumer)."""
    sql_tracer = tracer("ledgerline.sql")
    key = "_ledgerline_span"

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        ctx.__dict__[key] = sql_tracer.start_span(
            f"db {operation}",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.statement": statement[:500]},
        )

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _end(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        span = ctx.__dict__.pop(key, None)
        if span is not None:
            span.end()

    @event.listens_for(engine.sync_engine, "handle_error")
    def _error(exception_context: Any) -> None:
        ctx = exception_context.execution_context
        span = ctx.__dict__.pop(key, None) if ctx is not None else None
        if span is not None:
            span.set_status(
                trace.Status(
                    trace.StatusCode.ERROR, str(exception_context.original_exception)[:200]
                )
            )
            span.end()


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
