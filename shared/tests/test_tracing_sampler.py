"""Spans are built only when something exports them; trace ids exist either way."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.tracing import ExportGatedProvider, WhenExported, context_from_traceparent

SAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def provider(ratio: float) -> ExportGatedProvider:
    return ExportGatedProvider(
        Resource.create({"service.name": "sampler-test"}), WhenExported(ratio)
    )


def test_without_an_exporter_spans_are_not_recorded_but_carry_trace_ids() -> None:
    tracer = provider(1.0).get_tracer("t")
    with tracer.start_as_current_span("request") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid  # logs and traceparent headers still correlate
        assert trace.get_current_span() is span
    remote = tracer.start_span("consume", context=context_from_traceparent(SAMPLED_PARENT))
    assert not remote.is_recording()  # nobody would receive it


def test_once_exported_the_ratio_picks_new_traces_and_a_sampled_parent_is_followed() -> None:
    exported = InMemorySpanExporter()
    everything = provider(1.0)
    everything.add_span_processor(SimpleSpanProcessor(exported))
    with everything.get_tracer("t").start_as_current_span("request") as span:
        assert span.is_recording()
    assert [s.name for s in exported.get_finished_spans()] == ["request"]

    nothing_new = provider(0.0)
    nothing_new.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    tracer = nothing_new.get_tracer("t")
    assert not tracer.start_span("root").is_recording()
    followed = tracer.start_span("child", context=context_from_traceparent(SAMPLED_PARENT))
    assert followed.is_recording()
    assert followed.get_span_context().trace_id == int(SAMPLED_PARENT.split("-")[1], 16)
