"""The journal as a real consumer group over Kafka: wired into the reporting service, an event
without an exchange rate is dead-lettered (the partition moves on), and re-driving it after the
rate is loaded posts it exactly once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry import consumer_specs
from services.reporting.config import ReportingSettings
from services.reporting.projections.journal import JournalProjector
from services.reporting.tests.journal_helpers import (
    JournalLedger,
    assert_journal_balanced,
    day,
    stored_journal,
)
from services.reporting.tests.test_postings import issued
from shared.audit import dlq
from shared.consumer import ConsumerRuntime
from shared.messaging.kafka import make_consumer
from shared.settings import KafkaSettings
from shared.testing import publish_envelopes
from shared.topics import event_topic


def test_the_reporting_service_runs_the_journal_as_its_own_group() -> None:
    groups = {spec.group_id: spec for spec in consumer_specs("reporting")}
    assert set(groups) == {"reporting.projections", "reporting.journal"}
    journal = groups["reporting.journal"]
    assert journal.topics == (event_topic("invoice", "invoice"), event_topic("payments", "payment"))
    assert isinstance(journal.handler, JournalProjector)
    off = consumer_specs("reporting", ReportingSettings(run_journal=False))
    assert [spec.group_id for spec in off] == ["reporting.projections"]


@pytest.mark.integration
async def test_a_missing_rate_is_dead_lettered_then_redriven(
    reporting_sessions: async_sessionmaker[AsyncSession],
    tenant: str,
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    fresh_topic: str,
) -> None:
    ledger = JournalLedger(reporting_sessions, tenant)
    await ledger.functional("EUR")
    yen = ledger.invoice_event(issued("c1", 500000, 0, "JPY", day(3), "INV-JPY"))
    euro = ledger.invoice_event(issued("c1", 1000, 0, "EUR", day(4), "INV-EUR"))
    # one customer: one partition, this order
    await publish_envelopes(producer, fresh_topic, [yen, euro])

    group = f"reporting.journal.test-{uuid.uuid4().hex[:6]}"
    handler = JournalProjector("reporting")
    consumer = make_consumer(kafka_settings, group)
    runtime = ConsumerRuntime(
        consumer=consumer,
        producer=producer,
        sessions=reporting_sessions,
        schema="reporting",
        group_id=group,
        handler=handler,
        max_retries=2,
        retry_backoff=0.01,
        fetch_timeout_ms=100,
    )
    consumer.subscribe([fresh_topic], listener=runtime.rebalance_listener())
    await consumer.start()
    task = asyncio.create_task(runtime.run())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while (
            runtime.stats.processed + runtime.stats.dead_lettered < 2
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)
    finally:
        runtime.stop()
        await task
        await consumer.stop()
    assert (runtime.stats.processed, runtime.stats.dead_lettered) == (1, 1)
    assert [e.document_number for e in await stored_journal(reporting_sessions, tenant)] == [
        "INV-EUR"
    ]

    async with reporting_sessions() as s:
        [letter] = await dlq.list_dead_letters(s, "reporting", group=group)
    assert letter.error_type == "MissingRate"
    await ledger.rates(("JPY", "EUR", day(3), "0.0061"))
    outcome = await dlq.redrive(
        reporting_sessions,
        "reporting",
        letter.id,
        handlers={group: handler},
        kafka=kafka_settings,
        actor="user:ops",
    )
    assert outcome == "processed"
    entries = await assert_journal_balanced(reporting_sessions, tenant)
    assert sorted(e.document_number or "" for e in entries) == ["INV-EUR", "INV-JPY"]
