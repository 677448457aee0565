"""`ar ledger`: export the journal incrementally, sync it to a Beancount file, reconcile the AR
subledger with the control account, print the trial balance, revalue open foreign items at a
period end (docs/accounting.md)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ar.common import console, engines, service_settings
from services.reporting.application import ledger
from services.reporting.application.connectors import BeancountFileConnector, SyncResult, sync
from services.reporting.application.revaluation import (
    RevaluationRun,
    revalue,
    validate_period_end,
)
from services.reporting.projections.journal_store import LedgerTables
from shared.db import make_sessionmaker
from shared.errors import ValidationFailed
from shared.money import Money

app = typer.Typer(
    help="The general-ledger journal: exports, sync, reconciliation.", no_args_is_help=True
)

TENANT = typer.Option(..., "--tenant", "-t", help="The tenant whose journal.")
MAX_ENTRIES = 1_000_000


@asynccontextmanager
async def _reporting() -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], LedgerTables]]:
    schema = service_settings("reporting").schema_name
    async with engines(["reporting"], "ledger") as opened:
        yield make_sessionmaker(opened["reporting"]), LedgerTables(schema)


def _as_of(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date: {value!r}") from None


def _major(amount: int, currency: str) -> str:
    return f"{Money.of_minor(amount, currency).to_decimal():f}"


# ------------------------------------------------------------------------------- export


def _write_atomically(path: Path, body: str) -> None:
    """The file appears whole or not at all (the cursor moves only after it is written)."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


async def _export(
    tenant: str, fmt: ledger.ExportFormat, out: Path, from_start: bool
) -> tuple[int, int, int]:
    target = f"export:{fmt}"
    async with _reporting() as (sessions, t):
        async with sessions() as session, session.begin():
            stored = await ledger.cursor_position(session, t, tenant, target)
        after = 0 if from_start else stored
        async with sessions() as session:
            chunk = await ledger.render_export(session, t, tenant, fmt, after, MAX_ENTRIES)
        await asyncio.to_thread(_write_atomically, out, chunk.body)
        page = chunk.page
        async with sessions() as session, session.begin():
            await session.execute(
                text(
                    f"""UPDATE {t.cursors} SET position = :p, updated_at = now()
                        WHERE tenant_id = :t AND target = :target"""
                ),
                {"t": tenant, "target": target, "p": page.next_after},
            )
            await session.execute(
                text(
                    f"""INSERT INTO {t.sync_log} (tenant_id, target, from_position, to_position,
                            entries, status, attempts, finished_at)
                        VALUES (:t, :target, :from, :to, :n, 'succeeded', 1, now())"""
                ),
                {
                    "t": tenant,
                    "target": target,
                    "from": after,
                    "to": page.next_after,
                    "n": len(page.entries),
                },
            )
    return after, page.next_after, len(page.entries)


@app.command("export")
def export(
    tenant: str = TENANT,
    fmt: str = typer.Option(..., "--format", "-f", help="beancount, quickbooks, xero or json."),
    out: Path = typer.Option(..., "--out", "-o", help="The file to write (replaced)."),
    from_start: bool = typer.Option(
        False, "--from-start", help="Everything, not just what changed since the last export."
    ),
) -> None:
    """Write the entries posted since this format's last export for the tenant (the stored
    cursor), then move the cursor. Beancount chunks concatenate into one valid ledger; with
    --from-start the file is a whole ledger."""
    if fmt not in ledger.EXPORT_FORMATS:
        raise typer.BadParameter(f"--format is one of {', '.join(ledger.EXPORT_FORMATS)}")
    after, next_after, count = asyncio.run(_export(tenant, fmt, out, from_start))
    console.print(
        f"{count} entries ({fmt}) written to {out}; cursor {after} -> {next_after}",
        soft_wrap=True,
    )


# --------------------------------------------------------------------------------- sync


async def _sync(tenant: str, path: Path, batch_size: int) -> SyncResult:
    async with _reporting() as (sessions, t):
        async with sessions() as session:
            currency = await ledger.ledger_currency(session, t, tenant)
        connector = BeancountFileConnector(path, currency)
        return await sync(sessions, t, tenant, connector, batch_size=batch_size)


@app.command("sync")
def sync_command(
    tenant: str = TENANT,
    beancount: Path = typer.Option(..., "--beancount", help="The Beancount ledger file."),
    batch_size: int = typer.Option(500, min=1, max=5000, help="Entries per push."),
) -> None:
    """Push the journal's new entries to a Beancount file (bean-check must accept every
    append). Exit 1 when the sync failed; the sync log keeps the error."""
    result = asyncio.run(_sync(tenant, beancount, batch_size))
    console.print(
        f"sync {result.sync_id} to {result.target}: {result.status}, {result.entries} entries, "
        f"positions {result.from_position} -> {result.to_position}, {result.attempts} pushes",
        soft_wrap=True,
    )
    if result.error:
        console.print(f"[red]{result.error}[/]")
        raise typer.Exit(1)


# ---------------------------------------------------------------------- reconcile / TB


async def _read(kind: str, tenant: str, as_of: date) -> dict[str, Any]:
    async with _reporting() as (sessions, t), sessions() as session:
        if kind == "reconcile":
            today = datetime.now(UTC).date()
            return await ledger.reconciliation(session, t, tenant, as_of, today)
        return await ledger.trial_balance(session, t, tenant, as_of)


@app.command("reconcile")
def reconcile(
    tenant: str = TENANT,
    as_of: str = typer.Option(None, "--as-of", help="ISO date (default: today, UTC)."),
) -> None:
    """The AR subledger per customer against the AR control account and (as of today) the
    aging's open items. Prints the differences; exit 1 if there are any."""
    report = asyncio.run(_read("reconcile", tenant, _as_of(as_of)))
    rows = [r for r in report["control"] if r["difference_minor"]]
    customers = [r for r in report["customers"] if r["difference_minor"]]
    out = Console()
    if rows:
        table = Table(title=f"{report['account']}: control vs subledger")
        for column in ("currency", "control", "subledger", "difference"):
            table.add_column(column)
        for r in rows:
            c = r["currency"]
            table.add_row(
                c,
                _major(r["control_minor"], c),
                _major(r["subledger_minor"], c),
                _major(r["difference_minor"], c),
            )
        out.print(table)
    if customers:
        table = Table(title="customers: subledger vs open items")
        for column in ("customer", "currency", "subledger", "open items", "difference"):
            table.add_column(column)
        for r in customers:
            c = r["currency"]
            table.add_row(
                r["customer_id"],
                c,
                _major(r["subledger_minor"], c),
                _major(r["open_items_minor"] or 0, c),
                _major(r["difference_minor"], c),
            )
        out.print(table)
    checked = len(report["customers"])
    aging = "and the aging" if report["compared_with_aging"] else "(aging not compared: past date)"
    console.print(
        f"as of {report['as_of']}: {checked} customer balances checked against the control "
        f"account {aging}; {report['differences']} differences",
        soft_wrap=True,
    )
    if report["differences"]:
        raise typer.Exit(1)


@app.command("trial-balance")
def trial_balance(
    tenant: str = TENANT,
    as_of: str = typer.Option(None, "--as-of", help="ISO date (default: today, UTC)."),
) -> None:
    """Debits and credits per account and currency; exit 1 if they do not balance."""
    report = asyncio.run(_read("trial-balance", tenant, _as_of(as_of)))
    functional = report["functional_currency"]
    table = Table(title=f"Trial balance as of {report['as_of']} ({functional})")
    for column in ("account", "currency", "debit", "credit", f"balance {functional}"):
        table.add_column(column)
    for a in report["accounts"]:
        c = a["currency"]
        table.add_row(
            a["account"],
            c,
            _major(a["debit_minor"], c),
            _major(a["credit_minor"], c),
            _major(a["functional_balance_minor"], functional),
        )
    Console().print(table)
    if not report["balanced"]:
        console.print(f"[red]does not balance:[/] {report['totals']} {report['functional_totals']}")
        raise typer.Exit(1)
    console.print("balanced")


# ---------------------------------------------------------------------------- revaluation


async def _revalue(tenant: str, period_end: date) -> RevaluationRun:
    async with _reporting() as (sessions, t), sessions() as session, session.begin():
        return await revalue(session, t, tenant, period_end)


@app.command("revalue")
def revalue_command(
    tenant: str = TENANT,
    period_end: str = typer.Option(
        ..., "--period-end", help="ISO date: the period's last day (reversal the day after)."
    ),
) -> None:
    """Revalue the open foreign receivables and unapplied cash at the period-end rate
    (unrealized FX), reversed on the next day. Idempotent: running the same period end again
    posts nothing. Exit 1 when a rate is missing (nothing is posted)."""
    day = _as_of(period_end)
    try:
        validate_period_end(day, datetime.now(UTC).date())
        run = asyncio.run(_revalue(tenant, day))
    except ValidationFailed as exc:
        console.print(f"[red]{exc.message}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    functional = run.functional_currency or ""
    if run.revaluations:
        table = Table(title=f"Revaluation at {run.period_end} ({functional})")
        for column in (
            "document",
            "currency",
            "open",
            "rate",
            "carrying",
            "revalued",
            "difference",
        ):
            table.add_column(column)
        for r in run.revaluations:
            d = r.document
            table.add_row(
                f"{d.kind} {d.number or d.document_id}",
                d.currency,
                _major(d.amount, d.currency),
                f"{r.rate:f}",
                _major(d.carrying, functional),
                _major(r.revalued, functional),
                _major(r.difference, functional),
            )
        Console().print(table)
    console.print(
        f"period end {run.period_end}: {run.open_documents} open foreign documents, "
        f"{len(run.revaluations)} revalued ({len(run.posted)} entries posted), "
        f"{run.already_revalued} already revalued",
        soft_wrap=True,
    )
