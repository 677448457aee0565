"""Invoices issued through the real stack: HTTP -> invoice service -> credit check over HTTP ->
Postgres (event + gapless number in one transaction) -> outbox relay -> Kafka -> reporting.

    .venv/bin/python -m bench.http_load --start [--tenants 16 --customers 320]

Phases, each on a new tenant's customers (all five services as uvicorn processes, started here
with `--start`, or already running):
1. peak, draft + issue: `--concurrency` clients loop "create a draft, issue it" (closed loop).
2. peak, issue only: the same clients issue drafts made beforehand.
3. half rate: issue calls arrive at half the issue-only peak, on a fixed schedule (open loop,
   latency counted from the scheduled time, so a stalled server is not hidden), and the lag from
   each InvoiceIssued event's commit to the reporting projection applying it (what the aging
   report reads) is read from the database afterwards.
Each tenant has its own gapless number series, whose counter row every issue of that tenant
locks until its commit: `--tenants` spreads the clients over several. The load generator runs
in this one process; its own CPU use is printed, since it shares the
two cores with the services, Postgres and Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date

import httpx
from sqlalchemy import text

from bench.common import ADMIN_DSN, latency_line, percentile
from services.processes import ServiceProcess, wait_ready
from services.registry import settings_of
from shared.auth import mint_token
from shared.db import make_engine

SCOPES = ["invoices:read", "invoices:write", "credit:read", "credit:write", "reporting:read"]
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
LINES = [
    {"description": "Consulting", "quantity": "2", "unit_price": 5_000, "taxes": []},
    {"description": "Travel", "quantity": "1", "unit_price": 1_990, "taxes": []},
]


@dataclass
class Client:
    invoice: httpx.AsyncClient
    credit: httpx.AsyncClient
    customers: list[str] = field(default_factory=list)
    turn: int = 0

    def next_customer(self) -> str:
        self.turn += 1
        return self.customers[self.turn % len(self.customers)]

    async def draft(self) -> str:
        response = await self.invoice.post(
            "/v1/invoices", json={"customer_id": self.next_customer(), "lines": LINES}
        )
        response.raise_for_status()
        return str(response.json()["invoice_id"])

    async def issue(self, invoice_id: str) -> None:
        response = await self.invoice.post(
            f"/v1/invoices/{invoice_id}/issue", json={"issue_date": date.today().isoformat()}
        )
        if response.status_code != 200:
            raise RuntimeError(f"issue answered {response.status_code}: {response.text[:300]}")


async def connect(tenant: str, customers: int, concurrency: int) -> Client:
    auth = settings_of("invoice").auth
    token = mint_token(auth, subject="bench", tenant_id=tenant, scopes=SCOPES, ttl_seconds=7200)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = Client(
        httpx.AsyncClient(
            base_url=ServiceProcess("invoice").url, headers=headers, limits=limits, timeout=30
        ),
        httpx.AsyncClient(base_url=ServiceProcess("credit").url, headers=headers, timeout=30),
    )
    for n in range(customers):
        customer_id = f"cust-{n}"
        created = await client.invoice.post(
            "/v1/customers",
            json={
                "customer_id": customer_id,
                "name": f"Customer {n}",
                "email": f"ap{n}@example.com",
                "currency": "EUR",
                "billing_address": ADDRESS,
                "default_terms": {"kind": "net", "net_days": 30},
            },
        )
        created.raise_for_status()
        limit = await client.credit.put(
            f"/v1/customers/{customer_id}/credit-limit",
            json={"limit": {"amount": 50_000_00, "currency": "EUR"}, "reason": "bench"},
        )
        limit.raise_for_status()
        client.customers.append(customer_id)
    return client


async def closed_loop(
    concurrency: int, seconds: float, step: Callable[[int], Awaitable[float]]
) -> tuple[int, float, list[float]]:
    """`concurrency` workers (numbered) repeat `step` (its latency in ms) for `seconds`."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        while time.perf_counter() < deadline:
            latencies.append(await step(k))

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return len(latencies), time.perf_counter() - started, latencies


Draft = tuple[Client, str]


async def drafts(clients: list[Client], count: int, concurrency: int) -> list[Draft]:
    made: list[Draft] = []

    async def worker(k: int) -> None:
        client = clients[k % len(clients)]
        while len(made) < count:
            made.append((client, await client.draft()))

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return made


async def timed(call: Awaitable[object]) -> float:
    started = time.perf_counter()
    await call
    return (time.perf_counter() - started) * 1000


async def open_loop(pool: list[Draft], rate: float) -> list[float]:
    """Issue the drafts at `rate` per second on a fixed schedule; latency from the scheduled
    time."""
    latencies: list[float] = []
    start = time.perf_counter() + 0.2

    async def one(n: int, client: Client, invoice_id: str) -> None:
        scheduled = start + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        await client.issue(invoice_id)
        latencies.append((time.perf_counter() - scheduled) * 1000)

    await asyncio.gather(*(one(n, c, i) for n, (c, i) in enumerate(pool)))
    return latencies


async def projection_lag(tenants: list[str], since: float) -> list[float]:
    """Milliseconds from each InvoiceIssued event's insert to the reporting consumer's inbox
    row for it (both written inside their transactions, just before each commits)."""
    engine = make_engine(ADMIN_DSN, pool_size=1, application_name="bench-lag")
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    """SELECT EXTRACT(EPOCH FROM (i.processed_at - e.recorded_at)) * 1000 AS lag
                       FROM invoice.events e
                       JOIN reporting.inbox i ON i.event_id = e.event_id
                            AND i.consumer_group = 'reporting.projections'
                       WHERE e.tenant_id = ANY(:ts) AND e.event_type = 'InvoiceIssued'
                         AND e.recorded_at >= to_timestamp(:since)"""
                ),
                {"ts": tenants, "since": since},
            )
            return [float(r.lag) for r in rows]
    finally:
        await engine.dispose()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(args: argparse.Namespace) -> None:
    processes = [ServiceProcess(name) for name in ("invoice", "credit", "payments", "reporting")]
    if args.start:
        for process in processes:
            process.start()
    try:
        problems = wait_ready(processes, 90)
        if problems:
            raise SystemExit(f"services not ready: {problems}")
        tenants = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(args.tenants)]
        per_tenant = max(1, args.customers // args.tenants)
        clients = [await connect(t, per_tenant, args.concurrency) for t in tenants]
        print(
            f"{args.tenants} tenant(s) of {per_tenant} customers, {args.concurrency} clients, "
            f"pid {os.getpid()}"
        )

        async def draft_and_issue(k: int) -> float:
            client = clients[k % len(clients)]
            return await timed(client.issue(await client.draft()))

        n, seconds, issue_ms = await closed_loop(args.concurrency, args.seconds, draft_and_issue)
        print(f"peak, draft + issue: {n / seconds:,.0f} invoices/s ({n} in {seconds:.1f} s)")
        print("  " + latency_line("issue call", issue_ms))

        pool = await drafts(clients, args.drafts, args.concurrency)
        queue = iter(pool)
        issue_ms = []

        async def drain() -> None:
            for client, invoice_id in queue:
                issue_ms.append(await timed(client.issue(invoice_id)))

        cpu = cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(drain() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - started
        peak = len(pool) / seconds
        print(f"peak, issue only: {peak:,.0f} invoices/s ({len(pool)} in {seconds:.1f} s)")
        print("  " + latency_line("issue call", issue_ms))
        print(f"  load generator CPU: {(cpu_seconds() - cpu) / seconds:.0%} of one core")

        rate = peak / 2
        pool = await drafts(clients, int(rate * args.seconds), args.concurrency)
        since = time.time()
        half_ms = await open_loop(pool, rate)
        print(
            f"half rate ({rate:,.0f}/s for {args.seconds:.0f} s): " + latency_line("issue", half_ms)
        )
        await asyncio.sleep(3)  # let the last events reach the projection
        lag = await projection_lag(tenants, since)
        print(
            f"  commit -> reporting projection: p50 {percentile(lag, 50):.0f} ms, "
            f"p99 {percentile(lag, 99):.0f} ms, max {max(lag):.0f} ms "
            f"({len(lag)} of {len(pool)} events)"
        )
        for client in clients:
            await client.invoice.aclose()
            await client.credit.aclose()
    finally:
        if args.start:
            for process in processes:
                process.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", action="store_true", help="start the services here")
    parser.add_argument("--customers", type=int, default=200, help="in all, shared by the tenants")
    parser.add_argument(
        "--tenants", type=int, default=1, help="each has its own gapless invoice number series"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--drafts", type=int, default=3000)
    asyncio.run(main(parser.parse_args()))
