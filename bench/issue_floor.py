"""The floor under issuing an invoice on this machine: the issue call's durable work with none of
Ledgerline's layers, to show what a different request path could reach before one is built.

    .venv/bin/python -m bench.issue_floor [--framework fastapi|asgi] [--seconds 20]

One uvicorn process (as each service runs) serves `POST /issue`. In one Postgres transaction
it does what issuing must do: the credit check (the customer's exposure plus the invoice within
its limit, taken and raised under the row's lock), the tenant's gapless number (a counter row
locked until the commit), and the InvoiceIssued and CreditReserved events written to an event
store table with the real one's columns, indexes and outbox order, with a payload of an issued
invoice's size. It uses raw asyncpg, with no ORM, no stream fold, no HTTP call to another
service, no relay and no consumers. `--framework fastapi` parses the body with a pydantic
model; `asgi` uses a bare ASGI callable and `json`.

The load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams, far cheaper
than httpx, because it shares the two cores with the server and Postgres. Phases: a closed-loop
peak with `--concurrency` clients spread over `--tenants` tenants, then an open loop at half
that rate (latency counted from each call's scheduled time). Each phase prints the CPU per
call of the server, Postgres and the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from bench.common import ADMIN_DSN, cpu_by_role, cpu_seconds_of
from shared.eventstore.schema import kernel_ddl

PORT = 8791
Issue = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


# ---- the server ---------------------------------------------------------------------------------


def _issue_with(pool: asyncpg.Pool, schema: str) -> Issue:
    reserve = f"""UPDATE {schema}.floor_accounts SET exposure = exposure + $3
                  WHERE tenant_id = $1 AND customer_id = $2 AND exposure + $3 <= credit_limit
                  RETURNING exposure"""
    number = f"""UPDATE {schema}.floor_series SET next_number = next_number + 1
                 WHERE tenant_id = $1 RETURNING next_number"""
    append = f"""INSERT INTO {schema}.events (event_id, stream_id, stream_version, event_type,
                     schema_version, tenant_id, customer_id, occurred_at, actor, payload)
                 VALUES ($1, $2, 2, 'InvoiceIssued', 1, $3, $4, $5, 'client:bench', $6),
                        ($7, $8, $9, 'CreditReserved', 1, $3, $4, $5, 'system:credit', $10)"""

    async def issue(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        tenant, customer, total = body["tenant_id"], body["customer_id"], int(body["total"])
        invoice_id, now = uuid.uuid4(), datetime.now(UTC)
        async with pool.acquire() as conn, conn.transaction():
            exposure = await conn.fetchval(reserve, tenant, customer, total)
            if exposure is None:
                return 409, {"detail": "over the credit limit"}
            seq = await conn.fetchval(number, tenant)
            invoice_number = f"INV-{seq:08d}"
            await conn.execute(
                append,
                uuid.uuid4(),
                f"invoice-{invoice_id}",
                tenant,
                customer,
                now,
                json.dumps(_issued_payload(invoice_id, customer, invoice_number, total, body)),
                uuid.uuid4(),
                f"credit_account-{tenant}.{customer}",
                exposure // total,  # every call reserves the same total: its version
                json.dumps({"invoice_id": str(invoice_id), "amount": total, "exposure": exposure}),
            )
        return 201, {"invoice_id": str(invoice_id), "number": invoice_number}

    return issue


def _issued_payload(
    invoice_id: uuid.UUID, customer: str, number: str, total: int, body: dict[str, Any]
) -> dict[str, Any]:
    money = {"amount": total, "currency": body["currency"]}
    return {
        "invoice_id": str(invoice_id),
        "customer_id": customer,
        "currency": body["currency"],
        "number": number,
        "issue_date": str(date.today()),
        "due_date": body["due_date"],
        "total": money,
        "subtotal": money,
        "tax_total": {"amount": 0, "currency": body["currency"]},
        "installments": [{"due_date": body["due_date"], "amount": money}],
        "credit_check": {"outcome": "passed", "check_id": str(uuid.uuid4())},
        "lines": [{"description": "Consulting", "quantity": "10", "unit_price": total // 10}] * 3,
    }


class IssueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    customer_id: str = Field(min_length=1, max_length=200)
    total: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    due_date: date


def create_app() -> Any:
    """The server's ASGI app (`uvicorn --factory bench.issue_floor:create_app`)."""
    dsn, schema = _dsn(), os.environ["FLOOR_SCHEMA"]
    state: dict[str, Issue] = {}

    async def startup() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=8, max_size=8)
        state["issue"] = _issue_with(pool, schema)

    if os.environ.get("FLOOR_FRAMEWORK") == "fastapi":
        return _fastapi_app(state, startup)
    return _asgi_app(state, startup)


def _fastapi_app(state: dict[str, Issue], startup: Callable[[], Awaitable[None]]) -> Any:
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        await startup()
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/issue")
    async def issue(body: IssueRequest) -> JSONResponse:
        status, answer = await state["issue"](body.model_dump(mode="json"))
        return JSONResponse(answer, status_code=status)

    return app


def _asgi_app(state: dict[str, Issue], startup: Callable[[], Awaitable[None]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            await startup()
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, answer = await state["issue"](json.loads(body))
        payload = json.dumps(answer).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


# ---- the load generator -------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: a request written, its response read, in turn."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", PORT))

    async def post(self, body: bytes) -> int:
        self.writer.write(
            b"POST /issue HTTP/1.1\r\nhost: floor\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(head.split(b" ", 2)[1])


def _body(tenants: int, customers: int, rng: random.Random) -> bytes:
    due = str(date.today() + timedelta(days=30))
    return json.dumps(
        {
            "tenant_id": f"t{rng.randrange(tenants)}",
            "customer_id": f"c{rng.randrange(customers)}",
            "total": 10_000,
            "currency": "EUR",
            "due_date": due,
        }
    ).encode()


async def closed_loop(
    connections: list[Connection], seconds: float, tenants: int, customers: int
) -> tuple[int, list[float]]:
    done, latencies = 0, []
    deadline = time.perf_counter() + seconds

    async def client(conn: Connection, seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await conn.post(_body(tenants, customers, rng))
            if status != 201:
                raise RuntimeError(f"issue answered {status}")
            latencies.append(time.perf_counter() - started)
            done += 1

    await asyncio.gather(*(client(c, n) for n, c in enumerate(connections)))
    return done, latencies


async def open_loop(
    connections: list[Connection], rate: float, seconds: float, tenants: int, customers: int
) -> list[float]:
    """Calls on a fixed schedule; latency from each call's scheduled time."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in connections:
        idle.put_nowait(conn)
    rng, latencies, tasks = random.Random(7), [], []
    start = time.perf_counter()

    async def call(scheduled: float) -> None:
        conn = await idle.get()
        try:
            if await conn.post(_body(tenants, customers, rng)) != 201:
                raise RuntimeError("issue refused")
            latencies.append(time.perf_counter() - scheduled)
        finally:
            idle.put_nowait(conn)

    for n in range(int(rate * seconds)):
        scheduled = start + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(call(scheduled)))
    await asyncio.gather(*tasks)
    return latencies


def _percentiles(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100)
    return f"p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, p99 {q[98]:.1f} ms, max {ms[-1]:.1f} ms"


def _cpu(server: int) -> dict[str, float]:
    roles = cpu_by_role()
    return {
        "server": cpu_seconds_of(server),
        "postgres": roles.get("postgres", 0.0),
        "load generator": roles["load generator"],
    }


def _print_cpu(before: dict[str, float], after: dict[str, float], calls: int, wall: float) -> None:
    total = 0.0
    for role in before:
        used = after[role] - before[role]
        total += used
        print(f"    {role:15s} {used / wall:4.0%} of a core, {used / calls * 1000:5.2f} ms/call")
    print(f"    {'all':15s} {total / wall:4.0%} of a core, {total / calls * 1000:5.2f} ms/call")


def _dsn() -> str:
    return ADMIN_DSN.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _prepare(schema: str, tenants: int, customers: int) -> None:
    conn = await asyncpg.connect(_dsn())
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        for statement in kernel_ddl(schema):
            await conn.execute(statement)
        await conn.execute(
            f"""CREATE TABLE {schema}.floor_accounts (tenant_id text, customer_id text,
                credit_limit bigint, exposure bigint, PRIMARY KEY (tenant_id, customer_id))"""
        )
        await conn.execute(
            f"CREATE TABLE {schema}.floor_series (tenant_id text PRIMARY KEY, next_number bigint)"
        )
        await conn.execute(
            f"""INSERT INTO {schema}.floor_accounts SELECT 't' || t, 'c' || c, 10000000000000, 0
                FROM generate_series(0, $1 - 1) t, generate_series(0, $2 - 1) c""",
            tenants,
            customers,
        )
        await conn.execute(
            f"INSERT INTO {schema}.floor_series SELECT 't' || t, 0 FROM generate_series(0, $1 - 1) t",
            tenants,
        )
    finally:
        await conn.close()


async def _drop(schema: str) -> None:
    conn = await asyncpg.connect(_dsn())
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def _wait_for_server() -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", PORT)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


async def main(args: argparse.Namespace) -> None:
    schema = f"bench_floor_{uuid.uuid4().hex[:8]}"
    await _prepare(schema, args.tenants, args.customers)
    env = {
        **os.environ,
        "FLOOR_SCHEMA": schema,
        "FLOOR_FRAMEWORK": args.framework,
    }
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "uvicorn", "--factory", "bench.issue_floor:create_app"),
        *("--port", str(PORT), "--log-level", "warning", "--no-access-log"),
        env=env,
    )
    try:
        await _wait_for_server()
        connections = [await Connection.open() for _ in range(args.concurrency)]
        await closed_loop(connections, 2, args.tenants, args.customers)  # warm-up
        before, started = _cpu(server.pid), time.perf_counter()
        calls, latencies = await closed_loop(
            connections, args.seconds, args.tenants, args.customers
        )
        wall = time.perf_counter() - started
        after = _cpu(server.pid)
        peak = calls / wall
        print(
            f"{args.framework}, {args.concurrency} clients, {args.tenants} tenants: "
            f"peak {peak:,.0f} issues/s ({calls:,} in {wall:.1f} s); {_percentiles(latencies)}"
        )
        _print_cpu(before, after, calls, wall)
        before, started = _cpu(server.pid), time.perf_counter()
        latencies = await open_loop(
            connections, peak / 2, args.seconds, args.tenants, args.customers
        )
        wall = time.perf_counter() - started
        print(f"half rate ({peak / 2:,.0f}/s): {_percentiles(latencies)}")
        _print_cpu(before, _cpu(server.pid), len(latencies), wall)
        for conn in connections:
            conn.writer.close()
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)
        await _drop(schema)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--framework", choices=["fastapi", "asgi"], default="fastapi")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tenants", type=int, default=16)
    parser.add_argument("--customers", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
