"""The aging report over a large book: company totals and one customer, as of today.

Builds a scratch copy of the reporting projection tables (`LIKE reporting.<table> INCLUDING
ALL`, so the same columns, keys and indexes) in its own schema, fills it with generated
invoices, some partly paid, some with a second instalment, some disputed, and times the same
report code the API runs. Drops the schema afterwards unless `--keep`.

    .venv/bin/python -m bench.aging --invoices 1000000 --customers 10000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.application import reads, reports
from services.reporting.application.reads import Scope
from services.reporting.domain.aging import Basis, open_portions
from services.reporting.projections.tables import PROJECTION_TABLES, Tables
from shared.contracts.fields import LAST_DAY
from shared.db import make_engine, make_sessionmaker

ADMIN_DSN = os.environ.get(
    "LEDGERLINE_ADMIN_DSN", "postgresql://postgres:ledgerline_admin@127.0.0.1:25432/ledgerline"
).replace("postgresql://", "postgresql+asyncpg://", 1)
TENANT = "bench-aging"
AS_OF = date(2026, 11, 24)


async def build(engine: AsyncEngine, schema: str, invoices: int, customers: int) -> float:
    """Fill the scratch tables; returns the seconds it took."""
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        for table in (*PROJECTION_TABLES, "tenant_settings", "fx_rates"):
            await conn.execute(
                text(f"CREATE TABLE {schema}.{table} (LIKE reporting.{table} INCLUDING ALL)")
            )
        params = {"t": TENANT, "n": invoices, "c": customers, "as_of": AS_OF}
        await conn.execute(
            text(
                f"""INSERT INTO {schema}.customers
                    SELECT :t, 'cust-' || c, 'Customer ' || c, 'EUR', 1
                    FROM generate_series(1, :c) c"""
            ),
            params,
        )
        # Invoice i: customer i % c, issued up to 200 days back, net 30, every 7th in USD.
        await conn.execute(
            text(
                f"""INSERT INTO {schema}.invoices
                    SELECT :t, md5('inv' || i)::uuid, 'cust-' || (i % :c),
                           'INV-' || i, CASE WHEN i % 7 = 0 THEN 'USD' ELSE 'EUR' END,
                           CAST(:as_of AS date) - (i % 200), CAST(:as_of AS date) - (i % 200) + 30,
                           10000 + (i % 997) * 100, 'open', NULL, NULL, 2
                    FROM generate_series(1, :n) i"""
            ),
            params,
        )
        # One instalment each; every 10th invoice has a second one, due 30 days later.
        await conn.execute(
            text(
                f"""INSERT INTO {schema}.obligations
                    SELECT i.tenant_id, i.invoice_id, 'installment-1', 'installment', 1,
                           i.customer_id, i.currency, i.issue_date, i.due_date,
                           CASE WHEN right(i.number, 1) = '0' THEN i.total_minor / 2
                                ELSE i.total_minor END
                    FROM {schema}.invoices i"""
            )
        )
        await conn.execute(
            text(
                f"""INSERT INTO {schema}.obligations
                    SELECT i.tenant_id, i.invoice_id, 'installment-2', 'installment', 2,
                           i.customer_id, i.currency, i.issue_date, i.due_date + 30,
                           i.total_minor - i.total_minor / 2
                    FROM {schema}.invoices i WHERE right(i.number, 1) = '0'"""
            )
        )
        # A third of the invoices are partly paid; one in fifty has a dispute open.
        await conn.execute(
            text(
                f"""INSERT INTO {schema}.settlements
                    SELECT i.tenant_id, md5('pay' || i.number)::uuid, 'payment', i.invoice_id,
                           i.customer_id, i.currency, i.issue_date + 10, i.total_minor / 3
                    FROM {schema}.invoices i WHERE hashtext(i.number) % 3 = 0"""
            )
        )
        await conn.execute(
            text(
                f"""INSERT INTO {schema}.disputes
                    SELECT i.tenant_id, md5('dis' || i.number)::uuid, i.invoice_id,
                           i.customer_id, i.currency, i.total_minor / 4, i.issue_date + 5,
                           NULL, NULL
                    FROM {schema}.invoices i WHERE hashtext(i.number) % 50 = 1"""
            )
        )
    await fill_open_items(engine, schema)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in PROJECTION_TABLES:
            await conn.execute(text(f"VACUUM ANALYZE {schema}.{table}"))
    return time.perf_counter() - started


async def fill_open_items(engine: AsyncEngine, schema: str) -> None:
    """What the projector keeps after each invoice event, computed at once: every invoice's
    open portions by the domain's own fold, their totals by date, and the tenant's horizon."""
    tables = Tables(schema)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        positions = await reads.positions(session, tables, Scope(TENANT), LAST_DAY)
    records = [
        (
            TENANT,
            uuid.UUID(p.invoice_id),
            n,
            p.customer_id,
            p.currency,
            p.issue_date,
            portion.due_date,
            portion.undisputed,
            portion.disputed,
        )
        for p in positions
        for n, portion in enumerate(open_portions(p))
    ]
    async with engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table("open_items", schema_name=schema, records=records)
        await conn.execute(
            text(
                f"""INSERT INTO {schema}.open_totals
                    SELECT tenant_id, currency, due_date, issue_date, SUM(undisputed_minor),
                           SUM(disputed_minor), COUNT(*) FILTER (WHERE seq = 0)
                    FROM {schema}.open_items GROUP BY 1, 2, 3, 4"""
            )
        )
        await conn.execute(
            text(f"INSERT INTO {schema}.aging_horizons VALUES (:t, :as_of, true)"),
            {"t": TENANT, "as_of": AS_OF},
        )


async def timed(
    engine: AsyncEngine, scope: Scope, tables: Tables, runs: int, **options: bool
) -> list[float]:
    sessions = make_sessionmaker(engine)
    times = []
    for _ in range(runs):
        async with sessions() as session:
            started = time.perf_counter()
            report = await reports.aging(
                session, tables, scope, AS_OF, Basis.DUE_DATE, (30, 60, 90), **options
            )
            times.append((time.perf_counter() - started) * 1000)
    assert report["totals"], "the report found nothing: the data did not load"
    return times


def summary(label: str, times: list[float]) -> None:
    print(
        f"{label:<34} median {statistics.median(times):8.1f} ms   "
        f"min {min(times):8.1f} ms   max {max(times):8.1f} ms   ({len(times)} runs)"
    )


async def main(
    invoices: int, customers: int, runs: int, keep: bool, schema: str | None, fold: bool
) -> None:
    engine = make_engine(ADMIN_DSN, pool_size=2, application_name="bench-aging")
    reuse = schema is not None
    schema = schema or f"bench_aging_{uuid.uuid4().hex[:8]}"
    try:
        if not reuse:
            seconds = await build(engine, schema, invoices, customers)
            print(f"built {invoices:,} invoices for {customers:,} customers in {seconds:.0f} s")
        tables, company, one = Tables(schema), Scope(TENANT), Scope(TENANT, customer_id="cust-42")
        summary("company totals", await timed(engine, company, tables, runs * 4, customers=False))
        summary("one customer", await timed(engine, one, tables, runs * 4))
        summary("company, every customer's line", await timed(engine, company, tables, runs))
        summary("one customer, fold", await timed(engine, one, tables, runs * 4, open_items=False))
        if fold:
            summary("company, fold", await timed(engine, company, tables, 1, open_items=False))
    finally:
        if not keep and not reuse:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        elif keep:
            print(f"kept schema {schema} (reuse with --schema {schema})")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the scratch schema")
    parser.add_argument("--schema", help="reuse a schema kept by an earlier --keep run")
    parser.add_argument("--fold", action="store_true", help="also time the company fold (slow)")
    args = parser.parse_args()
    asyncio.run(main(args.invoices, args.customers, args.runs, args.keep, args.schema, args.fold))
