"""A BI tool connecting as `bi_reader` reads every projection table in the `reporting` schema,
including tables created later (as a rebuild does), and can neither write nor read the other
services' schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.projections.tables import PROJECTION_TABLES
from services.reporting.tests.conftest import Ledger
from shared.db import make_engine
from shared.settings import local_pg_address


@pytest.fixture
async def bi_engine() -> AsyncIterator[AsyncEngine]:
    engine = make_engine(
        f"postgresql+asyncpg://bi_reader:bi_reader@{local_pg_address()}",
        pool_size=1,
        application_name="bi-tool",
    )
    yield engine
    await engine.dispose()


async def test_bi_reader_reads_the_projection_tables_and_nothing_else(
    bi_engine: AsyncEngine, reporting_engine: AsyncEngine, ledger: Ledger, tenant: str
) -> None:
    _, issued = ledger.issue("c1", 12_345, date(2026, 1, 1), date(2026, 1, 31))
    await ledger.deliver(ledger.customer_event("c1", "Acme"), issued)
    async with bi_engine.connect() as conn:
        for table in PROJECTION_TABLES:
            await conn.execute(text(f"SELECT * FROM reporting.{table} LIMIT 1"))
        row = (
            await conn.execute(
                text(
                    """SELECT c.name, i.total_minor, o.due_date FROM invoices i
                       JOIN customers c USING (tenant_id, customer_id)
                       JOIN obligations o USING (tenant_id, invoice_id)
                       WHERE i.tenant_id = :t"""  # search_path is reporting for bi_reader
                ),
                {"t": tenant},
            )
        ).one()
        assert tuple(row) == ("Acme", 12_345, date(2026, 1, 31))
    for statement in (
        "INSERT INTO reporting.customers (tenant_id, customer_id, name, stream_version) "
        "VALUES ('x', 'y', 'z', 1)",
        "DELETE FROM reporting.invoices",
        "SELECT * FROM invoice.events LIMIT 1",
        "SELECT * FROM payments.events LIMIT 1",
        "CREATE TABLE reporting.mine (x int)",
    ):
        async with bi_engine.connect() as conn:
            with pytest.raises(DBAPIError):
                await conn.execute(text(statement))


async def test_tables_created_later_by_the_service_are_readable(
    bi_engine: AsyncEngine, reporting_engine: AsyncEngine
) -> None:
    """What a rebuild's swap relies on: the shadow tables reporting_svc creates get SELECT for
    bi_reader through the schema's default privileges."""
    async with reporting_engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS reporting.bi_probe"))
        await conn.execute(text("CREATE TABLE reporting.bi_probe (LIKE reporting.invoices)"))
    try:
        async with bi_engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM reporting.bi_probe")) == 0
    finally:
        async with reporting_engine.begin() as conn:
            await conn.execute(text("DROP TABLE reporting.bi_probe"))
