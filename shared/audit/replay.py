"""Reading events back for audit: from a service's event store or from Kafka, filtered.

The event store is the source of truth and answers filters from its indexes; Kafka shows what
was actually published (and what other services consumed). Both yield the same envelope.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.db import checked_schema
from shared.events.envelope import EventEnvelope
from shared.eventstore.store import EVENT_COLUMNS, row_to_envelope
from shared.messaging.kafka import make_reader
from shared.settings import KafkaSettings
from shared.web.spreadsheet import safe_cell


@dataclass(frozen=True)
class EventFilter:
    """Which events: all given conditions hold. Times are `recorded_at` (when the service knew),
    `since` inclusive, `until` exclusive; `as_of` is inclusive (the state at that instant)."""

    tenant_id: str | None = None
    stream_id: str | None = None
    customer_id: str | None = None
    event_types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None

    def matches(self, e: EventEnvelope) -> bool:
        return (
            (self.tenant_id is None or e.tenant_id == self.tenant_id)
            and (self.stream_id is None or e.stream_id == self.stream_id)
            and (self.customer_id is None or e.customer_id == self.customer_id)
            and (not self.event_types or e.event_type in self.event_types)
            and (self.since is None or e.recorded_at >= self.since)
            and (self.until is None or e.recorded_at < self.until)
            and (self.as_of is None or e.recorded_at <= self.as_of)
        )

    def sql(self) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "stream_id": self.stream_id,
            "customer_id": self.customer_id,
            "types": list(self.event_types) or None,
            "since": self.since,
            "until": self.until,
            "as_of": self.as_of,
        }
        where = """(CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id)
            AND (CAST(:stream_id AS text) IS NULL OR stream_id = :stream_id)
            AND (CAST(:customer_id AS text) IS NULL OR customer_id = :customer_id)
            AND (CAST(:types AS text[]) IS NULL OR event_type = ANY(CAST(:types AS text[])))
            AND (CAST(:since AS timestamptz) IS NULL OR recorded_at >= :since)
            AND (CAST(:until AS timestamptz) IS NULL OR recorded_at < :until)
            AND (CAST(:as_of AS timestamptz) IS NULL OR recorded_at <= :as_of)"""
        return where, params


async def count_events(conn: AsyncConnection, schema: str, f: EventFilter) -> int:
    where, params = f.sql()
    n = await conn.scalar(
        text(f"SELECT count(*) FROM {checked_schema(schema)}.events WHERE {where}"), params
    )
    return int(n or 0)


async def events_page(
    conn: AsyncConnection | AsyncSession, schema: str, f: EventFilter, after: int, limit: int
) -> tuple[list[EventEnvelope], int | None]:
    """Up to `limit` matching events after global position `after`, and the position to pass
    next (None at the end)."""
    where, params = f.sql()
    rows = (
        await conn.execute(
            text(
                f"""SELECT {EVENT_COLUMNS} FROM {checked_schema(schema)}.events
                    WHERE {where} AND global_position > :after
                    ORDER BY global_position LIMIT :limit"""
            ),
            {**params, "after": after, "limit": limit + 1},
        )
    ).all()
    next_after = rows[limit - 1].global_position if len(rows) > limit else None
    return [row_to_envelope(r) for r in rows[:limit]], next_after


async def store_events(
    conn: AsyncConnection, schema: str, f: EventFilter, chunk: int = 1000
) -> AsyncIterator[EventEnvelope]:
    """Matching events in the order the service stored them (global position), in chunks."""
    after: int | None = 0
    while after is not None:
        events, after = await events_page(conn, schema, f, after, chunk)
        for envelope in events:
            yield envelope


@dataclass(frozen=True)
class KafkaEvent:
    topic: str
    partition: int
    offset: int
    envelope: EventEnvelope | None  # None: the message is not an event envelope
    raw: bytes | None


async def kafka_events(
    kafka: KafkaSettings,
    topics: Sequence[str],
    on_total: Callable[[int], None] | None = None,
    on_read: Callable[[int], None] | None = None,
) -> AsyncIterator[KafkaEvent]:
    """Every message of `topics` from the beginning up to their end when the read started.

    No consumer group: reading for audit neither moves nor depends on any service's offsets.
    """
    consumer = make_reader(kafka, "replay")
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        remaining = {tp: end[tp] for tp in partitions if end[tp] > start[tp]}
        if on_total:
            on_total(sum(end[tp] - start[tp] for tp in partitions))
        for tp in partitions:
            consumer.seek(tp, start[tp])
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=1000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset >= remaining.get(tp, -1):
                        continue
                    try:
                        envelope = EventEnvelope.from_json_bytes(r.value) if r.value else None
                    except ValueError:
                        envelope = None
                    yield KafkaEvent(r.topic, r.partition, r.offset, envelope, r.value)
                if on_read:
                    on_read(len(records))
                if records and records[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
    finally:
        await consumer.stop()


CSV_COLUMNS = (
    "service",
    "recorded_at",
    "occurred_at",
    "event_type",
    "schema_version",
    "stream_id",
    "stream_version",
    "tenant_id",
    "customer_id",
    "actor",
    "correlation_id",
    "causation_id",
    "event_id",
    "payload",
)


def event_record(service: str, e: EventEnvelope, **extra: Any) -> dict[str, Any]:
    """One output record: the envelope as stored, plus where it came from."""
    return {"service": service, **e.model_dump(mode="json", exclude={"global_position"}), **extra}


class CsvWriter:
    """CSV for spreadsheets: the payload as one JSON cell, text cells made formula-safe."""

    def __init__(self, out: io.TextIOBase | Any) -> None:
        self._writer = csv.writer(out)
        self._writer.writerow(CSV_COLUMNS)

    def write(self, record: dict[str, Any]) -> None:
        row = []
        for column in CSV_COLUMNS:
            value = record.get(column)
            if column == "payload":
                value = json.dumps(value, sort_keys=True, separators=(",", ":"))
            row.append("" if value is None else safe_cell(str(value)))
        self._writer.writerow(row)
