"""Rebuild the projections from offset 0 into shadow tables, then swap them in atomically.

1. Shadow tables `<name>_rebuild` are created like the live ones (columns, keys, indexes; the
   indexes no write needs are built after the load).
2. Every partition of the reporting topics is read from its beginning to the end offsets seen
   at the start, and applied to the shadow tables by the live consumer's rules; then once more
   to the new end (most of what arrived meanwhile). Records are decoded in one msgspec pass
   (`shared.events.replay`). `BatchProjector` applies them in memory and writes a batch at a
   time (it can: only the rebuild writes the shadow tables, which start empty), each batch's
   statements sent while the next batch is applied; after a write it cannot explain, the
   rebuild goes on with the live `Projector`.
3. In one transaction: the rebuild gate is taken exclusively, so the live consumer's next writes
   wait (its writes in flight commit first); the shadow tables catch up to the end offsets of
   that moment, which covers everything the live tables hold; both sides are checksummed; the
   live tables are dropped and the shadow tables renamed into their place, indexes included.

Readers never see a half-built table: until the commit they read the old tables, after it the
new ones. The live consumer resumes where its own offsets say; events the rebuild already applied
are no-ops for the projector (per-stream versions), so nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.reporting.projections.batch import BatchProjector, Recorded, Write, write
from services.reporting.projections.projector import PROJECTED_TYPES, Projector, rebuild_gate_key
from services.reporting.projections.tables import PROJECTION_TABLES, Tables
from shared.db import make_sessionmaker, savepoint
from shared.events.envelope import EventEnvelope
from shared.events.replay import ReplayDecoder, ReplayEnvelope
from shared.heap import thaw
from shared.messaging.kafka import header, make_reader
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (records read, records to read)


class RebuildError(RuntimeError):
    pass


Decoded = tuple[ConsumerRecord[bytes, bytes], Recorded]
_YIELD_EVERY = 25  # events applied between two chances for the write in flight to go on


@dataclass
class _Batch:
    decoded: list[Decoded]
    failed: list[tuple[ConsumerRecord[bytes, bytes], Recorded, Exception]]  # payloads refused
    writes: list[Write]


@dataclass
class _Writing:
    batch: _Batch
    task: asyncio.Task[None]


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
        self.decoder = ReplayDecoder(PROJECTED_TYPES)
        self._deferred_indexes: list[str] = []  # CREATE INDEX statements for the shadow tables
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
                thaw()  # what _replay froze, the start-up heap kept frozen
                await guard.execute(
                    text("SELECT pg_advisory_unlock(hashtext(:key))"),
                    {"key": rebuild_gate_key(self.live.schema) + ".running"},
                )
        self.result.seconds = time.monotonic() - started
        return self.result

    async def _create_shadow_tables(self) -> None:
        """Like the live tables, but the indexes no write needs (not unique: no `ON CONFLICT`
        uses them) are built after the load, once, instead of entry by entry."""
        self._deferred_indexes = []
        async with self.sessions() as session, session.begin():
            for name in PROJECTION_TABLES:
                await session.execute(text(f"DROP TABLE IF EXISTS {self.shadow.table(name)}"))
                await session.execute(
                    text(
                        f"CREATE TABLE {self.shadow.table(name)} "
                        f"(LIKE {self.live.table(name)} INCLUDING ALL)"
                    )
                )
                schema, shadow_name = self.shadow.schema, self.shadow.unqualified(name)
                for index, definition in (
                    await _index_definitions(session, schema, shadow_name)
                ).items():
                    if not definition.startswith("CREATE UNIQUE INDEX"):
                        await session.execute(text(f'DROP INDEX {schema}."{index}"'))
                        self._deferred_indexes.append(definition)

    async def _build_deferred_indexes(self, session: AsyncSession) -> None:
        """Before the rebuild reads the shadow tables: the per-event projector and the swap."""
        while self._deferred_indexes:
            await session.execute(text(self._deferred_indexes.pop()))

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
            await self._build_deferred_indexes(session)  # not under the gate: it takes a while
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
        writing: _Writing | None = None  # the batch Postgres writes while the next is applied
        try:
            while pending:
                batches = await consumer.getmany(
                    *pending, timeout_ms=1000, max_records=self.batch_size
                )
                records = [r for tp, rs in batches.items() for r in rs if r.offset < ends[tp]]
                for tp, rs in batches.items():
                    if rs and rs[-1].offset >= ends[tp]:
                        consumer.seek(tp, ends[tp])  # the rest is read by the next pass
                if records:
                    idle = 0
                    writing = await self._apply_batch(
                        session, self._decode(records), writing, commit_each_batch
                    )
                    self.result.records += len(records)
                    # The batched projector's memory only grows: keep the cyclic garbage
                    # collector from walking it again and again (a quarter of the time without).
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
            await self._written(session, writing, commit_each_batch)
            writing = None
        finally:
            if writing is not None:
                writing.task.cancel()
                await asyncio.gather(writing.task, return_exceptions=True)
        consumer.resume(*consumer.assignment())

    def _decode(self, records: list[ConsumerRecord[bytes, bytes]]) -> list[Decoded]:
        """The records of projected types, decoded; the others counted as skipped or, if their
        envelope cannot be read, undecodable (the live consumer would have dead-lettered them)."""
        decoded: list[Decoded] = []
        for record in records:
            event_type = header(record.headers, "event_type")
            if event_type is not None and event_type not in PROJECTED_TYPES:
                self.result.skipped += 1  # not even parsed: a third of the development topics
                continue
            raw = record.value or b""
            # One msgspec pass for envelope and payload; pydantic for whatever it refuses
            envelope: Recorded | None = self.decoder.decode(event_type, raw)
            if envelope is None:
                try:
                    envelope = EventEnvelope.model_validate_json(raw)
                except Exception:
                    self.result.undecodable += 1
                    continue
            decoded.append((record, envelope))
        return decoded

    async def _apply_batch(
        self,
        session: AsyncSession,
        decoded: list[Decoded],
        writing: _Writing | None,
        commit: bool,
    ) -> _Writing | None:
        """Apply the batch in memory and start writing it once the previous write is done: the
        event loop sends the write's statements while this process applies the next batch, so
        Postgres and this process work at the same time. If a write fails, its batch and this
        one go the per-event way (`Projector`, reading the tables), and so does the rest."""
        batch = await self._apply_in_memory(decoded) if self.batched is not None else None
        await self._written(session, writing, commit)
        if batch is None or self.batched is None:
            await self._apply_each(session, decoded, commit)
            return None
        return _Writing(batch, asyncio.create_task(self._write(session, batch.writes, commit)))

    async def _apply_in_memory(self, decoded: list[Decoded]) -> _Batch | None:
        """None (the projector dropped) if applying failed: its memory is no longer the tables'."""
        assert self.batched is not None
        failed: list[tuple[ConsumerRecord[bytes, bytes], Recorded, Exception]] = []
        try:
            for n, (record, envelope) in enumerate(decoded):
                if isinstance(envelope, ReplayEnvelope):
                    event: Any = envelope.payload
                else:
                    try:
                        event = BatchProjector.decode(envelope)
                    except Exception as exc:
                        failed.append((record, envelope, exc))
                        continue
                if event is not None:
                    self.batched.apply(envelope, event)
                if n % _YIELD_EVERY == _YIELD_EVERY - 1:
                    await asyncio.sleep(0)  # the write in flight sends its next statement
            return _Batch(decoded, failed, self.batched.take_writes())
        except Exception:
            log.warning("rebuild: a batch failed in memory; going on event by event", exc_info=True)
            self.batched = None
            return None

    async def _write(self, session: AsyncSession, writes: list[Write], commit: bool) -> None:
        if not commit:
            async with savepoint(session):
                await write(session, writes)
            return
        async with session.begin():
            # Shadow tables: a crash loses the rebuild anyway, and the swap commits durably
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            await write(session, writes)

    async def _written(self, session: AsyncSession, writing: _Writing | None, commit: bool) -> None:
        """Wait for the write in flight; count its batch, or apply it the per-event way."""
        if writing is None:
            return
        try:
            await writing.task
        except Exception:
            log.warning("rebuild: a batched write failed; going on event by event", exc_info=True)
            self.batched = None  # its memory is ahead of the tables now
            await self._apply_each(session, writing.batch.decoded, commit)
            return
        self.result.applied += len(writing.batch.decoded) - len(writing.batch.failed)
        for record, envelope, error in writing.batch.failed:
            self._failed(record, envelope, error)

    async def _apply_each(
        self, session: AsyncSession, decoded: list[Decoded], commit: bool
    ) -> None:
        """The batch with the per-event projector: in one savepoint, or event by event if that
        fails, each failure counted."""
        envelopes: list[tuple[ConsumerRecord[bytes, bytes], EventEnvelope]] = []
        for record, envelope in decoded:
            try:
                envelopes.append((record, _validated(record, envelope)))
            except Exception:
                self.result.undecodable += 1
        if commit:
            async with session.begin():
                await self._build_deferred_indexes(session)  # its reads need them
                await self._project_each(session, envelopes)
        else:
            await self._project_each(session, envelopes)

    async def _project_each(
        self,
        session: AsyncSession,
        envelopes: list[tuple[ConsumerRecord[bytes, bytes], EventEnvelope]],
    ) -> None:
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

    def _failed(
        self, record: ConsumerRecord[bytes, bytes], envelope: Recorded, exc: Exception
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
            shadow_indexes = await _indexes(session, schema, self.shadow.unqualified(name))
            await session.execute(text(f"DROP TABLE {self.live.table(name)}"))
            await session.execute(text(f"ALTER TABLE {self.shadow.table(name)} RENAME TO {name}"))
            for shape, index in shadow_indexes.items():
                wanted = live_indexes.get(shape)
                if wanted is not None and wanted != index:
                    await session.execute(
                        text(f'ALTER INDEX {schema}."{index}" RENAME TO "{wanted}"')
                    )


def _validated(record: ConsumerRecord[bytes, bytes], envelope: Recorded) -> EventEnvelope:
    """The pydantic envelope the per-event projector takes (parsed again: the rare way)."""
    if isinstance(envelope, EventEnvelope):
        return envelope
    return EventEnvelope.model_validate_json(record.value or b"")


_INDEX_NAME = re.compile(r"INDEX \S+ ON \S+")


async def _index_definitions(session: AsyncSession, schema: str, table: str) -> dict[str, str]:
    """Each index's `CREATE INDEX` statement by its name."""
    rows = await session.execute(
        text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s AND tablename = :t"),
        {"s": schema, "t": table},
    )
    return {r.indexname: r.indexdef for r in rows}


async def _indexes(session: AsyncSession, schema: str, table: str) -> dict[str, str]:
    """Index name by its definition with the names taken out, to pair live and shadow indexes."""
    definitions = await _index_definitions(session, schema, table)
    return {_INDEX_NAME.sub("INDEX ON", d): name for name, d in definitions.items()}
