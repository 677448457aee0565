"""Consumer runtime: batched, de-duplicated, committed only after the database, with a DLQ.

For each batch from Kafka, one database transaction records `(consumer_group, event_id)` in the
inbox together with the handler's effects; Kafka offsets are committed only after that
transaction commits. A redelivered event finds its inbox row and changes nothing. A message whose
handler keeps failing is retried with backoff, then sent to `<topic>.dlq` with its origin and
error in headers, marked `dead_lettered` in the inbox, and the partition moves on.

Infrastructure failures (database or Kafka unreachable) are not the message's fault: the batch is
rolled back, the partitions are rewound to the first uncommitted offset and retried later.

Work that recomputes from state rather than applying one event (a customer's hold rules and risk
score) can be deferred with `once_before_commit`: it then runs once per key per transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import checked_schema, database_unavailable, savepoint
from shared.errors import ConcurrencyConflict
from shared.events.envelope import EventEnvelope
from shared.eventstore.store import AppendContext
from shared.messaging.kafka import Headers, Publisher, header, of_another_type
from shared.metrics import observe_applied
from shared.topics import dlq_topic
from shared.tracing import context_from_traceparent, current_traceparent, tracer

log = logging.getLogger(__name__)
_tracer = tracer(__name__)


@dataclass(frozen=True)
class MessageContext:
    topic: str
    partition: int
    offset: int
    consumer_group: str
    redriven: bool = False


Handler = Callable[[AsyncSession, EventEnvelope, MessageContext], Awaitable[None]]
Deferred = Callable[[AsyncSession], Awaitable[None]]
_DEFERRED = "ledgerline.consumer.deferred"  # session.info key: the handler's deferred work


async def once_before_commit(session: AsyncSession, key: Hashable, work: Deferred) -> None:
    """Run `work` once per `key` just before the consumer's transaction commits, not per event.

    For work that recomputes from the state the events leave behind: forty invoice events of one
    customer in a batch need its hold rules and risk score reviewed once, not forty times. The
    last registration for a key wins, so it must not capture state that a later event of the
    same transaction changes. Where nothing defers (a transaction of one record, a re-drive, a
    test calling the handler) the work runs at once, inside the handler's call.
    """
    staged: dict[Hashable, Deferred] | None = session.info.get(_DEFERRED)
    if staged is None:
        await work(session)
    else:
        staged[key] = work


def caused_by(envelope: EventEnvelope, actor: str, customer_id: str | None = None) -> AppendContext:
    """Context for events a handler appends because of `envelope`: same tenant and correlation,
    caused by it, inside the consumer's span so the trace carries on."""
    return AppendContext(
        tenant_id=envelope.tenant_id,
        actor=actor,
        customer_id=customer_id or envelope.customer_id,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.event_id,
        traceparent=current_traceparent(),
    )


class PoisonMessage(Exception):
    """The message can never be processed (unparseable); it goes to the DLQ at once."""


def decode_record(record: ConsumerRecord[bytes, bytes]) -> EventEnvelope:
    if record.value is None:
        raise PoisonMessage("empty message value")
    try:
        return EventEnvelope.from_json_bytes(record.value)
    except Exception as exc:
        raise PoisonMessage(f"not a valid event envelope: {exc}") from exc


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0  # of types the handler does not act on, told by the event_type header
    batches: int = 0
    infra_failures: int = 0
    conflicts: int = 0  # batches or records re-run in a new transaction
    deferred_runs: int = 0  # once_before_commit work run at a transaction's end
    deferred_failures: int = 0  # transactions re-applied record by record because of it
    last_error: str | None = None
    lag_by_partition: dict[str, int] = field(default_factory=dict)


class _InfrastructureFailure(Exception):
    pass


class Unprocessable(Exception):
    """A handler's refusal that retrying cannot cure (it waits for something else to change:
    an exchange rate loaded, an earlier event re-driven), so the event is dead-lettered at once
    instead of after the retries, and can be re-driven when the cause is fixed."""


class _StaleTransaction(Exception):
    """A handler met a concurrency conflict: only a new transaction can succeed."""


class _DeferredWorkFailed(Exception):
    """Work deferred to the end of a transaction failed; it cannot be pinned on one record, so
    the transaction's records are applied again one per transaction, where it runs at once."""

    def __init__(self, records: int) -> None:
        super().__init__(f"deferred work failed in a transaction of {records} records")
        self.records = records


class ConsumerRuntime:
    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        producer: Publisher,
        sessions: async_sessionmaker[AsyncSession],
        schema: str,
        group_id: str,
        handler: Handler,
        max_batch: int = 500,
        max_retries: int = 3,
        retry_backoff: float = 0.2,
        fetch_timeout_ms: int = 500,
        transaction_budget: float = 0.1,
        event_types: frozenset[str] | None = None,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.sessions = sessions
        self.schema = checked_schema(schema)
        self.group_id = group_id
        self.handler = handler
        self.max_batch = max_batch
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.fetch_timeout_ms = fetch_timeout_ms
        self.transaction_budget = transaction_budget
        # Records of other types are passed over unparsed: no savepoint, no inbox row, no
        # handler call (three statements each, for a delivery that could change nothing).
        self.event_types = event_types
        self.stats = ConsumerStats()
        self._batch_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        s = self.schema
        self._claim_sql = text(
            f"""INSERT INTO {s}.inbox (consumer_group, event_id, outcome, topic, kafka_partition, kafka_offset)
                VALUES (:group, :event_id, 'processed', :topic, :partition, :offset)
                ON CONFLICT (consumer_group, event_id) DO NOTHING
                RETURNING event_id"""
        )
        # The register of what this group gave up on (shared/audit/dlq.py works from it). A
        # batch retried after an infrastructure failure may dead-letter the same message twice;
        # the origin coordinates keep one register row, pointing at the first DLQ copy.
        self._register_sql = text(
            f"""INSERT INTO {s}.dead_letters (consumer_group, topic, kafka_partition,
                    kafka_offset, event_id, event_type, tenant_id, dlq_topic, dlq_partition,
                    dlq_offset, error_type, error_message, attempts)
                VALUES (:group, :topic, :partition, :offset, :event_id, :event_type, :tenant_id,
                    :dlq_topic, :dlq_partition, :dlq_offset, :error_type, :error_message,
                    :attempts)
                ON CONFLICT DO NOTHING"""
        )

    # ---- lifecycle -------------------------------------------------------------------------

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        runtime = self

        class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
                # Wait for the batch in flight to commit (DB, then offsets) before giving up
                # partitions, so the next owner starts exactly after what we finished.
                async with runtime._batch_lock:
                    log.info("group %s: partitions revoked %s", runtime.group_id, list(revoked))

            async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
                log.info("group %s: partitions assigned %s", runtime.group_id, list(assigned))

        return _Listener()

    def stop(self) -> None:
        """Graceful: the batch in flight finishes and commits, then the loop ends."""
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                batches = await self.consumer.getmany(
                    timeout_ms=self.fetch_timeout_ms, max_records=self.max_batch
                )
            except Exception as exc:  # the client reconnects by itself; keep the loop alive
                self.stats.infra_failures += 1
                self.stats.last_error = repr(exc)
                log.warning("group %s: fetch failed, retrying: %r", self.group_id, exc)
                await asyncio.sleep(1.0)
                continue
            records = [r for part in batches.values() for r in part]
            if not records:
                continue
            async with self._batch_lock:
                await self._process_until_done(records)

    async def _process_until_done(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        backoff = self.retry_backoff
        while True:
            try:
                await self.process_batch(records)
                return
            except _InfrastructureFailure as exc:
                self.stats.infra_failures += 1
                self.stats.last_error = repr(exc.__cause__ or exc)
                log.warning(
                    "group %s: infrastructure failure, retrying batch in %.1fs: %s",
                    self.group_id,
                    backoff,
                    self.stats.last_error,
                )
                if self._stopping.is_set():
                    self._rewind(records)
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _rewind(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        for tp, offset in first.items():
            if tp in self.consumer.assignment():
                self.consumer.seek(tp, offset)

    # ---- one batch ---------------------------------------------------------------------------

    async def process_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply a batch, then commit its offsets. Public for tests.

        A transaction commits once it has run `transaction_budget` seconds and the rest of the
        batch goes on in a new one: a consumer that has fallen behind fetches full batches, and
        one transaction over all of them stayed open for seconds, while every relay in the
        cluster publishes only events older than the oldest open transaction (EventStore.read_all):
        one busy consumer delayed every service's events by as much (2 s at p99).

        When a handler meets a concurrency conflict, retrying inside the same transaction cannot
        help (its transaction id stays older than the competing writer's, and it holds the rows
        the competitor waits for), so the transaction is rolled back, its first record is applied
        in transactions of its own, each attempt fresh, and the rest go on batched."""
        applied: list[datetime] = []  # when each applied event was recorded at its source
        pending = records
        while pending:
            try:
                done = await self._apply(
                    pending, applied, last_attempt=False, budget=self.transaction_budget
                )
            except _StaleTransaction:
                self.stats.conflicts += 1
                await self._apply_alone(pending[0], applied)
                done = 1
            except _DeferredWorkFailed as failed:
                self.stats.deferred_failures += 1
                done = failed.records
                for record in pending[:done]:
                    await self._apply_alone(record, applied)
            pending = pending[done:]
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, -1), r.offset + 1)
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:
            # The effects are committed and the inbox makes redelivery harmless: log and go on.
            log.warning(
                "group %s: offset commit failed (%s); redelivery will be de-duplicated",
                self.group_id,
                exc,
            )
        self.stats.batches += 1
        observe_applied(self.group_id, applied)  # now visible to readers of this service

    async def _apply(
        self,
        records: list[ConsumerRecord[bytes, bytes]],
        applied: list[datetime],
        last_attempt: bool,
        budget: float | None = None,
    ) -> int:
        """Apply `records` from the first in one transaction, until all are done or the
        transaction has run `budget` seconds; returns how many it applied."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = 0
        committed: list[datetime] = []
        deferred: dict[Hashable, Deferred] | None = {} if len(records) > 1 else None
        try:
            async with self.sessions() as session, session.begin():
                for record in records:
                    await self._process_one(session, record, committed, last_attempt, deferred)
                    done += 1
                    if budget is not None and loop.time() - started >= budget:
                        break
                if deferred:
                    await self._run_deferred(session, deferred, done)
        except (_InfrastructureFailure, _StaleTransaction, _DeferredWorkFailed):
            raise
        except Exception as exc:
            if database_unavailable(exc):
                raise _InfrastructureFailure(str(exc)) from exc
            raise
        applied.extend(committed)
        return done

    async def _run_deferred(
        self, session: AsyncSession, deferred: dict[Hashable, Deferred], records: int
    ) -> None:
        self.stats.deferred_runs += len(deferred)
        attributes: dict[str, str | int] = {
            "messaging.consumer.group.name": self.group_id,
            "ledgerline.deferred_keys": len(deferred),
        }
        with _tracer.start_as_current_span("deferred work", attributes=attributes):
            for work in deferred.values():
                try:
                    await work(session)
                except Exception as exc:
                    if database_unavailable(exc):
                        raise _InfrastructureFailure(str(exc)) from exc
                    if isinstance(exc, ConcurrencyConflict):
                        raise _StaleTransaction(str(exc)) from exc
                    log.warning("group %s: deferred work failed: %r", self.group_id, exc)
                    raise _DeferredWorkFailed(records) from exc

    async def _apply_alone(
        self, record: ConsumerRecord[bytes, bytes], applied: list[datetime]
    ) -> None:
        for attempt in range(1, self.max_retries + 2):
            try:
                await self._apply([record], applied, last_attempt=attempt > self.max_retries)
                return
            except _StaleTransaction:
                self.stats.conflicts += 1
                await asyncio.sleep(self.retry_backoff * 2 ** (attempt - 1) * random.random())

    async def _process_one(
        self,
        session: AsyncSession,
        record: ConsumerRecord[bytes, bytes],
        applied: list[datetime],
        last_attempt: bool,
        deferred: dict[Hashable, Deferred] | None = None,
    ) -> None:
        """Apply one record in a savepoint, with retries, else dead-letter it; the work it
        defers joins `deferred` only if its savepoint commits."""
        if self.event_types is not None and of_another_type(record.headers, self.event_types):
            self.stats.skipped += 1
            return
        ctx = MessageContext(record.topic, record.partition, record.offset, self.group_id)
        try:
            envelope = decode_record(record)
        except PoisonMessage as exc:
            await self._dead_letter(session, record, None, exc, attempts=1)
            return
        last_error: BaseException | None = None
        for attempt in range(1, self.max_retries + 2):
            try:
                with _tracer.start_as_current_span(
                    f"consume {record.topic}",
                    context=context_from_traceparent(header(record.headers, "traceparent")),
                    kind=trace.SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.consumer.group.name": self.group_id,
                        "messaging.destination.name": record.topic,
                        "ledgerline.event_id": str(envelope.event_id),
                        "ledgerline.event_type": envelope.event_type,
                    },
                ) as span:
                    async with savepoint(session):
                        claimed = (
                            await session.execute(
                                self._claim_sql,
                                {
                                    "group": self.group_id,
                                    "event_id": envelope.event_id,
                                    "topic": record.topic,
                                    "partition": record.partition,
                                    "offset": record.offset,
                                },
                            )
                        ).first()
                        if claimed is None:
                            span.set_attribute("ledgerline.duplicate", True)
                            self.stats.duplicates += 1
                            return
                        staged: dict[Hashable, Deferred] = {}
                        if deferred is not None:
                            session.info[_DEFERRED] = staged
                        try:
                            await self.handler(session, envelope, ctx)
                        finally:
                            session.info.pop(_DEFERRED, None)
                if deferred is not None:
                    deferred.update(staged)  # last registration wins, first place kept
                self.stats.processed += 1
                applied.append(envelope.recorded_at)
                return
            except Exception as exc:
                if database_unavailable(exc):
                    raise _InfrastructureFailure(str(exc)) from exc
                if isinstance(exc, ConcurrencyConflict) and not last_attempt:
                    raise _StaleTransaction(str(exc)) from exc
                if isinstance(exc, Unprocessable):
                    await self._dead_letter(session, record, envelope, exc, attempts=attempt)
                    return
                last_error = exc
                log.warning(
                    "group %s: %s at %s:%d:%d failed (attempt %d): %r",
                    self.group_id,
                    envelope.event_type,
                    record.topic,
                    record.partition,
                    record.offset,
                    attempt,
                    exc,
                )
                if attempt <= self.max_retries:
                    await asyncio.sleep(self.retry_backoff * 2 ** (attempt - 1))
        assert last_error is not None
        await self._dead_letter(
            session, record, envelope, last_error, attempts=self.max_retries + 1
        )

    async def _dead_letter(
        self,
        session: AsyncSession,
        record: ConsumerRecord[bytes, bytes],
        envelope: EventEnvelope | None,
        error: BaseException,
        *,
        attempts: int,
    ) -> None:
        headers: Headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq.")]
        headers += [
            ("dlq.origin.topic", record.topic.encode()),
            ("dlq.origin.partition", str(record.partition).encode()),
            ("dlq.origin.offset", str(record.offset).encode()),
            ("dlq.consumer_group", self.group_id.encode()),
            ("dlq.error.type", type(error).__name__.encode()),
            ("dlq.error.message", str(error)[:2000].encode()),
            ("dlq.error.trace", "".join(traceback.format_exception(error))[-4000:].encode()),
            ("dlq.attempts", str(attempts).encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        try:
            copy = await self.producer.send_and_wait(
                dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
            )
        except Exception as exc:
            raise _InfrastructureFailure(f"DLQ publish failed: {exc}") from exc
        await session.execute(
            self._register_sql,
            {
                "group": self.group_id,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "event_id": envelope.event_id if envelope else None,
                "event_type": envelope.event_type
                if envelope
                else header(record.headers, "event_type"),
                "tenant_id": envelope.tenant_id
                if envelope
                else header(record.headers, "tenant_id"),
                "dlq_topic": copy.topic,
                "dlq_partition": copy.partition,
                "dlq_offset": copy.offset,
                "error_type": type(error).__name__,
                "error_message": str(error)[:2000],
                "attempts": attempts,
            },
        )
        if envelope is not None:
            await session.execute(
                text(
                    f"""INSERT INTO {self.schema}.inbox
                            (consumer_group, event_id, outcome, topic, kafka_partition, kafka_offset)
                        VALUES (:group, :event_id, 'dead_lettered', :topic, :partition, :offset)
                        ON CONFLICT (consumer_group, event_id) DO UPDATE SET outcome = 'dead_lettered'"""
                ),
                {
                    "group": self.group_id,
                    "event_id": envelope.event_id,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
        self.stats.dead_lettered += 1
        log.error(
            "group %s: %s:%d:%d dead-lettered after %d attempts: %r",
            self.group_id,
            record.topic,
            record.partition,
            record.offset,
            attempts,
            error,
        )


async def apply_redriven(
    session: AsyncSession,
    schema: str,
    group: str,
    handler: Handler,
    record: ConsumerRecord[bytes, bytes],
) -> str:
    """Re-apply one DLQ message inside the caller's transaction, as the group would have.

    Idempotent: an event the group has processed since is left alone. Returns 'processed' or
    'already_processed'; raises PoisonMessage for an undecodable message and the handler's error
    when it still fails (the caller's transaction then rolls back).
    """
    s = checked_schema(schema)
    envelope = decode_record(record)
    origin_topic = header(record.headers, "dlq.origin.topic") or record.topic
    origin_partition = int(header(record.headers, "dlq.origin.partition") or record.partition)
    origin_offset = int(header(record.headers, "dlq.origin.offset") or record.offset)
    row = (
        await session.execute(
            text(
                f"""SELECT outcome FROM {s}.inbox
                    WHERE consumer_group = :group AND event_id = :event_id FOR UPDATE"""
            ),
            {"group": group, "event_id": envelope.event_id},
        )
    ).first()
    if row is not None and row.outcome == "processed":
        return "already_processed"
    ctx = MessageContext(origin_topic, origin_partition, origin_offset, group, redriven=True)
    with _tracer.start_as_current_span(
        f"redrive {origin_topic}",
        context=context_from_traceparent(header(record.headers, "traceparent")),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.consumer.group.name": group,
            "ledgerline.event_id": str(envelope.event_id),
            "ledgerline.event_type": envelope.event_type,
        },
    ):
        await handler(session, envelope, ctx)
    await session.execute(
        text(
            f"""INSERT INTO {s}.inbox
                    (consumer_group, event_id, outcome, topic, kafka_partition, kafka_offset)
                VALUES (:group, :event_id, 'processed', :topic, :partition, :offset)
                ON CONFLICT (consumer_group, event_id) DO UPDATE SET outcome = 'processed',
                    processed_at = now()"""
        ),
        {
            "group": group,
            "event_id": envelope.event_id,
            "topic": origin_topic,
            "partition": origin_partition,
            "offset": origin_offset,
        },
    )
    return "processed"


def dlq_headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    """The DLQ metadata of a record, for listing and inspection."""
    return {
        k: v.decode(errors="replace") for k, v in (record.headers or ()) if k.startswith("dlq.")
    }
