"""Rebuild the projections from offset 0 into shadow tables, then swap them in atomically.

1. Shadow tables `<name>_rebuild` are created like the live ones (columns, keys, indexes).
2. Every partition of the reporting topics is read from its beginning to the end offsets seen
   at the start, and applied to the shadow tables by the live consumer's rules; then once more
   to the new end (most of what arrived meanwhile). `BatchProjector` applies them in memory and
   writes a batch at a time (it can: only the rebuild writes the shadow tables, which start
   empty); after a write it cannot explain, the rebuild goes on with the live `Projector`.
3. In one transaction: the rebuild gate is taken exclusively, so the live consumer's next writes
   wait (its writes in flight commit first); the shadow tables catch up to the end offsets of
   that moment, which covers everything the live tables hold; both sides are checksummed; the
   live tables are dropped and the shadow tables renamed into their place, indexes included.

Readers never see a half-built table: until the commit they read the old tables, after it the
new ones. The live consumer resumes where its own offsets say; events the rebuild already applied
are no-ops for the projector (per-stream versions), so nothing is applied twice.
"""

from __future__ import annotations

import gc
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.reporting.projections.batch import BatchProjector
from services.reporting.projections.projector import PROJECTED_TYPES, Projector, rebuild_gate_key
from services.reporting.projections.tables import PROJECTION_TABLES, Tables
from shared.db import make_sessionmaker, savepoint
from shared.events.envelope import EventEnvelope
from shared.messaging.kafka import make_reader, of_another_type
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (records read, records to read)


class RebuildError(RuntimeError):
    pass


@dataclass
class RebuildResult:
    records: int = 0
    applied: int = 0
    skipped: int = 0  # types the projection ignores, told by the record's event_type header
    undecodable: int = 0
    failed: int = 0
    live_checksums: dict[str, str] = field(default_factory=dict)
    rebuilt_checksums: dict[str, str] = field(default_factory=dict)
    swapped: bool = False
    seconds: float = 0.0

    @property
    def differences(self) -> list[str]:
        """Tables whose live rows were not what the events say (drift the swap repaired)."""
        return [
            name
            for name in PROJECTION_TABLES
            if self.live_checksums.get(name) != self.rebuilt_checksums.get(name)
        ]


async def checksums(session: AsyncSession, tables: Tables) -> dict[str, str]:
    """Row count and an order-independent digest of every row, per table."""
    result = {}
    for name in PROJECTION_TABLES:
        row = (
            await session.execute(
                text(
                    f"""SELECT count(*) AS n,
                               md5(COALESCE(string_agg(md5(r::text), '' ORDER BY md5(r::text)), ''))
                                   AS digest
                        FROM {tables.table(name)} r"""
                )
            )
        ).one()
        result[name] = f"{row.n}:{row.digest}"
    return result


class Rebuild:
    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        schema: str,
        topics: Sequence[str],
        *,
        batch_size: int = 2000,
        progress: Progress | None = None,
    ) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        self.kafka = kafka
        self.live = Tables(schema)
        self.shadow = Tables.shadow(schema)
        self.topics = list(topics)
        self.batch_size = batch_size
        self.progress = progress
        self.projector = Projector(self.shadow, gated=False)
        # Applies events in memory and writes each batch with a statement per table; dropped
        # for `projector` (one event at a time, reading the tables) if a batch's write fails.
        self.batched: BatchProjector | None = BatchProjector(self.shadow)
        self.result = RebuildResult()
        self._total = 0

    async def run(self, *, swap: bool = True) -> RebuildResult:
        started = time.monotonic()
        async with self.engine.connect() as guard:
            running = await guard.scalar(
                text("SELECT pg_try_advisory_lock(hashtext(:key))"),
                {"key": rebuild_gate_key(self.live.schema) + ".running"},
            )
            if not running:
                raise RebuildError("another rebuild of these projections is running")
            try:
                await self._create_shadow_tables()
                self.batched = BatchProjector(self.shadow)  # the tables are empty: so is it
                consumer = make_reader(self.kafka, "reporting-rebuild")
                await consumer.start()
                try:
                    await self._replay(consumer, swap)
                finally:
                    await consumer.stop()
                if not swap:
                    await self._drop_shadow_tables()
            except BaseException:
                await self._drop_shadow_tables()
                raise
            finally:
                self.batched = None  # its memory: as much as the tables' rows
                gc.unfreeze()
                await guard.execute(
                    text("SELECT pg_advisory_unlock(hashtext(:key))"),
                    {"key": rebuild_gate_key(self.live.schema) + ".running"},
                )
        self.result.seconds = time.monotonic() - started
        return self.result

    async def _create_shadow_tables(self) -> None:
        async with self.sessions() as session, session.begin():
            for name in PROJECTION_TABLES:
                await session.execute(text(f"DROP TABLE IF EXISTS {self.shadow.table(name)}"))
                await session.execute(
                    text(
                        f"CREATE TABLE {self.shadow.table(name)} "
                        f"(LIKE {self.live.table(name)} INCLUDING ALL)"
                    )
                )

    async def _drop_shadow_tables(self) -> None:
        async with self.sessions() as session, session.begin():
            for name in PROJECTION_TABLES:
                await session.execute(text(f"DROP TABLE IF EXISTS {self.shadow.table(name)}"))

    async def _replay(self, consumer: AIOKafkaConsumer, swap: bool) -> None:
        await consumer.topics()  # fetches metadata for every topic
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        missing = [t for t in self.topics if not consumer.partitions_for_topic(t)]
        if missing:
            raise RebuildError(f"topics not found: {', '.join(missing)}")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        for _ in range(2):  # to the end seen at the start, then to the end seen after that
            ends = await consumer.end_offsets(partitions)
            self._total = sum(ends[tp] - beginnings[tp] for tp in partitions)
            async with self.sessions() as session:
                await self._read_until(consumer, ends, session, commit_each_batch=True)
        async with self.sessions() as session, session.begin():
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": rebuild_gate_key(self.live.schema)},
            )
            ends = await consumer.end_offsets(partitions)
            self._total = sum(ends[tp] - beginnings[tp] for tp in partitions)
            await self._read_until(consumer, ends, session, commit_each_batch=False)
            self.result.live_checksums = await checksums(session, self.live)
            self.result.rebuilt_checksums = await checksums(session, self.shadow)
            if swap:
                await self._swap(session)
                self.result.swapped = True

    async def _read_until(
        self,
        consumer: AIOKafkaConsumer,
        ends: dict[TopicPartition, int],
        session: AsyncSession,
        *,
        commit_each_batch: bool,
    ) -> None:
        pending = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
        idle = 0
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=self.batch_size)
            records = [r for tp, rs in batches.items() for r in rs if r.offset < ends[tp]]
            for tp, rs in batches.items():
                if rs and rs[-1].offset >= ends[tp]:
                    consumer.seek(tp, ends[tp])  # the rest is read by the next pass
            if records:
                idle = 0
                if commit_each_batch:
                    async with session.begin():
                        await self._apply_batch(session, records)
                else:
                    await self._apply_batch(session, records)
                self.result.records += len(records)
                # The batched projector's memory only grows: keep the cyclic garbage collector
                # from walking it again and again (about a quarter of the time without this).
                gc.freeze()
                if self.progress is not None:
                    self.progress(self.result.records, max(self._total, self.result.records))
            else:
                idle += 1
                if idle > 30:
                    raise RebuildError(
                        "no records from Kafka for 30 s while the end is not reached"
                    )
            for tp in list(pending):
                position = await consumer.position(tp)
                if position >= ends[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
        consumer.resume(*consumer.assignment())

    async def _apply_batch(
        self, session: AsyncSession, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """The batch in one savepoint. An event that cannot be decoded is counted and skipped
        (the live consumer would have dead-lettered it); the others go through the batched
        projector: applied in memory, written with one statement per table. If that fails, the
        batch again with the per-event projector, event by event, and the rest of the rebuild
        with it too."""
        envelopes: list[tuple[ConsumerRecord[bytes, bytes], EventEnvelope]] = []
        for record in records:
            if of_another_type(record.headers, PROJECTED_TYPES):
                self.result.skipped += 1  # not even parsed: a third of the development topics
                continue
            try:
                # = EventEnvelope.from_json_bytes, but parsed by pydantic from the bytes (faster)
                raw = record.value or b""
                envelopes.append((record, EventEnvelope.model_validate_json(raw)))
            except Exception:
                self.result.undecodable += 1
        if self.batched is not None and await self._apply_batched(session, envelopes):
            return
        try:
            async with savepoint(session):
                for _, envelope in envelopes:
                    await self.projector.apply(session, envelope)
            self.result.applied += len(envelopes)
            return
        except Exception:
            log.info("rebuild: a batch failed; applying it event by event")
        for record, envelope in envelopes:
            try:
                async with savepoint(session):
                    await self.projector.apply(session, envelope)
                self.result.applied += 1
            except Exception as exc:
                self._failed(record, envelope, exc)

    async def _apply_batched(
        self,
        session: AsyncSession,
        envelopes: list[tuple[ConsumerRecord[bytes, bytes], EventEnvelope]],
    ) -> bool:
        """False (nothing counted, nothing written) if the batch must go the per-event way."""
        assert self.batched is not None
        decoded = []
        failed: list[tuple[ConsumerRecord[bytes, bytes], EventEnvelope, Exception]] = []
        for record, envelope in envelopes:
            try:
                decoded.append((envelope, BatchProjector.decode(envelope)))
            except Exception as exc:
                failed.append((record, envelope, exc))
        try:
            async with savepoint(session):
                for envelope, event in decoded:
                    if event is not None:
                        self.batched.apply(envelope, event)
                await self.batched.flush(session)
        except Exception:
            log.warning("rebuild: a batched write failed; going on event by event", exc_info=True)
            self.batched = None  # its memory is ahead of the tables now
            return False
        self.result.applied += len(decoded)
        for record, envelope, error in failed:
            self._failed(record, envelope, error)
        return True

    def _failed(
        self, record: ConsumerRecord[bytes, bytes], envelope: EventEnvelope, exc: Exception
    ) -> None:
        self.result.failed += 1
        log.warning(
            "rebuild: %s at %s:%d:%d failed: %r",
            envelope.event_type,
            record.topic,
            record.partition,
            record.offset,
            exc,
        )

    async def _swap(self, session: AsyncSession) -> None:
        schema = self.live.schema
        for name in PROJECTION_TABLES:
            live_indexes = await _indexes(session, schema, name)
            shadow_name = self.shadow.table(name).split(".", 1)[1]
            shadow_indexes = await _indexes(session, schema, shadow_name)
            await session.execute(text(f"DROP TABLE {self.live.table(name)}"))
            await session.execute(text(f"ALTER TABLE {self.shadow.table(name)} RENAME TO {name}"))
            for shape, index in shadow_indexes.items():
                wanted = live_indexes.get(shape)
                if wanted is not None and wanted != index:
                    await session.execute(
                        text(f'ALTER INDEX {schema}."{index}" RENAME TO "{wanted}"')
                    )


_INDEX_NAME = re.compile(r"INDEX \S+ ON \S+")


async def _indexes(session: AsyncSession, schema: str, table: str) -> dict[str, str]:
    """Index name by its definition with the names taken out, to pair live and shadow indexes."""
    rows = await session.execute(
        text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s AND tablename = :t"),
        {"s": schema, "t": table},
    )
    return {_INDEX_NAME.sub("INDEX ON", r.indexdef): r.indexname for r in rows}
