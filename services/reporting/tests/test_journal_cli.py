"""`ar ledger` as an operator runs it: incremental exports (the second only new entries, the
Beancount chunks valid once concatenated), sync to a Beancount file, the trial balance, and
reconcile exiting 1 once a row was tampered with."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from ar.main import app as cli
from services.reporting.tests.conftest import auth
from services.reporting.tests.journal_helpers import JournalLedger, T, day, run_scenario
from services.reporting.tests.test_ledger_exports import bean_check
from services.reporting.tests.test_postings import issued

pytestmark = pytest.mark.integration


async def ar(*args: str) -> Result:
    """Run `ar …` in its own event loop, in a thread."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.fixture
def journal_ledger(
    reporting_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> JournalLedger:
    return JournalLedger(reporting_sessions, tenant)


async def test_exports_are_incremental_per_format(
    journal_ledger: JournalLedger, tmp_path: Path
) -> None:
    tenant = journal_ledger.tenant
    await journal_ledger.deliver(
        journal_ledger.invoice_event(issued("c9", 1000, 190, "EUR", day(0)))
    )
    first, second, full = tmp_path / "1.beancount", tmp_path / "2.beancount", tmp_path / "all"
    result = await ar(
        "ledger", "export", "--tenant", tenant, "--format", "beancount", "--out", str(first)
    )
    assert result.exit_code == 0, result.output
    assert "1 entries" in result.output
    await run_scenario(journal_ledger)
    result = await ar("ledger", "export", "-t", tenant, "-f", "beancount", "-o", str(second))
    assert result.exit_code == 0, result.output
    assert "14 entries" in result.output
    assert _read(first).count("entry_id:") == 1
    assert _read(second).count("entry_id:") == 14
    bean_check(tmp_path, _read(first) + "\n" + _read(second))

    result = await ar("ledger", "export", "-t", tenant, "-f", "beancount", "-o", str(full))
    assert "0 entries" in result.output  # nothing new
    result = await ar(
        "ledger", "export", "-t", tenant, "-f", "beancount", "-o", str(full), "--from-start"
    )
    assert "15 entries" in result.output
    bean_check(tmp_path, _read(full), "full.beancount")

    feed = tmp_path / "feed.json"
    result = await ar("ledger", "export", "-t", tenant, "-f", "json", "-o", str(feed))
    assert result.exit_code == 0, result.output
    assert len(json.loads(_read(feed))["entries"]) == 15  # each format has its own cursor
    result = await ar("ledger", "export", "-t", tenant, "-f", "pdf", "-o", str(feed))
    assert result.exit_code == 2


async def test_sync_trial_balance_and_reconcile(
    api: httpx.AsyncClient,
    journal_ledger: JournalLedger,
    reporting_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    tenant = journal_ledger.tenant
    await run_scenario(journal_ledger)
    books = tmp_path / "books.beancount"
    result = await ar("ledger", "sync", "--tenant", tenant, "--beancount", str(books))
    assert result.exit_code == 0, result.output
    assert "succeeded, 14 entries" in result.output
    bean_check(tmp_path, _read(books), "copy.beancount")
    result = await ar("ledger", "sync", "--tenant", tenant, "--beancount", str(books))
    assert "succeeded, 0 entries" in result.output

    response = await api.get("/v1/ledger/sync-log", headers=auth(tenant))
    runs = response.json()["runs"]
    assert [(r["status"], r["entries"]) for r in runs] == [("succeeded", 0), ("succeeded", 14)]
    assert runs[0]["target"] == f"beancount-file:{books.resolve()}"
    assert runs[0]["cursor"] == runs[1]["to_position"]
    other = await api.get("/v1/ledger/sync-log", headers=auth(tenant + "x"))
    assert other.json() == {"runs": []}

    result = await ar("ledger", "trial-balance", "--tenant", tenant)
    assert result.exit_code == 0, result.output
    assert "Assets:AccountsReceivable" in result.output and "balanced" in result.output

    result = await ar("ledger", "reconcile", "--tenant", tenant)
    assert result.exit_code == 0, result.output
    assert "0 differences" in result.output

    async with reporting_sessions() as session, session.begin():
        await session.execute(
            text(
                f"""UPDATE {T.entries} SET customer_id = 'someone-else'
                    WHERE tenant_id = :t AND kind = 'credit_note'"""
            ),
            {"t": tenant},
        )
    result = await ar("ledger", "reconcile", "--tenant", tenant)
    assert result.exit_code == 1, result.output
    assert "someone-else" in result.output and "acme" in result.output
    result = await ar("ledger", "reconcile", "--tenant", tenant, "--as-of", "2026-01-10")
    assert result.exit_code == 0, result.output
    assert "aging not compared" in result.output
