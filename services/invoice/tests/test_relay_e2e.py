"""The invoice service's own wiring, end to end: HTTP -> events table -> relay -> Kafka."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.api.app import create_app
from services.invoice.application.repository import customer_stream, invoice_stream, template_stream
from services.invoice.config import InvoiceSettings
from services.invoice.tests.credit_stub import credit_stub
from services.invoice.tests.test_api import auth, customer, draft
from shared.events.envelope import EventEnvelope, aggregate_of
from shared.messaging.kafka import header
from shared.settings import KafkaSettings
from shared.testing import app_client
from shared.topics import SERVICE_AGGREGATES, event_topic


def test_every_stream_the_service_writes_has_a_topic() -> None:
    """An event whose topic does not exist would stop the relay for everything behind it."""
    streams = [
        invoice_stream(uuid.uuid4()),
        customer_stream("t1", "c-1"),
        template_stream(uuid.uuid4()),
    ]
    assert {aggregate_of(s) for s in streams} <= set(SERVICE_AGGREGATES["invoice"])


@pytest.mark.integration
async def test_issued_invoice_reaches_kafka_with_its_trace_and_correlation(
    tenant: str, kafka_settings: KafkaSettings
) -> None:
    topic = event_topic("invoice", "invoice")
    reader = AIOKafkaConsumer(
        bootstrap_servers=kafka_settings.bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await reader.start()
    partitions = [
        TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or [])
    ]
    reader.assign(partitions)
    await reader.seek_to_end(*partitions)
    for tp in partitions:  # resolve the end offsets now, before anything is published
        await reader.position(tp)

    credit = CreditCheckClient(
        "http://credit", transport=httpx.ASGITransport(app=credit_stub({"acme-ltd": 10**9}))
    )
    app = create_app(InvoiceSettings(run_consumers=False), credit)
    correlation = str(uuid.uuid4())
    try:
        async with app_client(app, "http://invoice") as api:
            await customer(api, tenant)
            inv = await draft(api, tenant)
            r = await api.post(
                f"/v1/invoices/{inv['invoice_id']}/issue",
                json={"issue_date": "2026-11-02"},
                headers={**auth(tenant), "X-Correlation-ID": correlation},
            )
            assert r.status_code == 200, r.text
            found: dict[str, EventEnvelope] = {}
            deadline = asyncio.get_running_loop().time() + 20
            while len(found) < 2 and asyncio.get_running_loop().time() < deadline:
                for records in (await reader.getmany(timeout_ms=200)).values():
                    for record in records:
                        e = EventEnvelope.from_json_bytes(record.value)
                        if e.tenant_id == tenant:
                            assert record.key == b"acme-ltd"
                            assert header(record.headers, "event_type") == e.event_type
                            found[e.event_type] = e
    finally:
        await reader.stop()
    assert set(found) == {"InvoiceDrafted", "InvoiceIssued"}
    issued = found["InvoiceIssued"]
    assert issued.payload["number"].startswith("INV-2026-")
    assert str(issued.correlation_id) == correlation
    assert issued.actor == "client:erp" and issued.traceparent
