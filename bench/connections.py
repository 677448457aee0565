"""What a database connection costs when a pool opens one for a unit of work and closes it after
(as SQLAlchemy does with an overflow connection returned to a full pool), against one kept open.

    .venv/bin/python -m bench.connections [--units 200]

Each unit of work is `SELECT 1` as the invoice service's role over SQLAlchemy and asyncpg, on a
new connection each time (NullPool) or on one pooled connection (shared.db.make_engine). Prints
wall time, this process's CPU and Postgres's CPU per unit; Postgres's includes the backends that
ended (they are counted in the postmaster's children's time, see bench.common.cpu_seconds_of).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bench.common import cpu_by_role
from services.invoice.config import InvoiceSettings
from shared.db import make_engine


async def per_unit(engine: AsyncEngine, units: int) -> tuple[float, float, float]:
    """(wall, own CPU, Postgres CPU) in ms per unit of work."""
    async with engine.connect() as conn:  # warm: the first connection also loads the dialect
        await conn.execute(text("SELECT 1"))
    before, wall, cpu = cpu_by_role(), time.perf_counter(), time.process_time()
    for _ in range(units):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    postgres = cpu_by_role().get("postgres", 0.0) - before.get("postgres", 0.0)
    await engine.dispose()
    return wall * 1000 / units, cpu * 1000 / units, postgres * 1000 / units


async def main(units: int) -> None:
    dsn = InvoiceSettings().dsn()
    print(f"{units} units of work, pid {os.getpid()}")
    for label, engine in (
        ("a connection opened and closed for each", create_async_engine(dsn, poolclass=NullPool)),
        ("a connection kept in the pool", make_engine(dsn, pool_size=1)),
    ):
        wall, own, postgres = await per_unit(engine, units)
        print(
            f"  {label}: {wall:.2f} ms wall, CPU {own:.2f} ms here + {postgres:.2f} ms in "
            "Postgres per unit"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=200)
    asyncio.run(main(parser.parse_args().units))
