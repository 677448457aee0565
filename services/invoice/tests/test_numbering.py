"""Gapless numbering under many concurrent issuers and aborted transactions."""

from __future__ import annotations

import asyncio
import random
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.invoice.adapters.numbering import next_number, series_for

pytestmark = pytest.mark.integration


async def test_concurrent_issuers_with_aborts_leave_no_gaps_and_no_duplicates(
    invoice_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    series = series_for("INV", date(2026, 11, 24))
    rng = random.Random(42)
    committed: list[str] = []

    async def issuer(attempts: int) -> None:
        for _ in range(attempts):
            async with invoice_sessions() as session:
                await session.begin()
                number = await next_number(session, "invoice", tenant, series)
                await asyncio.sleep(rng.random() / 200)  # other work in the same transaction
                if rng.random() < 0.3:
                    await session.rollback()  # e.g. the append conflicted or the caller vanished
                else:
                    await session.commit()
                    committed.append(number)

    await asyncio.gather(*(issuer(15) for _ in range(12)))
    assert len(committed) > 100
    sequence = sorted(int(n.rsplit("-", 1)[1]) for n in committed)
    assert sequence == list(range(1, len(committed) + 1))  # 1..k, each exactly once
    assert all(n.startswith("INV-2026-") and len(n) == len("INV-2026-000001") for n in committed)


async def test_series_and_tenants_count_independently(
    invoice_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    async with invoice_sessions() as s, s.begin():
        a1 = await next_number(s, "invoice", tenant, "INV-2026")
        b1 = await next_number(s, "invoice", tenant, "INV-2027")
        a2 = await next_number(s, "invoice", tenant, "INV-2026")
        other = await next_number(s, "invoice", tenant + "x", "INV-2026")
    assert (a1, a2, b1, other) == (
        "INV-2026-000001",
        "INV-2026-000002",
        "INV-2027-000001",
        "INV-2026-000001",
    )
