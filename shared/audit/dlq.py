"""Operator tooling for dead letters: list, inspect, re-drive (idempotent), discard with a reason.

The consumer runtime publishes a failed message to `<topic>.dlq` and, in the same transaction
as the rest of its batch, registers it in the service's `dead_letters` table with where its
DLQ copy is. That register is what operators work from: Kafka keeps the message, the register
keeps its status and who did what about it. Nothing is deleted: a discarded dead letter stays,
with its reason, as the record of a decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from shared.consumer import Handler, PoisonMessage, apply_redriven
from shared.db import checked_schema
from shared.errors import NotFound, StateConflict, ValidationFailed
from shared.messaging.kafka import make_reader
from shared.settings import KafkaSettings

STATUSES = ("open", "redriven", "discarded")


@dataclass(frozen=True)
class DeadLetter:
    id: int
    consumer_group: str
    topic: str
    kafka_partition: int
    kafka_offset: int
    event_id: str | None
    event_type: str | None
    tenant_id: str | None
    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    error_type: str
    error_message: str
    attempts: int
    failed_at: datetime
    status: str
    redrive_attempts: int
    last_redrive_error: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None

    @classmethod
    def from_row(cls, row: Any) -> DeadLetter:
        values = dict(row._mapping)
        values["event_id"] = str(values["event_id"]) if values["event_id"] else None
        return cls(**values)


class RedriveFailed(Exception):
    """The message still fails; the dead letter stays open with the error recorded."""


_COLUMNS = ", ".join(DeadLetter.__dataclass_fields__)


async def list_dead_letters(
    conn: AsyncConnection | AsyncSession,
    schema: str,
    *,
    status: str | None = "open",
    group: str | None = None,
    limit: int = 1000,
    newest_first: bool = False,
) -> list[DeadLetter]:
    """Oldest first by default: the order to re-drive in (one customer's events stay in order)."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    rows = await conn.execute(
        text(
            f"""SELECT {_COLUMNS} FROM {checked_schema(schema)}.dead_letters
                WHERE (CAST(:status AS text) IS NULL OR status = :status)
                  AND (CAST(:group AS text) IS NULL OR consumer_group = :group)
                ORDER BY id {"DESC" if newest_first else ""} LIMIT :limit"""
        ),
        {"status": status, "group": group, "limit": limit},
    )
    return [DeadLetter.from_row(r) for r in rows]


async def get_dead_letter(
    conn: AsyncConnection | AsyncSession, schema: str, letter_id: int, *, lock: bool = False
) -> DeadLetter:
    row = (
        await conn.execute(
            text(
                f"""SELECT {_COLUMNS} FROM {checked_schema(schema)}.dead_letters
                    WHERE id = :id {"FOR UPDATE" if lock else ""}"""
            ),
            {"id": letter_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"no dead letter {letter_id} in {schema}", {"id": letter_id})
    return DeadLetter.from_row(row)


async def fetch_message(
    kafka: KafkaSettings, letter: DeadLetter, wait_seconds: float = 15.0
) -> ConsumerRecord[bytes, bytes]:
    """The DLQ copy of a dead letter (or, failing that, the original on its topic)."""
    for topic, partition, offset in (
        (letter.dlq_topic, letter.dlq_partition, letter.dlq_offset),
        (letter.topic, letter.kafka_partition, letter.kafka_offset),
    ):
        record = await _read_at(kafka, topic, partition, offset, wait_seconds)
        if record is not None:
            return record
    raise NotFound(
        f"dead letter {letter.id}: message gone from {letter.dlq_topic} and {letter.topic}",
        {"id": letter.id},
    )


async def _read_at(
    kafka: KafkaSettings, topic: str, partition: int, offset: int, wait_seconds: float
) -> ConsumerRecord[bytes, bytes] | None:
    consumer = make_reader(kafka, "dlq-tool")
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            for record in batch.get(tp, []):
                return record if record.offset == offset else None
        return None
    finally:
        await consumer.stop()


async def redrive(
    sessions: async_sessionmaker[AsyncSession],
    schema: str,
    letter_id: int,
    *,
    handlers: Mapping[str, Handler],
    kafka: KafkaSettings,
    actor: str,
) -> str:
    """Apply a dead letter again with its group's handler; marks it re-driven when that worked.

    Returns 'processed', 'already_processed' (the group applied the event since), or
    'already_redriven' / 'already_discarded' for a dead letter an operator handled before: running
    the same re-drive twice changes nothing the second time.
    """
    async with sessions() as session:
        letter = await get_dead_letter(session, schema, letter_id)
    if letter.status != "open":
        return f"already_{letter.status}"
    handler = handlers.get(letter.consumer_group)
    if handler is None:
        raise ValidationFailed(f"no consumer group {letter.consumer_group!r} in this service")
    record = await fetch_message(kafka, letter)
    try:
        async with sessions() as session, session.begin():
            locked = await get_dead_letter(session, schema, letter_id, lock=True)
            if locked.status != "open":
                return f"already_{locked.status}"
            outcome = await apply_redriven(session, schema, letter.consumer_group, handler, record)
            await _resolve(session, schema, letter_id, "redriven", actor, outcome)
            return outcome
    except PoisonMessage as exc:
        await _record_failure(sessions, schema, letter_id, f"cannot be decoded: {exc}")
        raise RedriveFailed(f"dead letter {letter_id} cannot be decoded; discard it") from exc
    except Exception as exc:
        await _record_failure(sessions, schema, letter_id, f"{type(exc).__name__}: {exc}")
        raise RedriveFailed(f"dead letter {letter_id} failed again: {exc!r}") from exc


async def discard(
    sessions: async_sessionmaker[AsyncSession],
    schema: str,
    letter_id: int,
    *,
    reason: str,
    actor: str,
) -> DeadLetter:
    """Close a dead letter without applying it; the reason and the operator are kept."""
    reason = reason.strip()
    if not 3 <= len(reason) <= 1000:
        raise ValidationFailed("a discard needs a reason of 3 to 1000 characters")
    async with sessions() as session, session.begin():
        letter = await get_dead_letter(session, schema, letter_id, lock=True)
        if letter.status != "open":
            raise StateConflict(
                f"dead letter {letter_id} is already {letter.status}",
                {"id": letter_id, "status": letter.status},
            )
        await _resolve(session, schema, letter_id, "discarded", actor, reason)
        return await get_dead_letter(session, schema, letter_id)


async def _resolve(
    session: AsyncSession, schema: str, letter_id: int, status: str, actor: str, resolution: str
) -> None:
    await session.execute(
        text(
            f"""UPDATE {checked_schema(schema)}.dead_letters
                SET status = :status, resolved_at = now(), resolved_by = :actor,
                    resolution = :resolution
                WHERE id = :id"""
        ),
        {"id": letter_id, "status": status, "actor": actor, "resolution": resolution},
    )


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession], schema: str, letter_id: int, error: str
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                f"""UPDATE {checked_schema(schema)}.dead_letters
                    SET redrive_attempts = redrive_attempts + 1, last_redrive_error = :error
                    WHERE id = :id"""
            ),
            {"id": letter_id, "error": error[:2000]},
        )
