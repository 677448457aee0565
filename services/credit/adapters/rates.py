"""Exchange rates recorded per tenant; the latest one on or before a date is the one used.

Rows are never updated: recording a rate again (a correction) adds a row, and the newest
recording for a date wins, so what any past check used can still be read back.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.adapters import SCHEMA


async def record(
    session: AsyncSession,
    tenant: str,
    from_currency: str,
    to_currency: str,
    as_of: date,
    rate: Decimal,
    by: str,
) -> None:
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.exchange_rates
                    (tenant_id, from_currency, to_currency, as_of, rate, recorded_by)
                VALUES (:t, :f, :to, :d, :r, :by)"""
        ),
        {"t": tenant, "f": from_currency, "to": to_currency, "d": as_of, "r": rate, "by": by},
    )


async def latest(
    session: AsyncSession, tenant: str, from_currency: str, to_currency: str, on: date
) -> Decimal | None:
    if from_currency == to_currency:
        return Decimal(1)
    row = (
        await session.execute(
            text(
                f"""SELECT rate FROM {SCHEMA}.exchange_rates
                    WHERE tenant_id = :t AND from_currency = :f AND to_currency = :to AND as_of <= :on
                    ORDER BY as_of DESC, recorded_at DESC LIMIT 1"""
            ),
            {"t": tenant, "f": from_currency, "to": to_currency, "on": on},
        )
    ).first()
    return Decimal(row.rate) if row else None


async def listing(session: AsyncSession, tenant: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            f"""SELECT DISTINCT ON (from_currency, to_currency) from_currency, to_currency, as_of,
                       rate, recorded_by, recorded_at
                FROM {SCHEMA}.exchange_rates WHERE tenant_id = :t
                ORDER BY from_currency, to_currency, as_of DESC, recorded_at DESC"""
        ),
        {"t": tenant},
    )
    return [
        {
            "from": r.from_currency,
            "to": r.to_currency,
            "as_of": r.as_of.isoformat(),
            "rate": format(Decimal(r.rate).normalize(), "f"),
            "recorded_by": r.recorded_by,
        }
        for r in rows
    ]
