"""One OpenTelemetry trace from an HTTP request, through the outbox relay and Kafka, to the effect
of every service that consumes the event: invoice, credit, payments, dunning and reporting
together against the real Postgres and Kafka, spans caught by an in-memory exporter."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text

from shared.settings import TelemetrySettings
from shared.testing import bearer
from shared.topics import event_topic
from shared.tracing import setup_tracing
from tests.helpers import in_process, onboard

pytestmark = pytest.mark.integration

SCOPES = ("invoices:read", "invoices:write", "credit:write")
TOPIC = event_topic("invoice", "invoice")
# consumer group of the InvoiceIssued -> the service (schema) whose effect it is
GROUPS = {
    "credit.invoices": "credit",
    "payments.invoices": "payments",
    "dunning.invoices": "dunning",
    "reporting.projections": "reporting",
}
DB_WRITES = ("db INSERT", "db UPDATE")


@dataclass(frozen=True)
class StoredEvent:
    schema: str
    event_id: str
    event_type: str
    traceparent: str | None


def attr(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def describe(span: ReadableSpan | None) -> str:
    if span is None:
        return "<no span>"
    return (
        f"{span.name!r} ({span.kind.name}, trace {trace_id(span):032x}, span {span_id(span):016x})"
    )


def parse_traceparent(traceparent: str | None) -> tuple[int, int] | None:
    """(trace id, parent span id) of a W3C traceparent header."""
    if not traceparent:
        return None
    _, trace_hex, span_hex, _ = traceparent.split("-")
    return int(trace_hex, 16), int(span_hex, 16)


def consume_spans(spans: Sequence[ReadableSpan], event_id: str) -> dict[str, ReadableSpan]:
    """The consume span of each consumer group for `event_id`."""
    return {
        attr(s, "messaging.consumer.group.name"): s
        for s in spans
        if s.kind == SpanKind.CONSUMER
        and s.name == f"consume {TOPIC}"
        and attr(s, "ledgerline.event_id") == event_id
    }


def publish_span(spans: Sequence[ReadableSpan], event_id: str) -> ReadableSpan | None:
    return next(
        (
            s
            for s in spans
            if s.kind == SpanKind.PRODUCER
            and str(s.name).startswith("publish ")
            and attr(s, "ledgerline.event_id") == event_id
        ),
        None,
    )


def server_ancestor(span: ReadableSpan, by_id: Mapping[int, ReadableSpan]) -> ReadableSpan | None:
    """The nearest SERVER span up `span`'s parent chain (through the exported spans)."""
    current: ReadableSpan | None = span
    while current is not None and current.kind != SpanKind.SERVER:
        pid = parent_id(current)
        current = by_id.get(pid) if pid is not None else None
    return current


async def stored_events(
    apps: Mapping[str, FastAPI], tenant: str, where: str, params: Mapping[str, Any]
) -> list[StoredEvent]:
    """Events of the tenant in every service's event store matching `where`."""
    found: list[StoredEvent] = []
    for schema, app in apps.items():
        async with app.state.runtime.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    f"""SELECT event_id::text AS event_id, event_type, traceparent
                        FROM {schema}.events WHERE tenant_id = :tenant AND {where}"""
                ),
                {"tenant": tenant, **params},
            )
            found += [StoredEvent(schema, r.event_id, r.event_type, r.traceparent) for r in rows]
    return found


async def wait_committed(apps: Mapping[str, FastAPI], event_id: str, timeout: float = 30) -> None:
    """Until every group's inbox row for `event_id` (written with its effects) is committed."""
    deadline = asyncio.get_running_loop().time() + timeout
    for group, schema in GROUPS.items():
        async with apps[schema].state.runtime.engine.connect() as conn:
            while not (
                await conn.execute(
                    text(
                        f"""SELECT 1 FROM {schema}.inbox
                            WHERE consumer_group = :group AND event_id = CAST(:id AS uuid)"""
                    ),
                    {"group": group, "id": event_id},
                )
            ).first():
                await conn.rollback()
                assert asyncio.get_running_loop().time() < deadline, f"{group} never committed"
                await asyncio.sleep(0.1)


async def wait_for_spans(
    exporter: InMemorySpanExporter, event_ids: Sequence[str], issued_id: str, timeout: float = 60
) -> tuple[ReadableSpan, ...]:
    """Spans once every group's consume span of `issued_id` and the publish spans of
    `event_ids` have ended."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        spans = exporter.get_finished_spans()
        consumed = consume_spans(spans, issued_id)
        published = [e for e in event_ids if publish_span(spans, e) is not None]
        if set(GROUPS) <= set(consumed) and len(published) == len(event_ids):
            return spans
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"within {timeout}s: consumed by {sorted(consumed)} of {sorted(GROUPS)}; "
                f"published {published} of {list(event_ids)}"
            )
        await asyncio.sleep(0.2)


async def test_one_trace_runs_from_the_issue_request_to_every_consumers_effect() -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("ledgerline-tests", TelemetrySettings()).add_span_processor(
        SimpleSpanProcessor(exporter)
    )
    our_trace, our_parent = uuid.uuid4().int, random.getrandbits(63) + 1
    traceparent = f"00-{our_trace:032x}-{our_parent:016x}-01"
    tenant = f"t{uuid.uuid4().hex[:10]}"
    headers = bearer(tenant, SCOPES)
    try:
        async with in_process(headers, also=("dunning", "reporting")) as services:
            apps = services.apps
            inv, cred = services.clients["invoice"], services.clients["credit"]
            await onboard(inv, cred, 1_000_000)
            line = {"description": "Widgets", "quantity": "1", "unit_price": 50_000, "taxes": []}
            d = await inv.post("/v1/invoices", json={"customer_id": "c-1", "lines": [line]})
            assert d.status_code == 201, d.text
            issue_path = f"/v1/invoices/{d.json()['invoice_id']}/issue"
            issued = await inv.post(issue_path, json={}, headers={"traceparent": traceparent})
            assert issued.status_code == 200, issued.text

            [issued_event] = await stored_events(
                {"invoice": apps["invoice"]}, tenant, "event_type = 'InvoiceIssued'", {}
            )
            stored = parse_traceparent(issued_event.traceparent)
            assert stored is not None and stored[0] == our_trace, (
                f"the InvoiceIssued envelope lost the trace: {issued_event.traceparent!r}"
            )
            issued_id = issued_event.event_id
            await wait_for_spans(exporter, [], issued_id)
            await wait_committed(apps, issued_id)
            # what the consumers appended because of the InvoiceIssued, and its publish spans
            caused = await stored_events(
                apps, tenant, "causation_id = CAST(:cause AS uuid)", {"cause": issued_id}
            )
            spans = await wait_for_spans(exporter, [e.event_id for e in caused], issued_id)
    finally:
        exporter.shutdown()  # the provider is process-wide: stop collecting into this exporter

    by_id = {span_id(s): s for s in spans if trace_id(s) == our_trace}
    consumed = consume_spans(spans, issued_id)
    publish = publish_span(spans, issued_id)
    assert publish is not None and publish.name == f"publish {TOPIC}"
    assert trace_id(publish) == our_trace, f"publish span in another trace: {describe(publish)}"
    server = server_ancestor(publish, by_id)
    assert server is not None, f"no SERVER span above {describe(publish)}"
    assert attr(server, "url.path") == issue_path, f"nearest SERVER span {describe(server)}"
    assert server.parent is not None and server.parent.span_id == our_parent, (
        f"{describe(server)} is not a child of the request's traceparent {traceparent}"
    )
    assert server.parent.is_remote
    # the synchronous credit check the issue made is part of the same trace, below the request
    checks = [
        s
        for s in spans
        if s.kind == SpanKind.SERVER
        and attr(s, "url.path") == "/v1/credit-checks"
        and trace_id(s) == our_trace
    ]
    assert checks, "the credit check started a trace of its own"
    assert all(server_ancestor(by_id[parent_id(c) or 0], by_id) == server for c in checks)
    for group, schema in GROUPS.items():
        consume = consumed[group]
        assert trace_id(consume) == our_trace, f"{group}: {describe(consume)} left the trace"
        assert parent_id(consume) == span_id(publish), (
            f"{group}: parent of {describe(consume)} is {parent_id(consume)}, "
            f"not the relay's {describe(publish)}"
        )
        writes = [
            s
            for s in by_id.values()
            if s.name in DB_WRITES
            and s.kind == SpanKind.CLIENT
            and parent_id(s) == span_id(consume)
        ]
        assert writes, f"{group}: no db INSERT/UPDATE span inside {describe(consume)}"
        for event in (e for e in caused if e.schema == schema):
            assert parse_traceparent(event.traceparent) == (our_trace, span_id(consume)), (
                f"{group}: {event.event_type} {event.event_id} stored traceparent "
                f"{event.traceparent!r}, not the consume span {describe(consume)}"
            )
            published = publish_span(spans, event.event_id)
            assert published is not None and parent_id(published) == span_id(consume), (
                f"{group}: {event.event_type} published by {describe(published)} "
                f"outside {describe(consume)}"
            )
    assert {e.schema for e in caused} <= set(GROUPS.values()), caused
