"""One trace from the HTTP request, through the outbox and Kafka, to the consumer's effect."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.consumer import ConsumerRuntime, MessageContext
from shared.events.envelope import EventEnvelope
from shared.messaging.kafka import make_consumer, make_producer
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings, TelemetrySettings
from shared.tests.kafka_helpers import drain
from shared.tests.notes_app import bearer
from shared.tracing import setup_tracing

pytestmark = pytest.mark.integration


async def test_spans_link_from_request_to_consumer(
    client: httpx.AsyncClient,
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("ledgerline-tests", TelemetrySettings()).add_span_processor(
        SimpleSpanProcessor(exporter)
    )
    created = await client.post(
        "/v1/notes", json={"text": "traced", "customer_id": "c1"}, headers=bearer()
    )
    assert created.status_code == 201

    producer = make_producer(kafka_settings, "trace-test")
    await producer.start()
    handled: list[EventEnvelope] = []

    async def handler(_: AsyncSession, envelope: EventEnvelope, __: MessageContext) -> None:
        handled.append(envelope)

    group = f"trace-{uuid.uuid4().hex[:6]}"
    consumer = make_consumer(kafka_settings, group, fresh_topic)
    runtime = ConsumerRuntime(
        consumer=consumer,
        producer=producer,
        sessions=sessions,
        schema=scratch_schema,
        group_id=group,
        handler=handler,
        fetch_timeout_ms=100,
    )
    try:
        relay = OutboxRelay(admin_engine, scratch_schema, producer, lambda _: fresh_topic)
        assert await relay.acquire()
        assert await drain(relay) == 1
        await relay.release()
        await consumer.start()
        task = asyncio.create_task(runtime.run())
        for _ in range(600):  # up to 30 s: a group joins slowly right after a broker restart
            if handled:
                break
            await asyncio.sleep(0.05)
        runtime.stop()
        await task
    finally:
        await consumer.stop()
        await producer.stop()

    assert len(handled) == 1
    spans = exporter.get_finished_spans()
    consume = next(s for s in spans if s.name == f"consume {fresh_topic}")
    trace_id = consume.context.trace_id
    in_trace = {s.context.span_id: s for s in spans if s.context.trace_id == trace_id}

    def ancestors(span: ReadableSpan) -> list[str]:
        names = []
        while span.parent is not None and span.parent.span_id in in_trace:
            span = in_trace[span.parent.span_id]
            names.append(span.name)
        return names

    servers = [s for s in in_trace.values() if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == ["POST /v1/notes"]  # one trace, one server span
    chain = ancestors(consume)
    assert chain[0] == f"publish {fresh_topic}"
    assert chain[-1] == "POST /v1/notes"
    assert servers[0].parent is None
    assert consume.attributes is not None
    assert consume.attributes["ledgerline.event_id"] == str(handled[0].event_id)
    inserts = [s for s in in_trace.values() if s.name == "db INSERT"]
    assert inserts and all(ancestors(s)[-1] == "POST /v1/notes" for s in inserts)
    incoming = await client.get(
        "/healthz",
        headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )
    assert incoming.status_code == 200
    continued = [s for s in exporter.get_finished_spans() if s.name == "GET /healthz"]
    assert continued and continued[-1].context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
