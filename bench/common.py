"""What the benchmarks share: the admin connection and scratch schemas they drop afterwards."""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.processes import ServiceProcess, wait_ready
from shared.eventstore.schema import audit_ddl, kernel_ddl

LOADED_SERVICES = ("invoice", "credit", "payments", "reporting")
"""The services an issued invoice's events reach, which the load benchmarks run."""

ADMIN_DSN = os.environ.get(
    "LEDGERLINE_ADMIN_DSN", "postgresql://postgres:ledgerline_admin@127.0.0.1:25432/ledgerline"
).replace("postgresql://", "postgresql+asyncpg://", 1)


@asynccontextmanager
async def scratch_schema(
    engine: AsyncEngine, prefix: str, *, kernel: bool = True, keep: bool = False
) -> AsyncIterator[str]:
    """A new schema (with the event store's tables unless `kernel=False`), dropped on exit."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        if kernel:
            for statement in kernel_ddl(schema) + audit_ddl(schema):
                await conn.execute(text(statement))
    try:
        yield schema
    finally:
        if keep:
            print(f"kept schema {schema}")
        else:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU of a process so far, its ended children's included (utime, stime,
    cutime and cstime are fields 14-17 of /proc/<pid>/stat, in clock ticks; the name in field 2
    may hold spaces, hence the split). Without the children, Postgres backends that ended during
    a phase (connections a pool closed, autovacuum workers) were not counted at all."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _role(pid: int) -> str | None:
    """What the benchmarks account CPU to: a service, Postgres, Kafka, or nothing of ours."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in argv if a]
    joined = " ".join(words)
    if "kafka.Kafka" in joined:
        return "kafka"
    if words and Path(words[0]).name.startswith("postgres"):
        return "postgres"
    for word in words:
        if word.startswith("services.") and word.endswith(":create_app"):
            return word.split(".")[1]
    return None


def roles_of_processes() -> dict[int, str]:
    """Every process on this machine that the benchmarks account CPU to, by pid."""
    roles = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (role := _role(int(entry.name))) is not None:
            roles[int(entry.name)] = role
    return roles


def cpu_by_role(
    own: str = "load generator", roles: dict[int, str] | None = None
) -> dict[str, float]:
    """CPU seconds used so far by each service process, Postgres and Kafka on this machine, and
    by this process; two readings subtracted give where a phase's CPU went. `roles`: the
    processes to read (`roles_of_processes()`), when the caller has them at hand."""
    totals: dict[str, float] = {own: cpu_seconds_of(os.getpid())}
    for pid, role in (roles if roles is not None else roles_of_processes()).items():
        try:
            totals[role] = totals.get(role, 0.0) + cpu_seconds_of(pid)
        except OSError:
            continue  # ended meanwhile
    return totals


def cpu_table(before: dict[str, float], after: dict[str, float], seconds: float, units: int) -> str:
    """Per role: share of one core over the phase and CPU milliseconds per unit of work."""
    lines = []
    spent = {k: after[k] - before.get(k, 0.0) for k in after}
    for role, cpu in sorted(spent.items(), key=lambda kv: -kv[1]):
        lines.append(
            f"    {role:<16} {cpu / seconds:>5.0%} of a core, {cpu * 1000 / max(units, 1):6.1f} ms/unit"
        )
    total = sum(spent.values())
    lines.append(
        f"    {'all':<16} {total / seconds:>5.0%} of a core, {total * 1000 / max(units, 1):6.1f} ms/unit"
    )
    return "\n".join(lines)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method, as latency reports use."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def latency_line(label: str, millis: Sequence[float]) -> str:
    return (
        f"{label}: p50 {percentile(millis, 50):.1f} ms, p95 {percentile(millis, 95):.1f} ms, "
        f"p99 {percentile(millis, 99):.1f} ms, max {max(millis):.1f} ms, "
        f"mean {statistics.fmean(millis):.1f} ms ({len(millis)} samples)"
    )


@contextmanager
def services_ready(start: bool, names: Sequence[str] = LOADED_SERVICES) -> Iterator[None]:
    """The services as uvicorn processes, started here (and stopped after) when `start`, else
    already running; ready either way."""
    processes = [ServiceProcess(name) for name in names]
    if start:
        for process in processes:
            process.start()
    try:
        problems = wait_ready(processes, 90)
        if problems:
            raise SystemExit(f"services not ready: {problems}")
        yield
    finally:
        if start:
            for process in processes:
                process.stop()
