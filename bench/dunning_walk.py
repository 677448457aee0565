"""The dunning scheduler's walk over every due customer of every tenant.

    .venv/bin/python -m bench.dunning_walk [--tenants 200] [--customers 10]

Gives each of the bench's customers an invoice a few days overdue (through the dunning service's
own invoice consumer, one delivery per event), then times `run_all` as the scheduler calls it
(every tenant): the first run of the day, the next run the same day (the service's interval, or
a restart), and a run after 1 % of the customers got a new invoice. Other tenants already in the
database are walked too, as in the service; their count is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import ADMIN_DSN
from services.dunning.application import scheduler
from services.dunning.tests.conftest import customer as registration
from services.dunning.tests.conftest import deliver, issued
from shared.db import make_engine, make_sessionmaker


async def timed_run(sessions: async_sessionmaker[AsyncSession], today: date) -> tuple[int, float]:
    started = time.perf_counter()
    ran = await scheduler.run_all(sessions, today)
    return ran, time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    engine = make_engine(ADMIN_DSN, pool_size=5, application_name="bench-dunning")
    sessions = make_sessionmaker(engine)
    today = datetime.now(UTC).date()
    run = uuid.uuid4().hex[:6]
    customers = [
        (f"bdn{run}t{t:04d}", f"c{c:03d}")
        for t in range(args.tenants)
        for c in range(args.customers)
    ]
    async with sessions() as session:
        before = len(await scheduler.due_customers(session, today))
    started = time.perf_counter()
    for tenant, customer in customers:
        await deliver(sessions, tenant, registration(customer), customer)
        await deliver(sessions, tenant, issued(customer, 25_000, today - timedelta(3)), customer)
    print(
        f"seeded {len(customers):,} overdue customers in {args.tenants:,} tenants "
        f"({time.perf_counter() - started:.1f} s); {before:,} due customers were already there"
    )
    try:
        first = await timed_run(sessions, today)
        again = await timed_run(sessions, today)
        for tenant, customer in customers[::100]:
            await deliver(sessions, tenant, issued(customer, 25_000, today), customer)
        changed = await timed_run(sessions, today)
        for label, (ran, seconds) in (
            ("first run of the day", first),
            ("next run, nothing changed", again),
            ("after 1 % got an invoice", changed),
        ):
            print(f"{label}: {ran:,} customers run in {seconds:.2f} s")
        print(f"the next run took {again[1] / first[1]:.1%} of the first's time")
    finally:
        async with engine.begin() as conn:  # the bench's rows only; the event store keeps its
            for table in ("invoices", "customers", "cases", "outbox_messages", "approvals"):
                await conn.execute(
                    text(f"DELETE FROM dunning.{table} WHERE tenant_id LIKE :p"),
                    {"p": f"bdn{run}t%"},
                )
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--customers", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
