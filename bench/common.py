"""What the benchmarks share: the admin connection and scratch schemas they drop afterwards."""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.eventstore.schema import audit_ddl, kernel_ddl

ADMIN_DSN = os.environ.get(
    "LEDGERLINE_ADMIN_DSN", "postgresql://postgres:ledgerline_admin@127.0.0.1:25432/ledgerline"
).replace("postgresql://", "postgresql+asyncpg://", 1)


@asynccontextmanager
async def scratch_schema(
    engine: AsyncEngine, prefix: str, *, kernel: bool = True, keep: bool = False
) -> AsyncIterator[str]:
    """A new schema (with the event store's tables unless `kernel=False`), dropped on exit."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        if kernel:
            for statement in kernel_ddl(schema) + audit_ddl(schema):
                await conn.execute(text(statement))
    try:
        yield schema
    finally:
        if keep:
            print(f"kept schema {schema}")
        else:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method, as latency reports use."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def latency_line(label: str, millis: Sequence[float]) -> str:
    return (
        f"{label}: p50 {percentile(millis, 50):.1f} ms, p95 {percentile(millis, 95):.1f} ms, "
        f"p99 {percentile(millis, 99):.1f} ms, max {max(millis):.1f} ms, "
        f"mean {statistics.fmean(millis):.1f} ms ({len(millis)} samples)"
    )
