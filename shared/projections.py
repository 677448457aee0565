"""Projection checkpoints, written in the same transaction as the projection's rows.

A projection that crashes after committing rows but before committing Kafka offsets resumes from
its own checkpoint, not from Kafka's, so no event is applied twice or skipped.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.db import checked_schema


async def save_checkpoint(
    session: AsyncSession | AsyncConnection,
    schema: str,
    projection: str,
    topic: str,
    partition: int,
    next_offset: int,
) -> None:
    """Record that everything before `next_offset` on (topic, partition) is in the projection."""
    await session.execute(
        text(
            f"""INSERT INTO {checked_schema(schema)}.projection_checkpoints
                    (projection, topic, kafka_partition, next_offset)
                VALUES (:projection, :topic, :partition, :next_offset)
                ON CONFLICT (projection, topic, kafka_partition) DO UPDATE
                SET next_offset = GREATEST(projection_checkpoints.next_offset, EXCLUDED.next_offset),
                    updated_at = now()"""
        ),
        {
            "projection": projection,
            "topic": topic,
            "partition": partition,
            "next_offset": next_offset,
        },
    )


async def load_checkpoints(
    session: AsyncSession | AsyncConnection, schema: str, projection: str
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> next offset to read, for seeking on start-up."""
    rows = await session.execute(
        text(
            f"""SELECT topic, kafka_partition, next_offset
                FROM {checked_schema(schema)}.projection_checkpoints WHERE projection = :projection"""
        ),
        {"projection": projection},
    )
    return {(r.topic, r.kafka_partition): r.next_offset for r in rows}


async def reset_checkpoints(
    session: AsyncSession | AsyncConnection, schema: str, projection: str
) -> None:
    """For a rebuild from offset 0 (the projection's rows are rebuilt in shadow tables)."""
    await session.execute(
        text(f"DELETE FROM {checked_schema(schema)}.projection_checkpoints WHERE projection = :p"),
        {"p": projection},
    )
