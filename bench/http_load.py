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
   report reads) is read from the database afterwards. The five slowest calls are printed with
   the time they were due and the processes that used the CPU while they waited (sampled every
   50 ms by a separate process, which costs 2-9 % of a core itself).
Each tenant has its own gapless number series, whose counter row every issue of that tenant
locks until its commit: `--tenants` spreads the clients over several. The load generator runs
in this one process and shares the two cores with the services, Postgres and Kafka: each peak
phase prints the CPU every process used per issued invoice (from /proc). Refused calls (e.g.
503 when the credit check times out under overload) are counted, not fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import httpx
from sqlalchemy import text

from bench.common import (
    ADMIN_DSN,
    cpu_by_role,
    cpu_table,
    latency_line,
    percentile,
    roles_of_processes,
    services_ready,
)
from services.processes import ServiceProcess
from services.registry import settings_of
from services.reporting.projections.projector import PROJECTED_TYPES
from shared.auth import mint_token
from shared.db import make_engine
from shared.heap import freeze_startup_heap

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
        """Raises Refused for any answer but 200: the phases count refusals and go on."""
        response = await self.invoice.post(
            f"/v1/invoices/{invoice_id}/issue", json={"issue_date": date.today().isoformat()}
        )
        if response.status_code != 200:
            code = response.json().get("error", {}).get("code", "?")
            raise Refused(f"{response.status_code} {code}")


class CpuTimeline:
    """Every process's CPU sampled every `interval` seconds by a separate process (a sampler in
    this one would hold the load generator's event loop): which ones were busy while a slow call
    waited."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._stop = multiprocessing.Event()
        self._samples: multiprocessing.Queue[list[tuple[float, dict[str, float]]]] = (
            multiprocessing.Queue()
        )
        self._process = multiprocessing.Process(
            target=_sample, args=(interval, self._stop, self._samples), daemon=True
        )
        self.samples: list[tuple[float, dict[str, float]]] = []

    def __enter__(self) -> CpuTimeline:
        self._process.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.samples = self._samples.get(timeout=30)
        self._process.join(timeout=5)

    def busy(self, start: float, end: float) -> str:
        """Each role's share of one core between two Unix times, the busiest first."""
        inside = [(t, cpu) for t, cpu in self.samples if start - self.interval <= t <= end]
        if len(inside) < 2:
            return "no samples"
        (t0, first), (t1, last) = inside[0], inside[-1]
        shares = {r: (last[r] - first.get(r, 0.0)) / (t1 - t0) for r in last}
        ranked = sorted(shares.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{role} {share:.0%}" for role, share in ranked if share >= 0.05)


def _sample(
    interval: float,
    stop: multiprocessing.synchronize.Event,
    out: multiprocessing.Queue[list[tuple[float, dict[str, float]]]],
) -> None:
    samples = []
    roles, found_at = roles_of_processes(), time.monotonic()
    while not stop.wait(interval):
        if time.monotonic() - found_at > 1:  # new Postgres backends; a new reading per process
            roles, found_at = roles_of_processes(), time.monotonic()
        samples.append((time.time(), cpu_by_role("load generator's sampler", roles)))
    out.put(samples)


class Refused(Exception):
    """An issue call answered other than 200 (e.g. 503 when the credit check timed out)."""


@dataclass
class Outcomes:
    """Latencies of the issue calls that succeeded, and the refusals by status and code."""

    latencies: list[float] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    # (latency ms, when it was due as a Unix time, invoice id): the open loop's, to find a slow
    # call's cause in the services' and Postgres's logs.
    calls: list[tuple[float, float, str]] = field(default_factory=list)

    async def time(self, call: Awaitable[object]) -> None:
        started = time.perf_counter()
        try:
            await call
        except Refused as exc:
            self.refused[str(exc)] += 1
            return
        self.latencies.append((time.perf_counter() - started) * 1000)

    def slowest(self, timeline: CpuTimeline, n: int = 5) -> str:
        """The `n` slowest calls: when they were due, and who used the CPU while they waited."""
        lines = []
        for ms, due, invoice in sorted(self.calls, reverse=True)[:n]:
            at = f"{datetime.fromtimestamp(due, UTC):%H:%M:%S.%f}"[:-3]
            busy = timeline.busy(due, due + ms / 1000)
            lines.append(f"    {ms:4.0f} ms, due {at} UTC, invoice {invoice}: {busy}")
        return "\n".join(lines)

    def report(self, label: str) -> str:
        line = latency_line(label, self.latencies) if self.latencies else f"{label}: none served"
        if self.refused:
            line += "; refused: " + ", ".join(f"{n} x {k}" for k, n in self.refused.items())
        return line


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
    concurrency: int, seconds: float, step: Callable[[int, Outcomes], Awaitable[None]]
) -> tuple[float, Outcomes]:
    """`concurrency` workers (numbered) repeat `step` for `seconds`; returns the time taken."""
    outcomes = Outcomes()
    deadline = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        while time.perf_counter() < deadline:
            await step(k, outcomes)

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return time.perf_counter() - started, outcomes


Draft = tuple[Client, str]


async def drafts(clients: list[Client], count: int, concurrency: int) -> list[Draft]:
    made: list[Draft] = []

    async def worker(k: int) -> None:
        client = clients[k % len(clients)]
        while len(made) < count:
            made.append((client, await client.draft()))

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return made


async def open_loop(pool: list[Draft], rate: float) -> Outcomes:
    """Issue the drafts at `rate` per second on a fixed schedule; latency from the scheduled
    time."""
    outcomes = Outcomes()
    start = time.perf_counter() + 0.2
    wall_start = time.time() + 0.2

    async def one(n: int, client: Client, invoice_id: str) -> None:
        scheduled = start + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        try:
            await client.issue(invoice_id)
        except Refused as exc:
            outcomes.refused[str(exc)] += 1
            return
        took = (time.perf_counter() - scheduled) * 1000
        outcomes.latencies.append(took)
        outcomes.calls.append((took, wall_start + n / rate, invoice_id))

    await asyncio.gather(*(one(n, c, i) for n, (c, i) in enumerate(pool)))
    return outcomes


async def caught_up(tenants: list[str], give_up_after: float) -> tuple[float, int]:
    """Seconds until the reporting projection has applied every event of the invoice service
    for `tenants` of the types it projects (its consumer group's inbox holds them; the others it
    passes over without an inbox row), and how many were still missing then."""
    engine = make_engine(ADMIN_DSN, pool_size=1, application_name="bench-lag")
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < give_up_after:
            async with engine.connect() as conn:
                behind = await conn.scalar(
                    text(
                        """SELECT count(*) FROM invoice.events e
                           WHERE e.tenant_id = ANY(:ts) AND e.event_type = ANY(:types)
                             AND NOT EXISTS (
                               SELECT 1 FROM reporting.inbox i
                               WHERE i.event_id = e.event_id
                                 AND i.consumer_group = 'reporting.projections')"""
                    ),
                    {"ts": tenants, "types": sorted(PROJECTED_TYPES)},
                )
            if not behind:
                break
            await asyncio.sleep(0.5)
        return time.perf_counter() - started, behind
    finally:
        await engine.dispose()


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


async def main(args: argparse.Namespace) -> None:
    with services_ready(args.start):
        tenants = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(args.tenants)]
        per_tenant = max(1, args.customers // args.tenants)
        clients = [await connect(t, per_tenant, args.concurrency) for t in tenants]
        # The load generator's own full collections (60 ms over its start-up heap) would count
        # as the services' latency, so its start-up heap is frozen as theirs is.
        freeze_startup_heap()
        print(
            f"{args.tenants} tenant(s) of {per_tenant} customers, {args.concurrency} clients, "
            f"pid {os.getpid()}"
        )

        async def draft_and_issue(k: int, outcomes: Outcomes) -> None:
            client = clients[k % len(clients)]
            await outcomes.time(client.issue(await client.draft()))

        cpu = cpu_by_role()
        seconds, outcomes = await closed_loop(args.concurrency, args.seconds, draft_and_issue)
        n = len(outcomes.latencies)
        print(f"peak, draft + issue: {n / seconds:,.0f} invoices/s ({n} in {seconds:.1f} s)")
        print("  " + outcomes.report("issue call"))
        print("  CPU per issued invoice (draft + issue), by process:")
        print(cpu_table(cpu, cpu_by_role(), seconds, n))

        pool = await drafts(clients, args.drafts, args.concurrency)
        queue = iter(pool)
        outcomes = Outcomes()

        async def drain() -> None:
            for client, invoice_id in queue:
                await outcomes.time(client.issue(invoice_id))

        cpu = cpu_by_role()
        started = time.perf_counter()
        await asyncio.gather(*(drain() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - started
        n = len(outcomes.latencies)
        peak = n / seconds
        print(f"peak, issue only: {peak:,.0f} invoices/s ({n} of {len(pool)} in {seconds:.1f} s)")
        print("  " + outcomes.report("issue call"))
        print("  CPU per issued invoice (issue call only), by process:")
        print(cpu_table(cpu, cpu_by_role(), seconds, n))

        rate = peak / 2
        pool = await drafts(clients, int(rate * args.seconds), args.concurrency)
        # The drafts' events reach every consumer in a burst; the half-rate phase measures the
        # steady state, so it starts once the projection has caught up with them.
        settled, behind = await caught_up(tenants, give_up_after=180)
        if behind:
            print(f"  projection still {behind:,} events behind after {settled:.1f} s")
        else:
            print(f"  projection caught up with the drafts in {settled:.1f} s")
        since = time.time()
        cpu, started = cpu_by_role(), time.perf_counter()
        with CpuTimeline() as timeline:
            half = await open_loop(pool, rate)
        print(f"half rate ({rate:,.0f}/s for {args.seconds:.0f} s): " + half.report("issue"))
        print("  the slowest calls, and the processes busy meanwhile (share of one core):")
        print(half.slowest(timeline))
        await asyncio.sleep(3)  # let the last events reach the projection
        print("  CPU per issued invoice at half rate (the last events' consumers included):")
        print(cpu_table(cpu, cpu_by_role(), time.perf_counter() - started, len(half.latencies)))
        lag = await projection_lag(tenants, since)
        print(
            f"  commit -> reporting projection: p50 {percentile(lag, 50):.0f} ms, "
            f"p99 {percentile(lag, 99):.0f} ms, max {max(lag):.0f} ms "
            f"({len(lag)} of {len(pool)} events)"
        )
        for client in clients:
            await client.invoice.aclose()
            await client.credit.aclose()


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
