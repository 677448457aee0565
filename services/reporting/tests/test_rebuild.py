"""`ar projections rebuild` end to end on real Kafka and Postgres: a live consumer projects the
events, a rebuild replays the topics from offset 0 while events keep arriving and reports keep
being read, swaps the rebuilt tables in, and a verify-only rebuild afterwards finds the live
tables equal to what the events say (checksums)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from conftest import admin_dsn
from services.reporting.application import reads
from services.reporting.application import rebuild as rebuild_module
from services.reporting.application.rebuild import Rebuild, checksums
from services.reporting.projections.batch import Write, write
from services.reporting.projections.projector import Projector
from services.reporting.projections.tables import PROJECTION_TABLES, Tables
from services.reporting.tests.conftest import Ledger
from shared.consumer import ConsumerRuntime
from shared.contracts import invoice as inv
from shared.db import make_sessionmaker
from shared.events.envelope import EventEnvelope
from shared.messaging.kafka import envelope_headers, make_consumer, make_producer
from shared.migrations import upgrade
from shared.settings import KafkaSettings
from shared.testing import temporary_topics

D = date.fromisoformat


@pytest.fixture
async def schema(admin_engine: AsyncEngine) -> AsyncIterator[str]:
    """A scratch copy of the reporting schema (migrated), so the swap touches nothing shared."""
    name = f"r_{uuid.uuid4().hex[:10]}"
    async with admin_engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {name}"))
    await upgrade("reporting", admin_dsn(), schema=name)
    yield name
    async with admin_engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA {name} CASCADE"))


def business(ledger: Ledger, customers: int, seed: int) -> list[tuple[str, EventEnvelope]]:
    """(topic kind, event) for a few months of invoices, payments, credit notes and fees."""
    rng = random.Random(seed)
    out: list[tuple[str, EventEnvelope]] = []
    for n in range(customers):
        customer = f"c{seed}-{n}"
        out.append(("customer", ledger.customer_event(customer, f"Customer {n}")))
        for _ in range(rng.randint(1, 4)):
            issued_on = D("2026-01-01") + timedelta(days=rng.randint(0, 90))
            total = rng.randint(1, 500) * 1_000
            invoice, issued = ledger.issue(customer, total, issued_on, issued_on + timedelta(30))
            out.append(("invoice", issued))
            if rng.random() < 0.7:
                paid_on = issued_on + timedelta(days=rng.randint(5, 80))
                part = total if rng.random() < 0.6 else total // 2
                payment, received = ledger.received(customer, part, paid_on)
                out.append(("payment", received))
                out.append(("payment", ledger.allocated(payment, invoice, part, paid_on, customer)))
                applied = ledger.applied(invoice, part, paid_on, payment_id=payment)
                out.append(("invoice", applied))
    return out


async def produce(
    producer: AIOKafkaProducer, topics: dict[str, str], events: list[tuple[str, EventEnvelope]]
) -> None:
    for kind, envelope in events:
        await producer.send_and_wait(
            topics[kind],
            envelope.to_json_bytes(),
            key=(envelope.customer_id or "").encode(),
            headers=envelope_headers(envelope),
        )


async def index_definitions(conn: AsyncConnection, schema: str) -> set[str]:
    rows = await conn.scalars(
        text("SELECT indexdef FROM pg_indexes WHERE schemaname = :s AND tablename = ANY(:t)"),
        {"s": schema, "t": list(PROJECTION_TABLES)},
    )
    return set(rows)


@pytest.fixture
async def run_topics(kafka_settings: KafkaSettings) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """This run's id and its customer, invoice and payment topics."""
    run = uuid.uuid4().hex[:8]
    topics = {
        kind: f"test.reporting.{kind}.{run}.v1" for kind in ("customer", "invoice", "payment")
    }
    async with temporary_topics(kafka_settings, list(topics.values())):
        yield run, topics


async def test_rebuild_swaps_in_equal_tables_while_events_arrive_and_reads_go_on(
    admin_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
    schema: str,
    run_topics: tuple[str, dict[str, str]],
) -> None:
    run, topics = run_topics
    sessions = make_sessionmaker(admin_engine)
    ledger = Ledger(sessions, f"t{run}", Tables(schema))
    before = business(ledger, customers=40, seed=1)
    during = business(ledger, customers=20, seed=2)

    producer = make_producer(kafka_settings, "rebuild-test")
    await producer.start()
    consumer = make_consumer(kafka_settings, f"reporting-live-{run}")
    live = ConsumerRuntime(
        consumer=consumer,
        producer=producer,
        sessions=sessions,
        schema=schema,
        group_id=f"reporting-live-{run}",
        handler=Projector(Tables(schema)),
        max_batch=100,
        fetch_timeout_ms=100,
    )
    consumer.subscribe(list(topics.values()), listener=live.rebalance_listener())
    await consumer.start()
    live_task = asyncio.create_task(live.run())

    async def consumed() -> int:
        async with admin_engine.connect() as conn:
            return int(await conn.scalar(text(f"SELECT count(*) FROM {schema}.inbox")) or 0)

    async def wait_consumed(count: int) -> None:
        for _ in range(600):
            if await consumed() >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"live consumer stuck at {await consumed()} of {count}")

    reads_done, read_errors = 0, []
    stop_reading = asyncio.Event()

    async def keep_reading() -> None:
        nonlocal reads_done
        scope = reads.Scope(ledger.tenant)
        while not stop_reading.is_set():
            try:
                async with sessions() as session:
                    await reads.positions(session, Tables(schema), scope, D("2026-03-01"))
                    await reads.receivables_on(session, Tables(schema), scope, D("2026-03-01"))
                reads_done += 1
            except Exception as exc:  # any failure here is what the test is about
                read_errors.append(repr(exc))
            await asyncio.sleep(0.005)

    progress: list[tuple[int, int]] = []
    async with admin_engine.connect() as conn:
        migrated_indexes = await index_definitions(conn, schema)
    try:
        await produce(producer, topics, before)
        await producer.send_and_wait(topics["invoice"], b"not an event", key=b"c1-0")
        # A type the projections ignore is told by its header and never parsed by the rebuild.
        await producer.send_and_wait(
            topics["invoice"],
            b"not parsed either",
            key=b"c1-0",
            headers=[("event_type", b"InvoiceDrafted")],
        )
        await wait_consumed(len(before))
        reader = asyncio.create_task(keep_reading())
        rebuild = Rebuild(
            admin_engine,
            kafka_settings,
            schema,
            list(topics.values()),
            batch_size=50,
            progress=lambda done, total: progress.append((done, total)),
        )
        result, _ = await asyncio.gather(rebuild.run(), produce(producer, topics, during))
        await wait_consumed(len(before) + len(during))
        stop_reading.set()
        await reader

        assert result.swapped and (result.failed, result.undecodable) == (0, 1)
        assert result.records >= len(before)
        assert progress and progress[-1][0] == progress[-1][1] == result.records
        assert read_errors == [] and reads_done > 0
        async with sessions() as session:
            live_after = await checksums(session, Tables(schema))
        # the events projected twice (live, then rebuilt) change nothing: equal to a fresh replay
        verify = await Rebuild(admin_engine, kafka_settings, schema, list(topics.values())).run(
            swap=False
        )
        assert verify.records == len(before) + len(during) + 2
        # the live consumer dead-lettered both
        assert (verify.undecodable, verify.failed, verify.skipped) == (1, 0, 1)
        assert verify.differences == []
        assert verify.live_checksums == verify.rebuilt_checksums == live_after
        assert live_after["invoices"].split(":")[0] == str(
            sum(1 for kind, e in before + during if e.event_type == "InvoiceIssued")
        )
        async with admin_engine.connect() as conn:
            tables = set(
                await conn.scalars(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
                )
            )
            indexes = set(
                await conn.scalars(
                    text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"), {"s": schema}
                )
            )
            definitions = await index_definitions(conn, schema)
        assert set(PROJECTION_TABLES) <= tables
        assert not [t for t in tables if t.endswith("_rebuild")]
        # the swapped-in tables carry the migration's indexes and their names, not the shadow
        # ones; those the rebuild builds after its load included
        assert definitions == migrated_indexes
        assert {
            "invoices_pkey",
            "reporting_invoices_customer",
            "reporting_obligations_arising",
            "reporting_payments_customer",
            "reporting_payment_returns_customer",
        } <= indexes
        assert not [i for i in indexes if "rebuild" in i]
    finally:
        stop_reading.set()
        live.stop()
        await asyncio.wait_for(live_task, 15)
        await consumer.stop()
        await producer.stop()


async def test_after_a_failed_batched_write_the_rebuild_goes_on_event_by_event_to_equal_tables(
    admin_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
    schema: str,
    run_topics: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch is written while the next is applied in memory: when its write fails, both go
    through the per-event projector (the memory is ahead of the tables), and so does the rest.
    A record whose payload its type refuses is counted as failed on either way."""
    run, topics = run_topics
    sessions = make_sessionmaker(admin_engine)
    ledger = Ledger(sessions, f"t{run}", Tables(schema))
    events = business(ledger, customers=30, seed=3)
    projector = Projector(Tables(schema), gated=False)
    async with sessions() as session, session.begin():
        for _, envelope in events:
            await projector.apply(session, envelope)

    refused = ledger.envelope(
        "invoice-x", inv.InvoicePaid(invoice_id=uuid.uuid4(), paid_on=D("2026-03-01")), "c3-0"
    )
    refused_bytes = refused.to_json_bytes().replace(b'"paid_on":"2026-03-01"', b'"paid_on":"soon"')
    producer = make_producer(kafka_settings, "rebuild-test")
    await producer.start()
    try:
        await produce(producer, topics, events[:100])
        await producer.send_and_wait(
            topics["invoice"], refused_bytes, key=b"c3-0", headers=envelope_headers(refused)
        )
        await produce(producer, topics, events[100:])
    finally:
        await producer.stop()

    writes = 0

    async def third_write_fails(session: AsyncSession, statements: list[Write]) -> None:
        nonlocal writes
        writes += 1
        if writes == 3:
            raise RuntimeError("could not extend file: no space left on device")
        await write(session, statements)

    monkeypatch.setattr(rebuild_module, "write", third_write_fails)
    result = await Rebuild(
        admin_engine, kafka_settings, schema, list(topics.values()), batch_size=20
    ).run(swap=False)

    assert writes == 3  # the batches after the failure went the per-event way
    assert result.records == len(events) + 1 > 20 * 6
    assert (result.applied, result.failed, result.undecodable) == (len(events), 1, 0)
    assert result.differences == []
    assert not result.live_checksums["invoices"].startswith("0:")
