"""The Beancount file connector (bean-check guards every append) and ``sync``: cursor, retries
with backoff, the sync log, partial acceptance, and idempotent re-pushes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.application.connectors import (
    BeancountFileConnector,
    ConnectorError,
    ConnectorRejected,
    PushResult,
    sync,
)
from services.reporting.domain.postings import JournalEntry
from services.reporting.tests.journal_helpers import (
    JournalLedger,
    T,
    day,
    run_scenario,
    stored_journal,
)
from services.reporting.tests.test_ledger_exports import bean_check, scenario
from services.reporting.tests.test_postings import issued

# ------------------------------------------------------------------ the file connector


async def test_pushes_append_valid_chunks_and_skip_what_the_file_holds(tmp_path: Path) -> None:
    entries = scenario()
    path = tmp_path / "books.beancount"
    connector = BeancountFileConnector(path, "USD")
    half = len(entries) // 2

    first = await connector.push(entries[:half])
    assert first.accepted == {e.entry_id for e in entries[:half]}
    second = await connector.push(entries)  # the first half again: not written twice
    assert second.accepted == {e.entry_id for e in entries}
    content = path.read_text()
    assert sorted(e.entry_id for e in entries) == sorted(
        line.split('"')[1] for line in content.splitlines() if "entry_id:" in line
    )
    assert content.count('option "operating_currency"') == 1
    bean_check(tmp_path, content, "copy.beancount")

    await connector.push(entries)
    assert path.read_text() == content
    assert connector.target == f"beancount-file:{path.resolve()}"


async def test_a_chunk_bean_check_refuses_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    entries = scenario()
    path = tmp_path / "books.beancount"
    connector = BeancountFileConnector(path, "USD")
    await connector.push(entries[:3])
    before = path.read_text()
    broken = entries[3]
    first = broken.lines[0]
    worse = replace(
        first, amount=first.amount + 100, functional_amount=first.functional_amount + 100
    )
    unbalanced = replace(broken, lines=(worse, *broken.lines[1:]))
    with pytest.raises(ConnectorRejected, match="bean-check refused"):
        await connector.push([unbalanced])
    assert path.read_text() == before
    assert _candidates(tmp_path) == []


def _candidates(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if "candidate" in p.name]


# ---------------------------------------------------------------------------- sync


@dataclass
class Flaky:
    """A connector that fails ``failures`` times, then accepts at most ``take`` per push."""

    failures: int = 0
    take: int | None = None
    pushed: list[str] = field(default_factory=list)
    calls: int = 0

    @property
    def target(self) -> str:
        return "memory:test"

    async def push(self, entries: Sequence[JournalEntry]) -> PushResult:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ConnectorError("connection reset")
        taken = list(entries)[: self.take] if self.take else list(entries)
        self.pushed += [e.entry_id for e in taken if e.entry_id not in self.pushed]
        return PushResult(frozenset(self.pushed))


async def _no_sleep(seconds: float) -> None:
    _SLEPT.append(seconds)


_SLEPT: list[float] = []


@pytest.fixture
def journal_ledger(
    reporting_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> JournalLedger:
    return JournalLedger(reporting_sessions, tenant)


async def _log(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[tuple]:  # type: ignore[type-arg]
    async with sessions() as session:
        rows = await session.execute(
            text(
                f"""SELECT from_position, to_position, entries, status, attempts, error
                    FROM {T.sync_log} WHERE tenant_id = :t ORDER BY sync_id"""
            ),
            {"t": tenant},
        )
        return [tuple(r) for r in rows]


@pytest.mark.integration
async def test_sync_pushes_in_batches_retries_and_logs(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = journal_ledger.tenant
    await run_scenario(journal_ledger)
    journal = await stored_journal(reporting_sessions, tenant)
    connector = Flaky(failures=2)
    _SLEPT.clear()

    result = await sync(
        reporting_sessions, T, tenant, connector, batch_size=5, backoff_seconds=0.1, sleep=_no_sleep
    )
    assert (result.status, result.entries, result.attempts, result.from_position) == (
        "succeeded",
        14,
        2 + 3,
        0,
    )
    assert _SLEPT == [0.1, 0.2]
    assert connector.pushed == [e.entry_id for e in journal]

    again = await sync(reporting_sessions, T, tenant, connector, sleep=_no_sleep)
    assert (again.entries, again.from_position, again.to_position) == (
        0,
        result.to_position,
        result.to_position,
    )
    log = await _log(reporting_sessions, tenant)
    assert [row[3] for row in log] == ["succeeded", "succeeded"]
    assert log[0][:3] == (0, result.to_position, 14)


@pytest.mark.integration
async def test_sync_advances_only_over_what_was_accepted(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = journal_ledger.tenant
    await run_scenario(journal_ledger)
    down = Flaky(failures=99)
    failed = await sync(reporting_sessions, T, tenant, down, max_attempts=3, sleep=_no_sleep)
    assert (failed.status, failed.entries, failed.attempts, failed.to_position) == (
        "failed",
        0,
        3,
        0,
    )
    assert failed.error == "connection reset"

    partial = Flaky(take=3)
    result = await sync(reporting_sessions, T, tenant, partial, batch_size=10, sleep=_no_sleep)
    assert result.status == "succeeded" and result.entries == 14
    assert partial.calls == 5  # 3 + 3 + 3 + 3 + 2
    log = await _log(reporting_sessions, tenant)
    assert [(row[3], row[5]) for row in log] == [
        ("failed", "connection reset"),
        ("succeeded", None),
    ]


@pytest.mark.integration
async def test_sync_to_a_beancount_file_is_incremental_and_valid(
    journal_ledger: JournalLedger,
    reporting_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    tenant = journal_ledger.tenant
    path = tmp_path / "books.beancount"
    connector = BeancountFileConnector(path, "EUR")
    await journal_ledger.deliver(
        journal_ledger.invoice_event(issued("c9", 1000, 190, "EUR", day(0)))
    )
    first = await sync(reporting_sessions, T, tenant, connector)
    assert first.entries == 1
    await run_scenario(journal_ledger)
    second = await sync(reporting_sessions, T, tenant, connector, batch_size=4)
    assert (second.entries, second.from_position) == (14, first.to_position)
    bean_check(tmp_path, path.read_text(), "copy.beancount")
    assert path.read_text().count("entry_id:") == 15
