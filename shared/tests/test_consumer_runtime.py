"""Consumer runtime against real Postgres and Kafka: dedupe, DLQ, retries, re-drive, rebalance."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.audit import dlq
from shared.consumer import ConsumerRuntime, MessageContext, Unprocessable, once_before_commit
from shared.db import database_unavailable
from shared.errors import StateConflict
from shared.events.envelope import EventEnvelope, NewEvent
from shared.eventstore.store import ANY_VERSION, AppendContext, EventStore
from shared.messaging.kafka import header, make_consumer
from shared.settings import KafkaSettings
from shared.testing import publish_envelopes
from shared.tests.kafka_helpers import read_topic
from shared.topics import dlq_topic

pytestmark = pytest.mark.integration


@pytest.fixture
async def effects_table(scratch_schema: str, sessions: async_sessionmaker[AsyncSession]) -> str:
    """A table with no uniqueness: a double effect would show as a second row."""
    async with sessions() as s, s.begin():
        await s.execute(text(f"CREATE TABLE {scratch_schema}.effects (event_id uuid, label text)"))
    return f"{scratch_schema}.effects"


def make_envelope(label: str, customer: str = "c1") -> EventEnvelope:
    now = datetime.now(UTC)
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type="ThingHappened",
        schema_version=1,
        stream_id=f"thing-{uuid.uuid4()}",
        stream_version=1,
        occurred_at=now,
        recorded_at=now,
        tenant_id="acme",
        customer_id=customer,
        actor="client:test",
        payload={"label": label},
    )


async def publish(producer: AIOKafkaProducer, topic: str, *items: EventEnvelope | bytes) -> None:
    for item in items:
        if isinstance(item, bytes):
            await producer.send_and_wait(topic, value=item, key=b"c1")
        else:
            await publish_envelopes(producer, topic, [item])


class Recorder:
    """The handler under test: writes one effect row per event, can be told to fail."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.fail_labels: dict[str, int] = {}  # label -> how many more times to fail
        self.calls: Counter[str] = Counter()

    async def __call__(self, session: AsyncSession, e: EventEnvelope, ctx: MessageContext) -> None:
        label = e.payload["label"]
        self.calls[label] += 1
        await session.execute(
            text(f"INSERT INTO {self.table} VALUES (:id, :label)"),
            {"id": e.event_id, "label": label},
        )
        remaining = self.fail_labels.get(label, 0)
        if remaining:
            self.fail_labels[label] = remaining - 1
            raise ValueError(f"handler refuses {label}")


def runtime(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    sessions: async_sessionmaker[AsyncSession],
    schema: str,
    group: str,
    topic: str,
    handler: Recorder,
) -> ConsumerRuntime:
    consumer = make_consumer(kafka_settings, group)
    rt = ConsumerRuntime(
        consumer=consumer,
        producer=producer,
        sessions=sessions,
        schema=schema,
        group_id=group,
        handler=handler,
        max_batch=50,
        max_retries=2,
        retry_backoff=0.01,
        fetch_timeout_ms=100,
    )
    consumer.subscribe([topic], listener=rt.rebalance_listener())
    return rt


async def run_until(rt: ConsumerRuntime, done: object, timeout: float = 30.0) -> None:
    await rt.consumer.start()
    task = asyncio.create_task(rt.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not done() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]
            await asyncio.sleep(0.05)
    finally:
        rt.stop()
        await task
        await rt.consumer.stop()


async def effect_labels(sessions: async_sessionmaker[AsyncSession], table: str) -> list[str]:
    async with sessions() as s:
        return [r.label for r in await s.execute(text(f"SELECT label FROM {table} ORDER BY label"))]


async def test_redelivery_after_a_crash_before_offset_commit_changes_nothing(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    batch = [make_envelope(f"e{i}", customer=f"c{i % 3}") for i in range(12)]
    await publish(producer, fresh_topic, *batch, batch[0])  # and a relay-style duplicate
    group, handler = f"g-{uuid.uuid4().hex[:6]}", Recorder(effects_table)

    crashing = runtime(
        kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler
    )

    async def lost_commit(*_: object, **__: object) -> None:
        raise ConnectionError("process died before committing offsets")

    crashing.consumer.commit = lost_commit
    await run_until(crashing, lambda: crashing.stats.processed + crashing.stats.duplicates >= 13)
    assert crashing.stats.processed == 12 and crashing.stats.duplicates == 1

    again = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    await run_until(again, lambda: again.stats.duplicates >= 13)
    assert again.stats.processed == 0 and again.stats.duplicates == 13  # all redelivered, no effect
    assert await effect_labels(sessions, effects_table) == sorted(f"e{i}" for i in range(12))


async def test_poison_and_failing_messages_go_to_the_dlq_and_the_partition_moves_on(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    failing = make_envelope("bad")
    await publish(
        producer, fresh_topic, make_envelope("ok1"), b"\x00not json", failing, make_envelope("ok2")
    )  # all key c1: one partition, in this order
    group, handler = f"g-{uuid.uuid4().hex[:6]}", Recorder(effects_table)
    handler.fail_labels["bad"] = 99
    rt = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    await run_until(rt, lambda: rt.stats.processed >= 2 and rt.stats.dead_lettered >= 2)

    assert await effect_labels(sessions, effects_table) == [
        "ok1",
        "ok2",
    ]  # failed effects rolled back
    assert handler.calls["bad"] == 3  # first try + 2 retries with backoff
    dead = await read_topic(kafka_settings, dlq_topic(fresh_topic), expect=2)
    assert len(dead) == 2
    poison, bad = sorted(dead, key=lambda r: int(header(r.headers, "dlq.origin.offset") or 0))
    assert poison.value == b"\x00not json"
    assert header(poison.headers, "dlq.error.type") == "PoisonMessage"
    assert header(bad.headers, "dlq.origin.topic") == fresh_topic
    assert header(bad.headers, "dlq.consumer_group") == group
    assert header(bad.headers, "dlq.error.type") == "ValueError"
    assert "handler refuses bad" in (header(bad.headers, "dlq.error.message") or "")
    assert header(bad.headers, "dlq.attempts") == "3"
    assert header(bad.headers, "event_id") == str(failing.event_id)  # origin headers kept

    # offsets were committed past everything: a new member of the group gets nothing again
    again = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    await run_until(again, lambda: False, timeout=3)
    assert again.stats.processed == again.stats.duplicates == again.stats.dead_lettered == 0

    # both are in the register, pointing at their DLQ copies
    async with sessions() as s:
        letters = await dlq.list_dead_letters(s, scratch_schema)
    assert [(d.error_type, d.kafka_offset, d.event_id) for d in letters] == [
        ("PoisonMessage", 1, None),
        ("ValueError", 2, str(failing.event_id)),
    ]
    assert {(d.dlq_topic, d.dlq_offset) for d in letters} == {
        (dlq_topic(fresh_topic), r.offset) for r in dead
    }
    poison_letter, bad_letter = letters
    handlers = {group: handler}

    async def redrive(letter_id: int) -> str:
        return await dlq.redrive(
            sessions,
            scratch_schema,
            letter_id,
            handlers=handlers,
            kafka=kafka_settings,
            actor="user:ops",
        )

    # still failing: the letter stays open, the attempt is recorded
    handler.fail_labels["bad"] = 1
    with pytest.raises(dlq.RedriveFailed):
        await redrive(bad_letter.id)
    # once the cause is fixed, re-driving applies it exactly once
    assert await redrive(bad_letter.id) == "processed"
    assert await redrive(bad_letter.id) == "already_redriven"
    assert await effect_labels(sessions, effects_table) == ["bad", "ok1", "ok2"]
    with pytest.raises(dlq.RedriveFailed, match="cannot be decoded"):
        await redrive(poison_letter.id)
    await dlq.discard(
        sessions, scratch_schema, poison_letter.id, reason="garbage from a test", actor="user:ops"
    )
    with pytest.raises(StateConflict):
        await dlq.discard(
            sessions, scratch_schema, poison_letter.id, reason="again", actor="user:ops"
        )
    async with sessions() as s:
        assert await dlq.list_dead_letters(s, scratch_schema) == []
        closed = {d.id: d for d in await dlq.list_dead_letters(s, scratch_schema, status=None)}
    assert (closed[bad_letter.id].status, closed[bad_letter.id].resolution) == (
        "redriven",
        "processed",
    )
    assert closed[bad_letter.id].redrive_attempts == 1
    assert "refuses bad" in (closed[bad_letter.id].last_redrive_error or "")
    assert (
        closed[poison_letter.id].status,
        closed[poison_letter.id].resolution,
        closed[poison_letter.id].resolved_by,
    ) == ("discarded", "garbage from a test", "user:ops")
    async with sessions() as s:
        outcome = (
            await s.execute(
                text(f"SELECT outcome FROM {scratch_schema}.inbox WHERE event_id = :id"),
                {"id": failing.event_id},
            )
        ).scalar_one()
    assert outcome == "processed"


class ContendedAccount(Recorder):
    """Appends every event to one shared stream; for `contended`, a younger transaction
    (as an API request of the same service would) appends to that stream first and commits."""

    def __init__(self, table: str, schema: str, sessions: async_sessionmaker[AsyncSession]):
        super().__init__(table)
        self.store = EventStore(schema)
        self.competitor = sessions
        self.ctx = AppendContext(tenant_id="acme", actor="client:test")

    async def append(self, session: AsyncSession, label: str) -> None:
        event = NewEvent(event_type="Touched", schema_version=1, payload={"label": label})
        await self.store.append(session, "account-1", ANY_VERSION, [event], self.ctx)

    async def __call__(self, session: AsyncSession, e: EventEnvelope, ctx: MessageContext) -> None:
        await super().__call__(session, e, ctx)
        if e.payload["label"] == "contended" and self.calls["contended"] == 1:
            async with self.competitor() as other, other.begin():
                await self.append(other, "api request")
        await self.append(session, e.payload["label"])


async def test_a_concurrency_conflict_is_retried_in_a_new_transaction_not_dead_lettered(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """Regression: retries ran in savepoints of the batch's transaction, whose id stayed older
    than the competing writer's, so the event store refused every attempt and the event was
    dead-lettered (the credit service lost invoices under load this way)."""
    await publish(
        producer, fresh_topic, make_envelope("contended"), make_envelope("a"), make_envelope("b")
    )  # `contended` first: the competitor must not wait on rows this batch already wrote
    group = f"g-{uuid.uuid4().hex[:6]}"
    handler = ContendedAccount(effects_table, scratch_schema, sessions)
    rt = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    await run_until(rt, lambda: rt.stats.processed + rt.stats.dead_lettered >= 3)

    assert rt.stats.dead_lettered == 0
    assert rt.stats.conflicts >= 1
    assert await effect_labels(sessions, effects_table) == ["a", "b", "contended"]
    async with sessions() as s:
        written = await EventStore(scratch_schema).read_stream(s, "account-1", tenant_id="acme")
    assert sorted(e.payload["label"] for e in written) == ["a", "api request", "b", "contended"]


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        # Retrying cannot cure it (it waits for a rate to be loaded, say): no retries.
        (Unprocessable("no JPY->EUR rate"), 1),
        # Every OSError used to count as an outage: the batch was retried forever and the
        # partition stood still. A local file's error is the handler's: retried, then DLQ.
        (FileNotFoundError(2, "No such file or directory", "reminder.j2"), 3),
    ],
    ids=["unprocessable", "missing-file"],
)
async def test_a_handler_fault_is_dead_lettered_and_the_partition_moves_on(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
    error: Exception,
    attempts: int,
) -> None:
    class Refusing(Recorder):
        async def __call__(
            self, session: AsyncSession, e: EventEnvelope, ctx: MessageContext
        ) -> None:
            await super().__call__(session, e, ctx)
            if e.payload["label"] == "refused":
                raise error

    await publish(producer, fresh_topic, make_envelope("refused"), make_envelope("ok"))
    group, handler = f"g-{uuid.uuid4().hex[:6]}", Refusing(effects_table)
    rt = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    await run_until(rt, lambda: rt.stats.processed >= 1 and rt.stats.dead_lettered >= 1)

    assert handler.calls["refused"] == attempts and rt.stats.infra_failures == 0
    assert await effect_labels(sessions, effects_table) == ["ok"]
    [dead] = await read_topic(kafka_settings, dlq_topic(fresh_topic), expect=1)
    assert header(dead.headers, "dlq.attempts") == str(attempts)
    assert header(dead.headers, "dlq.error.type") == type(error).__name__


def test_connection_errors_are_outages_and_local_file_errors_are_not() -> None:
    assert database_unavailable(ConnectionRefusedError()) and database_unavailable(OSError(111))
    assert not database_unavailable(PermissionError(13, "Permission denied", "/etc/ledgerline"))


async def test_records_of_types_the_group_does_not_act_on_are_passed_over_unparsed(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    other = make_envelope("other").model_copy(update={"event_type": "OtherThing"})
    unheaded = make_envelope("no headers")
    await publish(producer, fresh_topic, make_envelope("a"), other)
    await producer.send_and_wait(  # told by its header: the body is never read
        fresh_topic, value=b"\x00garbage", key=b"c1", headers=[("event_type", b"OtherThing")]
    )
    # without the header the record is read as before
    await producer.send_and_wait(fresh_topic, value=unheaded.to_json_bytes(), key=b"c1")
    group, handler = f"g-{uuid.uuid4().hex[:6]}", Recorder(effects_table)
    rt = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    rt.event_types = frozenset({"ThingHappened"})
    await run_until(rt, lambda: rt.stats.processed + rt.stats.skipped >= 4)

    assert (rt.stats.processed, rt.stats.skipped, rt.stats.dead_lettered) == (2, 2, 0)
    assert await effect_labels(sessions, effects_table) == ["a", "no headers"]
    async with sessions() as s:
        inbox = await s.scalar(
            text(f"SELECT count(*) FROM {scratch_schema}.inbox WHERE consumer_group = :g"),
            {"g": group},
        )
    assert inbox == 2


async def test_a_transient_failure_is_retried_without_dlq(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    await publish(producer, fresh_topic, make_envelope("flaky"), make_envelope("after"))
    handler = Recorder(effects_table)
    handler.fail_labels["flaky"] = 2
    rt = runtime(
        kafka_settings,
        producer,
        sessions,
        scratch_schema,
        f"g-{uuid.uuid4().hex[:6]}",
        fresh_topic,
        handler,
    )
    await run_until(rt, lambda: rt.stats.processed >= 2)
    assert rt.stats.dead_lettered == 0
    assert await effect_labels(sessions, effects_table) == ["after", "flaky"]


async def test_rebalance_between_two_members_loses_nothing_and_doubles_nothing(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    group, handler = f"g-{uuid.uuid4().hex[:6]}", Recorder(effects_table)
    first = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    second = runtime(
        kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler
    )
    fed = 0

    async def feed(n: int) -> None:
        nonlocal fed
        for _ in range(n):
            await publish(
                producer, fresh_topic, make_envelope(f"m{fed:03d}", customer=f"c{fed % 7}")
            )
            fed += 1
            await asyncio.sleep(0.005)

    async def until(condition: object, what: str, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await condition():  # type: ignore[operator]
            assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    async def effects() -> int:
        return len(await effect_labels(sessions, effects_table))

    async def start(rt: ConsumerRuntime) -> asyncio.Task[None]:
        await rt.consumer.start()
        return asyncio.create_task(rt.run())

    first_task = await start(first)
    await feed(100)
    await until(lambda: _ge(effects(), 100), "first member alone")

    # a second member joins while messages flow: partitions are split between them
    second_task = await start(second)
    feeding = asyncio.create_task(feed(100))

    async def split() -> bool:
        a, b = first.consumer.assignment(), second.consumer.assignment()
        return bool(a) and bool(b) and len(a | b) == 3

    await until(split, "partitions split across both members")
    await feeding
    await until(lambda: _ge(effects(), 200), "both members")

    # the first leaves gracefully mid-stream: everything moves to the second
    feeding = asyncio.create_task(feed(100))
    first.stop()
    await first_task
    await first.consumer.stop()
    await feeding

    async def all_on_second() -> bool:
        return len(second.consumer.assignment()) == 3

    await until(all_on_second, "all partitions on the second member")
    await until(lambda: _ge(effects(), 300), "second member alone")
    second.stop()
    await second_task
    await second.consumer.stop()

    assert await effect_labels(sessions, effects_table) == [f"m{i:03d}" for i in range(300)]
    assert first.stats.processed >= 100 and second.stats.processed > 0
    assert first.stats.processed + second.stats.processed == 300


async def _ge(count: Awaitable[int], n: int) -> bool:
    return await count >= n


class SlowRecorder(Recorder):
    """Takes 30 ms per event and notes the transaction each effect was written in."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.transactions: list[int] = []

    async def __call__(self, session: AsyncSession, e: EventEnvelope, ctx: MessageContext) -> None:
        await asyncio.sleep(0.03)
        self.transactions.append(int(await session.scalar(text("SELECT pg_current_xact_id()"))))
        await super().__call__(session, e, ctx)


async def test_a_long_batch_commits_every_transaction_budget_and_applies_each_event_once(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """A consumer that has fallen behind must not hold one transaction open over its whole
    batch: relays publish only events older than the oldest open transaction in the cluster."""
    labels = [f"e{n:02d}" for n in range(12)]
    await publish(producer, fresh_topic, *(make_envelope(label) for label in labels))
    handler = SlowRecorder(effects_table)
    group = f"g-{uuid.uuid4().hex[:6]}"
    rt = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    rt.transaction_budget = 0.1  # about three events per transaction
    await run_until(rt, lambda: rt.stats.processed >= len(labels))

    assert await effect_labels(sessions, effects_table) == labels
    per_transaction = Counter(handler.transactions).values()
    assert len(per_transaction) >= 3 and max(per_transaction) <= 5, per_transaction
    assert rt.stats.batches < len(per_transaction)  # several transactions within one batch


class Reviewing(Recorder):
    """Records each event, then defers a per-customer review that writes one summary row: how
    many of the customer's effects it saw, and in which transaction. Customer ``bad``'s review
    fails."""

    def __init__(self, table: str, summaries: str) -> None:
        super().__init__(table)
        self.summaries = summaries

    async def __call__(self, session: AsyncSession, e: EventEnvelope, ctx: MessageContext) -> None:
        await session.execute(
            text(f"INSERT INTO {self.table} VALUES (:id, :label)"),
            {"id": e.event_id, "label": f"{e.customer_id}/{e.payload['label']}"},
        )
        customer = e.customer_id

        async def review(s: AsyncSession) -> None:
            if customer == "bad":
                raise ValueError("the review of bad fails")
            await s.execute(
                text(
                    f"""INSERT INTO {self.summaries}
                        SELECT :c, count(*), pg_current_xact_id()::text::bigint
                        FROM {self.table} WHERE label LIKE :c || '/%'"""
                ),
                {"c": customer},
            )

        await once_before_commit(session, customer, review)
        if e.payload["label"] == "refused":  # fails after deferring: the review must not run
            raise ValueError("handler refuses")


@pytest.fixture
async def summaries_table(scratch_schema: str, sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as s, s.begin():
        await s.execute(
            text(
                f"CREATE TABLE {scratch_schema}.summaries"
                " (customer text, effects bigint, transaction bigint)"
            )
        )
    return f"{scratch_schema}.summaries"


async def test_deferred_work_runs_once_per_customer_per_transaction_after_its_events(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    summaries_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """Twenty events of two customers: each customer is reviewed once per transaction its
    events were applied in, after them; a handler that fails after deferring leaves no review."""
    events = [make_envelope(f"e{n:02d}", customer=f"c{n % 2}") for n in range(20)]
    await publish(producer, fresh_topic, *events, make_envelope("refused", customer="c3"))
    group, handler = f"g-{uuid.uuid4().hex[:6]}", Reviewing(effects_table, summaries_table)
    rt = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    rt.transaction_budget = 30.0
    await run_until(rt, lambda: rt.stats.processed >= 20 and rt.stats.dead_lettered >= 1)

    async with sessions() as s:
        reviews = (
            await s.execute(text(f"SELECT * FROM {summaries_table} ORDER BY transaction"))
        ).all()
    assert {r.customer for r in reviews} == {"c0", "c1"}  # not c3: its handler failed
    per_customer = Counter((r.customer, r.transaction) for r in reviews)
    assert set(per_customer.values()) == {1}  # once per customer per transaction
    assert len(reviews) < 20 and rt.stats.deferred_runs == len(reviews)
    assert [r.effects for r in reviews if r.customer == "c0"][-1] == 10  # saw every event


async def test_a_failing_deferred_review_is_pinned_on_its_record_and_dead_lettered(
    scratch_schema: str,
    sessions: async_sessionmaker[AsyncSession],
    effects_table: str,
    summaries_table: str,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    """The batch's transaction rolls back and its records are applied one per transaction,
    where the review runs inside the handler's call: only the event whose review fails is
    retried and dead-lettered; the others are applied and reviewed."""
    events = [make_envelope("a", "c1"), make_envelope("b", "bad"), make_envelope("c", "c1")]
    await publish(producer, fresh_topic, *events)
    group, handler = f"g-{uuid.uuid4().hex[:6]}", Reviewing(effects_table, summaries_table)
    rt = runtime(kafka_settings, producer, sessions, scratch_schema, group, fresh_topic, handler)
    await run_until(rt, lambda: rt.stats.processed >= 2 and rt.stats.dead_lettered >= 1)

    assert rt.stats.deferred_failures == 1
    assert await effect_labels(sessions, effects_table) == ["c1/a", "c1/c"]
    [dead] = await read_topic(kafka_settings, dlq_topic(fresh_topic), expect=1)
    assert dead.value == events[1].to_json_bytes()
    assert header(dead.headers, "dlq.error.message") == "the review of bad fails"
    async with sessions() as s:
        last = await s.scalar(text(f"SELECT max(effects) FROM {summaries_table}"))
    assert last == 2
