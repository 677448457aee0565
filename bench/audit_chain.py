"""How fast the event hash chain is sealed and verified, and what it costs appends.

Runs on the local Postgres (deploy/up.sh) in a scratch schema it drops afterwards:
`.venv/bin/python -m bench.audit_chain --events 20000`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.audit.chain import ChainSealer, seal_batch, verify_chain
from shared.db import make_engine, make_sessionmaker
from shared.events.envelope import NewEvent
from shared.eventstore.schema import audit_ddl, kernel_ddl
from shared.eventstore.store import AppendContext, EventStore

ADMIN_DSN = os.environ.get(
    "LEDGERLINE_ADMIN_DSN", "postgresql://postgres:ledgerline_admin@127.0.0.1:25432/ledgerline"
).replace("postgresql://", "postgresql+asyncpg://", 1)
CTX = AppendContext(tenant_id="bench", actor="system:bench", customer_id="c-1")
PAYLOAD = {
    "invoice_id": str(uuid.uuid4()),
    "amount": {"amount": 123_456, "currency": "EUR"},
    "lines": [{"description": "Consulting", "quantity": "10", "unit_price": 12_000}] * 3,
}


async def append(
    sessions: async_sessionmaker[AsyncSession], schema: str, events: int, per_tx: int
) -> float:
    store = EventStore(schema)
    started = time.perf_counter()
    for _ in range(events // per_tx):
        async with sessions() as s, s.begin():
            batch = [
                NewEvent(event_type="Bench", schema_version=1, payload=PAYLOAD)
                for _ in range(per_tx)
            ]
            await store.append(s, f"bench-{uuid.uuid4()}", 0, batch, CTX)
    return time.perf_counter() - started


async def main(events: int, per_tx: int) -> None:
    engine = make_engine(ADMIN_DSN, pool_size=4, application_name="bench-chain")
    sessions = make_sessionmaker(engine)
    schemas = [f"bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for schema in schemas:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
            for statement in kernel_ddl(schema) + audit_ddl(schema):
                await conn.execute(text(statement))
    try:
        plain, sealed_schema = schemas
        without = await append(sessions, plain, events, per_tx)
        sealer = ChainSealer(engine, sealed_schema, poll_interval=0.05)
        task = asyncio.create_task(sealer.run())
        with_sealer = await append(sessions, sealed_schema, events, per_tx)
        appended_at = time.perf_counter()
        while sealer.sealed < events:  # noqa: ASYNC110 - polling another task's counter
            await asyncio.sleep(0.05)
        caught_up = time.perf_counter() - appended_at
        sealer.stop()
        await task
        async with engine.connect() as conn:
            started = time.perf_counter()
            while await seal_batch(conn, plain):
                pass
            seal_seconds = time.perf_counter() - started
            started = time.perf_counter()
            report = await verify_chain(conn, plain)
            verify_seconds = time.perf_counter() - started
        assert report.intact and report.links == events, report.problems
        print(f"events: {events} ({per_tx} per transaction, ~{len(str(PAYLOAD))} B payload)")
        print(f"append without sealer: {events / without:,.0f} events/s ({without:.2f} s)")
        print(
            f"append with sealer running: {events / with_sealer:,.0f} events/s "
            f"({with_sealer:.2f} s, ratio {with_sealer / without:.2f})"
        )
        print(f"sealer caught up {caught_up:.2f} s after the last append")
        print(f"seal from scratch: {events / seal_seconds:,.0f} events/s ({seal_seconds:.2f} s)")
        print(f"verify: {events / verify_seconds:,.0f} events/s ({verify_seconds:.2f} s)")
    finally:
        async with engine.begin() as conn:
            for schema in schemas:
                await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--per-tx", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.per_tx))
