"""Outbox relay against real Postgres and Kafka: order, headers, late commits, leadership."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import OutOfOrderSequenceNumber
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import make_sessionmaker
from shared.events.envelope import EventEnvelope, NewEvent
from shared.eventstore.store import AppendContext, EventStore, OutboxRecord
from shared.messaging.kafka import RenewableProducer, header, make_producer
from shared.outbox import BUSY_FOR, OutboxRelay, backlog, waking_session
from shared.settings import KafkaSettings
from shared.tests.kafka_helpers import drain, read_topic

pytestmark = pytest.mark.integration


def ctx(customer: str) -> AppendContext:
    return AppendContext(
        tenant_id="acme",
        actor="client:test",
        customer_id=customer,
        correlation_id=uuid.uuid4(),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


async def append(
    sessions: async_sessionmaker[AsyncSession], schema: str, label: str, customer: str = "c1"
) -> None:
    async with sessions() as s, s.begin():
        await EventStore(schema).append(
            s,
            f"thing-{uuid.uuid4()}",
            0,
            [NewEvent(event_type="ThingHappened", schema_version=1, payload={"label": label})],
            ctx(customer),
        )


def relay_for(
    engine: AsyncEngine,
    schema: str,
    producer: AIOKafkaProducer,
    topic: str,
    before_checkpoint: Callable[[list[OutboxRecord]], Awaitable[None]] | None = None,
    *,
    poll_interval: float = 0.02,
    idle_poll_interval: float | None = None,
) -> OutboxRelay:
    return OutboxRelay(
        engine,
        schema,
        producer,
        lambda _: topic,
        batch_size=100,
        poll_interval=poll_interval,
        idle_poll_interval=idle_poll_interval,
        before_checkpoint=before_checkpoint,
    )


def labels(records: list) -> list[str]:  # type: ignore[type-arg]
    return [EventEnvelope.from_json_bytes(r.value).payload["label"] for r in records]


async def test_publishes_in_commit_order_with_key_and_headers(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    for i in range(20):
        await append(sessions, scratch_schema, f"e{i}", customer="same-customer")
    relay = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    assert await relay.acquire()
    assert await drain(relay) == 20
    await relay.release()
    records = await read_topic(kafka_settings, fresh_topic, expect=20)
    assert labels(records) == [f"e{i}" for i in range(20)]  # one key -> one partition, in order
    first = records[0]
    envelope = EventEnvelope.from_json_bytes(first.value)
    assert first.key == b"same-customer"
    assert header(first.headers, "event_id") == str(envelope.event_id)
    assert header(first.headers, "event_type") == "ThingHappened"
    tp = header(first.headers, "traceparent")
    assert tp is not None and tp.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    async with admin_engine.connect() as conn:
        assert await backlog(conn, scratch_schema) == 0


async def test_a_transaction_held_open_while_others_commit_is_still_published(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """The classic outbox gap: T1 appends first, T2 and T3 commit, the relay runs, then T1 commits."""
    relay = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    task = asyncio.create_task(relay.run())
    try:
        held = sessions()
        await held.begin()
        await EventStore(scratch_schema).append(
            held,
            f"thing-{uuid.uuid4()}",
            0,
            [NewEvent(event_type="ThingHappened", schema_version=1, payload={"label": "late"})],
            ctx("c1"),
        )
        await append(sessions, scratch_schema, "t2")
        await append(sessions, scratch_schema, "t3")
        await asyncio.sleep(0.5)  # the relay polls many times meanwhile
        await held.commit()
        await held.close()
        await append(sessions, scratch_schema, "t4")
        records = await read_topic(kafka_settings, fresh_topic, expect=4)
    finally:
        relay.stop()
        await task
    assert labels(records) == ["late", "t2", "t3", "t4"]


async def test_concurrent_writers_with_aborts_every_committed_event_published_once(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    relay = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    task = asyncio.create_task(relay.run())
    committed: list[str] = []
    rng = random.Random(7)

    async def writer(w: int) -> None:
        for i in range(25):
            label = f"w{w}-{i}"
            async with sessions() as s:
                await s.begin()
                await EventStore(scratch_schema).append(
                    s,
                    f"thing-{uuid.uuid4()}",
                    0,
                    [
                        NewEvent(
                            event_type="ThingHappened", schema_version=1, payload={"label": label}
                        )
                    ],
                    ctx(f"c{w}"),
                )
                await asyncio.sleep(
                    rng.random() / 100
                )  # transactions overlap and finish out of order
                if rng.random() < 0.2:
                    await s.rollback()
                else:
                    await s.commit()
                    committed.append(label)

    try:
        await asyncio.gather(*(writer(w) for w in range(8)))
        records = await read_topic(kafka_settings, fresh_topic, expect=len(committed))
    finally:
        relay.stop()
        await task
    got = labels(records)
    assert sorted(got) == sorted(committed)  # nothing lost, nothing aborted leaked, no duplicate
    for w in range(8):  # per key, the order in which each writer committed
        mine = [x for x in got if x.startswith(f"w{w}-")]
        assert mine == [x for x in committed if x.startswith(f"w{w}-")]


async def test_only_one_relay_leads_and_another_takes_over(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    first = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    second = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    assert await first.acquire()
    assert not await second.acquire()
    await append(sessions, scratch_schema, "a")
    assert await drain(first) == 1
    await first.release()  # the leader dies: its session, and so its lock, is gone
    assert await second.acquire()
    await append(sessions, scratch_schema, "b")
    assert await drain(second) == 1  # resumes from the shared checkpoint
    await second.release()
    assert labels(await read_topic(kafka_settings, fresh_topic, expect=2)) == ["a", "b"]


async def test_crash_between_kafka_ack_and_checkpoint_republishes(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """At-least-once: the batch is sent again, so consumers must (and do) de-duplicate by event_id."""

    async def crash(_: list[OutboxRecord]) -> None:
        raise RuntimeError("killed after ack, before checkpoint")

    await append(sessions, scratch_schema, "x")
    crashing = relay_for(
        admin_engine, scratch_schema, producer, fresh_topic, before_checkpoint=crash
    )
    assert await crashing.acquire()
    with pytest.raises(RuntimeError):
        await drain(crashing)
    await crashing.release()
    healthy = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    assert await healthy.acquire()
    assert await drain(healthy) == 1
    await healthy.release()
    records = await read_topic(kafka_settings, fresh_topic, expect=2)
    assert labels(records) == ["x", "x"]
    assert len({header(r.headers, "event_id") for r in records}) == 1


async def test_a_producer_whose_sequence_the_broker_rejects_is_renewed_and_nothing_is_lost(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """After a Kafka restart the broker can answer OutOfOrderSequenceNumber to every batch of a
    producer id; aiokafka never resets the sequence, so only a new producer publishes again.

    The divergence is made here by advancing the client's sequence numbers past the broker's
    (what a broker that lost the producer's latest batches sees); the broker's answers are real.
    """
    producer = RenewableProducer(lambda: make_producer(kafka_settings, "test-renew"), "test")
    await producer.start()
    relay = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    try:
        await append(sessions, scratch_schema, "before", customer="c1")
        assert await relay.acquire()
        assert await drain(relay) == 1
        await relay.release()

        inner = producer._producer
        for partition in await inner.partitions_for(fresh_topic):
            inner._txn_manager.increment_sequence_number(TopicPartition(fresh_topic, partition), 5)
        failed_at_broker = await producer.send(fresh_topic, b"probe", key=b"c1")
        with pytest.raises(OutOfOrderSequenceNumber):
            await failed_at_broker
        assert isinstance(producer.broken, OutOfOrderSequenceNumber)

        for n in range(5):
            await append(sessions, scratch_schema, f"after-{n}", customer=f"c{n}")
        running = asyncio.create_task(relay.run())
        try:
            async with asyncio.timeout(20):
                while True:
                    async with admin_engine.connect() as conn:
                        if await backlog(conn, scratch_schema) == 0:
                            break
                    await asyncio.sleep(0.05)
        finally:
            relay.stop()
            await running
        assert producer.renewals == 1
        assert producer.broken is None
        published = labels(await read_topic(kafka_settings, fresh_topic, expect=6))
        assert sorted(published) == sorted(["before"] + [f"after-{n}" for n in range(5)])
    finally:
        await producer.stop()


async def seconds_to_publish_after(
    relay: OutboxRelay,
    sessions: async_sessionmaker[AsyncSession],
    schema: str,
    quiet: float,
) -> float:
    """Run the relay; once it published a first event and `quiet` seconds passed, append a
    second one: how long until the relay published it."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(relay.run())
    try:
        await append(sessions, schema, "first")
        async with asyncio.timeout(5):
            while relay.stats.published == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(quiet)
        await append(sessions, schema, "second")
        started = loop.time()
        async with asyncio.timeout(5):
            while relay.stats.published < 2:
                await asyncio.sleep(0.005)
        return loop.time() - started
    finally:
        relay.stop()
        await task


async def test_a_commit_that_appended_events_wakes_the_relay_at_once(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """Polls 5 s apart: only the wake-up can publish the second event within the second."""
    relay = relay_for(
        admin_engine, scratch_schema, producer, fresh_topic, poll_interval=5, idle_poll_interval=5
    )
    waking = make_sessionmaker(admin_engine, waking_session(lambda: relay))
    assert await seconds_to_publish_after(relay, waking, scratch_schema, quiet=0.2) < 0.5
    assert labels(await read_topic(kafka_settings, fresh_topic, expect=2)) == ["first", "second"]


async def test_only_commits_that_appended_events_wake(
    scratch_schema: str, admin_engine: AsyncEngine
) -> None:
    class Counter:
        wakes = 0

        def wake(self) -> None:
            self.wakes += 1

    counter = Counter()
    sessions = make_sessionmaker(admin_engine, waking_session(lambda: counter))
    await append(sessions, scratch_schema, "committed")
    assert counter.wakes == 1
    async with sessions() as s:
        await s.begin()
        await EventStore(scratch_schema).append(
            s,
            f"thing-{uuid.uuid4()}",
            0,
            [NewEvent(event_type="ThingHappened", schema_version=1, payload={"label": "x"})],
            ctx("c"),
        )
        await s.rollback()
        async with s.begin():  # the same session commits again, without events
            await s.execute(text("SELECT 1"))
    assert counter.wakes == 1


async def test_events_that_wake_nobody_are_published_by_the_idle_poll(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """Another process's writes (plain sessions here) wait at most the idle interval."""
    relay = relay_for(
        admin_engine,
        scratch_schema,
        producer,
        fresh_topic,
        poll_interval=0.02,
        idle_poll_interval=0.3,
    )
    quiet = BUSY_FOR + 0.1  # the relay has gone idle
    assert await seconds_to_publish_after(relay, sessions, scratch_schema, quiet) < 0.3 + 0.2
    assert labels(await read_topic(kafka_settings, fresh_topic, expect=2)) == ["first", "second"]
