"""Gapless, sequential invoice numbers per tenant and series (e.g. INV-2026).

The counter row is incremented inside the transaction that records InvoiceIssued. Its row lock
serialises concurrent issuers of one series, and an aborted transaction rolls the increment back
with everything else, so committed numbers have no gaps and no duplicates.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import checked_schema

NUMBER_DIGITS = 6


def series_for(prefix: str, issue_date: date) -> str:
    """The default series: one per prefix and calendar year, e.g. INV-2026."""
    return f"{prefix}-{issue_date.year}"


async def next_number(session: AsyncSession, schema: str, tenant_id: str, series: str) -> str:
    value = (
        await session.execute(
            text(
                f"""INSERT INTO {checked_schema(schema)}.number_series AS ns (tenant_id, series, last_value)
                    VALUES (:tenant, :series, 1)
                    ON CONFLICT (tenant_id, series) DO UPDATE SET last_value = ns.last_value + 1
                    RETURNING last_value"""
            ),
            {"tenant": tenant_id, "series": series},
        )
    ).scalar_one()
    return f"{series}-{int(value):0{NUMBER_DIGITS}d}"
