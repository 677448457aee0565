"""The event pipeline's three engines, each alone: append, relay to Kafka, projection rebuild.

    .venv/bin/python -m bench.pipeline append --events 20000
    .venv/bin/python -m bench.pipeline relay --events 50000
    .venv/bin/python -m bench.pipeline rebuild [--batch-size 2000] [--copies N]

`append` writes into a scratch schema with the event store's own code (per-stream version
check, outbox columns, JSON payload of an issued invoice's size), from several writers at once.
`relay` fills a scratch schema, then times the outbox relay publishing it to a new topic with the
services' producer settings (idempotent, acks=all), alone and while writers keep appending.
`rebuild` replays the live reporting topics (whatever the local stack holds) into a scratch copy
of the reporting projections with the same code as `ar projections rebuild`; with `--copies N`
it replays temporary topics holding N copies of them instead (the same mix, N times the size).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import time
import uuid
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.common import ADMIN_DSN, scratch_schema
from services.reporting.application.rebuild import Rebuild
from services.reporting.consumers import TOPICS as REPORTING_TOPICS
from services.reporting.projections.tables import PROJECTION_TABLES
from shared.audit.replay import kafka_events
from shared.db import make_engine, make_sessionmaker
from shared.events.envelope import NewEvent
from shared.eventstore.store import AppendContext, EventStore
from shared.messaging.kafka import envelope_headers, make_producer
from shared.outbox import OutboxRelay, TopicRouter
from shared.settings import KafkaSettings
from shared.testing import temporary_topics

CTX = AppendContext(tenant_id="bench", actor="system:bench", customer_id="c-1")
PAYLOAD = {
    "invoice_id": str(uuid.uuid4()),
    "number": "INV-2026-000001",
    "customer_id": "c-1",
    "total": {"amount": 123_456, "currency": "EUR"},
    "lines": [{"description": "Consulting", "quantity": "10", "unit_price": 12_000}] * 3,
}


async def write(
    sessions: async_sessionmaker[AsyncSession],
    schema: str,
    transactions: int,
    per_tx: int,
    writers: int,
    rate: float | None = None,
    written: Synchronized[int] | None = None,
) -> float:
    """`writers` tasks share `transactions` transactions of `per_tx` events, at most `rate`
    events/s in all if given, counting committed events in `written`; returns seconds."""
    store = EventStore(schema)
    remaining = transactions
    started = time.perf_counter()

    async def writer() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if rate is not None:  # the n-th transaction is due at n * per_tx / rate
                due = started + (transactions - remaining) * per_tx / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            batch = [
                NewEvent(event_type="Bench", schema_version=1, payload=PAYLOAD)
                for _ in range(per_tx)
            ]
            async with sessions() as s, s.begin():
                await store.append(s, f"bench-{uuid.uuid4()}", 0, batch, CTX)
            if written is not None:
                written.value += per_tx

    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.perf_counter() - started


def write_in_another_process(
    schema: str,
    transactions: int,
    per_tx: int,
    writers: int,
    rate: float | None,
    written: Synchronized[int],
    window: SynchronizedArray[float],
) -> None:
    """`write` in a process of its own, as the services' writers are: not on the relay's loop.
    `window` gets the wall-clock times of the first write and the last commit."""

    async def run() -> None:
        engine = make_engine(ADMIN_DSN, pool_size=writers, application_name="bench-writers")
        sessions = make_sessionmaker(engine)
        try:
            window[0] = time.time()
            await write(sessions, schema, transactions, per_tx, writers, rate, written)
            window[1] = time.time()
        finally:
            await engine.dispose()

    asyncio.run(run())


async def bench_append(engine: AsyncEngine, events: int, writers: int) -> None:
    sessions = make_sessionmaker(engine)
    print(f"append: {events:,} events per run, {writers} concurrent writers")
    for per_tx in (1, 10, 100):
        async with scratch_schema(engine, "bench_append") as schema:
            seconds = await write(sessions, schema, events // per_tx, per_tx, writers)
        print(
            f"  {per_tx:>3} events per transaction: {events / seconds:>8,.0f} events/s "
            f"({events // per_tx / seconds:,.0f} transactions/s, {seconds:.1f} s)"
        )


def to(topic: str) -> TopicRouter:
    return lambda _: topic


async def relay_until(
    relay: OutboxRelay, target: int, written: Synchronized[int] | None = None
) -> tuple[float, int]:
    """When (wall clock) the relay had published `target` events, and the largest backlog
    (written, not yet published) seen every 100 ms."""
    task = asyncio.create_task(relay.run())
    largest_backlog = 0
    while relay.stats.published < target:
        if task.done():
            task.result()
        if written is not None:
            largest_backlog = max(largest_backlog, written.value - relay.stats.published)
        await asyncio.sleep(0.1 if written is not None else 0.01)
    done = time.time()
    relay.stop()
    await task
    return done, largest_backlog


async def bench_relay(
    engine: AsyncEngine, kafka: KafkaSettings, events: int, rate: float | None, per_tx: int
) -> None:
    sessions = make_sessionmaker(engine)
    producer = make_producer(kafka, "bench-relay")
    await producer.start()
    try:
        for concurrent in (False, True):
            topic = f"bench.relay.{uuid.uuid4().hex[:8]}"
            async with (
                temporary_topics(kafka, [topic]),
                scratch_schema(engine, "bench_relay") as schema,
            ):
                relay = OutboxRelay(engine, schema, producer, to(topic), batch_size=1000)
                if not concurrent:
                    await write(sessions, schema, events // 100, 100, 4)
                    started = time.time()
                    done, _ = await relay_until(relay, events)
                    print(
                        f"relay (drain a backlog): {events / (done - started):,.0f} events/s "
                        f"({events:,} in {done - started:.1f} s)"
                    )
                    continue
                spawn = multiprocessing.get_context("spawn")
                written, window = spawn.Value("q", 0), spawn.Array("d", 2)
                writers = spawn.Process(
                    target=write_in_another_process,
                    args=(schema, events // per_tx, per_tx, 4, rate, written, window),
                )
                writers.start()
                done, largest_backlog = await relay_until(relay, events, written)
                await asyncio.to_thread(writers.join)
                began, ended = window[:]
                pace = f"at {rate:,.0f} events/s" if rate else "unpaced"
                print(
                    f"relay while 4 writers in another process append ({pace}, {per_tx} per "
                    f"transaction): writers {events / (ended - began):,.0f} events/s, relay "
                    f"{events / (done - began):,.0f} events/s, the last event published "
                    f"{done - ended:.2f} s after its commit, largest backlog "
                    f"{largest_backlog:,} events"
                )
    finally:
        await producer.stop()


COPY_PARTITIONS = 3


async def copy_topics(
    kafka: KafkaSettings, sources: list[str], targets: list[str], copies: int
) -> int:
    """Every record of `sources`, `copies` times over into `targets`, each copy under tenants of
    its own (`<tenant>-c<n>`) with the relay's headers: the local history's mix of types at
    `copies` times its size. A partition's records stay in one partition, in order. Records that
    are not event envelopes are copied as they are, without headers. Returns the records
    written."""
    producer = make_producer(kafka, "bench-copy")
    await producer.start()
    written = 0
    try:
        async for event in kafka_events(kafka, sources):
            for n in range(copies):
                value, headers = event.raw or b"", []
                if event.envelope is not None:
                    tenant = f"{event.envelope.tenant_id[:58]}-c{n}"
                    copy = event.envelope.model_copy(update={"tenant_id": tenant})
                    value, headers = copy.to_json_bytes(), envelope_headers(copy)
                await producer.send(
                    targets[sources.index(event.topic)],
                    value,
                    partition=event.partition % COPY_PARTITIONS,
                    headers=headers,
                )
                written += 1
        await producer.flush()
    finally:
        await producer.stop()
    return written


async def bench_rebuild(
    engine: AsyncEngine, kafka: KafkaSettings, batch_size: int, copies: int
) -> None:
    topics = list(REPORTING_TOPICS)
    async with contextlib.AsyncExitStack() as stack:
        if copies:
            run = uuid.uuid4().hex[:8]
            copied = [f"bench.rebuild.{run}.{topic}" for topic in topics]
            await stack.enter_async_context(
                temporary_topics(kafka, copied, partitions=COPY_PARTITIONS)
            )
            started = time.perf_counter()
            written = await copy_topics(kafka, topics, copied, copies)
            print(
                f"copied the local topics {copies} times: {written:,} records in "
                f"{time.perf_counter() - started:.1f} s"
            )
            topics = copied
        schema = await stack.enter_async_context(scratch_schema(engine, "bench_rebuild"))
        async with engine.begin() as conn:
            for table in (*PROJECTION_TABLES, "tenant_settings", "fx_rates"):
                await conn.execute(
                    text(f"CREATE TABLE {schema}.{table} (LIKE reporting.{table} INCLUDING ALL)")
                )
        rebuild = Rebuild(engine, kafka, schema, topics, batch_size=batch_size)
        result = await rebuild.run(swap=True)
    print(
        f"rebuild: {result.records / result.seconds:,.0f} events/s "
        f"({result.records:,} records, {result.applied:,} applied, "
        f"{result.skipped:,} of ignored types not parsed, {result.seconds:.1f} s, "
        f"{batch_size:,} per batch)"
    )


async def main(args: argparse.Namespace) -> None:
    engine = make_engine(ADMIN_DSN, pool_size=8, application_name="bench-pipeline")
    kafka = KafkaSettings()
    try:
        if args.command == "append":
            await bench_append(engine, args.events, args.writers)
        elif args.command == "relay":
            await bench_relay(engine, kafka, args.events, args.rate, args.per_transaction)
        else:
            await bench_rebuild(engine, kafka, args.batch_size, args.copies)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["append", "relay", "rebuild"])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument(
        "--rate", type=float, default=None, help="relay: the writers' events/s (default: unpaced)"
    )
    parser.add_argument(
        "--per-transaction", type=int, default=10, help="relay: events per writer transaction"
    )
    parser.add_argument(
        "--batch-size", type=int, default=2000, help="rebuild: events per transaction"
    )
    parser.add_argument(
        "--copies",
        type=int,
        default=0,
        help="rebuild: replay N copies of the local topics (own tenants each) instead of them",
    )
    asyncio.run(main(parser.parse_args()))
