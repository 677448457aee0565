"""Connectors push journal entries (payments included: a receipt, an allocation, a refund are
entries too) to an external accounting system; ``sync`` feeds one from the journal.

A connector is an adapter: ``target`` names where it writes (the cursor and the sync log are
kept per tenant and target) and ``push`` delivers a batch, idempotent by ``entry_id``, returning
the ids the system now holds (new or already there). QuickBooks or Xero would be one more class
with the same two members, calling their API instead of writing a file.

``sync`` is at-least-once: it reads the entries after the stored cursor, pushes them in
batches (transient failures retried with exponential backoff), and advances the cursor only
over what the connector accepted, in position order. A crash between a push and the cursor
update pushes the batch again, which the connector recognises. Every run is one
``ledger_sync_log`` row: positions covered, entries, attempts, status and the last error.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.application.ledger import cursor_position, page_after
from services.reporting.domain.ledger_exports import render_beancount
from services.reporting.domain.postings import JournalEntry
from services.reporting.projections.journal_store import LedgerTables, StoredEntry
from shared.contracts.fields import FIRST_DAY


class ConnectorError(Exception):
    """A push failed for a reason that may pass (network, lock, timeout): retried."""


class ConnectorRejected(ConnectorError):
    """The system refused the batch (invalid for it): retrying the same batch cannot help."""


@dataclass(frozen=True)
class PushResult:
    accepted: frozenset[str]
    """Entry ids the system holds after the push (new or already there)."""


class LedgerConnector(Protocol):
    @property
    def target(self) -> str:
        """Where it writes, e.g. ``beancount-file:/srv/books/acme.beancount``."""
        ...

    async def push(self, entries: Sequence[JournalEntry]) -> PushResult:
        """Deliver the entries; an entry already delivered is accepted without a duplicate."""
        ...


# ------------------------------------------------------------------ the Beancount file


def default_bean_check() -> Path:
    """The ``bean-check`` installed beside this interpreter (the project's venv), else PATH."""
    beside = Path(sys.executable).parent / "bean-check"
    if beside.exists():
        return beside
    found = shutil.which("bean-check")
    if found is None:
        raise FileNotFoundError("bean-check is not installed (pip install beancount)")
    return Path(found)


_ENTRY_ID: Final = re.compile(r'^\s+entry_id: "([^"]+)"', re.MULTILINE)
_OPEN: Final = re.compile(r"^\d{4}-\d{2}-\d{2} open (\S+)", re.MULTILINE)


@dataclass
class BeancountFileConnector:
    """Appends chunks to a Beancount ledger file, which stays valid: the file with the chunk is
    written beside it, ``bean-check`` must accept it, and only then does it replace the file
    (atomically); otherwise the file is untouched and the push is rejected. The entries already
    in the file (their ``entry_id`` metadata) and the accounts it opens are read from the file
    itself, so it needs no state of its own and may be edited by hand in between."""

    path: Path
    operating_currency: str
    bean_check: Path | None = None
    timeout_seconds: float = 120.0

    @property
    def target(self) -> str:
        return f"beancount-file:{self.path.resolve()}"

    async def push(self, entries: Sequence[JournalEntry]) -> PushResult:
        return await asyncio.to_thread(self._push, list(entries))

    def _push(self, entries: list[JournalEntry]) -> PushResult:
        with self._locked():
            existing = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            known = set(_ENTRY_ID.findall(existing))
            new = [e for e in entries if e.entry_id not in known]
            if new:
                chunk = render_beancount(
                    new,
                    operating_currency=self.operating_currency,
                    cursor=new[-1].entry_id,
                    already_open=frozenset(_OPEN.findall(existing)),
                    start_date=FIRST_DAY,
                )
                separator = "\n" if existing and not existing.endswith("\n\n") else ""
                self._replace_checked(existing + separator + chunk.text)
            return PushResult(frozenset(known | {e.entry_id for e in entries}))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two syncs of one file would lose an append)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ConnectorError(f"{self.path} is being written by another sync") from exc
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _replace_checked(self, content: str) -> None:
        candidate = self.path.with_name(f".{self.path.name}.{os.getpid()}.candidate")
        try:
            with candidate.open("w", encoding="utf-8") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            errors = self._check(candidate)
            if errors:
                raise ConnectorRejected(f"bean-check refused the ledger: {errors}")
            os.replace(candidate, self.path)
        finally:
            candidate.unlink(missing_ok=True)

    def _check(self, path: Path) -> str:
        """bean-check's complaints ('' when the ledger is valid)."""
        binary = self.bean_check or default_bean_check()
        try:
            result = subprocess.run(  # noqa: S603 (our own file, a fixed program)
                [str(binary), str(path)],
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ConnectorError(f"bean-check timed out after {self.timeout_seconds}s") from exc
        if result.returncode == 0:
            return ""
        return (result.stdout + result.stderr).strip()[-2000:] or f"exit {result.returncode}"


# ------------------------------------------------------------------------------ sync


@dataclass(frozen=True)
class SyncResult:
    sync_id: int
    target: str
    from_position: int
    to_position: int
    entries: int
    attempts: int
    status: str
    error: str | None = None


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Run:
    sync_id: int
    position: int
    entries: int = 0
    attempts: int = 0


async def sync(
    sessions: async_sessionmaker[AsyncSession],
    t: LedgerTables,
    tenant_id: str,
    connector: LedgerConnector,
    *,
    batch_size: int = 200,
    max_attempts: int = 4,
    backoff_seconds: float = 0.5,
    sleep: Sleep = asyncio.sleep,
) -> SyncResult:
    """Push every entry after the target's cursor; see the module docstring."""
    target = connector.target
    start, sync_id = await _begin(sessions, t, tenant_id, target)
    run = _Run(sync_id, start)
    error: str | None = None
    try:
        while True:
            async with sessions() as session:
                page = await page_after(session, t, tenant_id, run.position, batch_size)
            if not page.entries:
                break
            accepted = await _push(
                connector, page.entries, run, max_attempts, backoff_seconds, sleep
            )
            run.position = accepted[-1].position
            run.entries += len(accepted)
            await _advance(sessions, t, tenant_id, target, run)
    except ConnectorError as exc:
        error = str(exc) or type(exc).__name__
    except BaseException as exc:
        await _finish(sessions, t, run, "failed", repr(exc))
        raise
    status = "failed" if error else "succeeded"
    await _finish(sessions, t, run, status, error)
    return SyncResult(
        sync_id, target, start, run.position, run.entries, run.attempts, status, error
    )


async def _push(
    connector: LedgerConnector,
    stored: Sequence[StoredEntry],
    run: _Run,
    max_attempts: int,
    backoff_seconds: float,
    sleep: Sleep,
) -> list[StoredEntry]:
    """The accepted prefix of the batch (in position order), after retries."""
    for attempt in range(1, max_attempts + 1):
        run.attempts += 1
        try:
            result = await connector.push([s.entry for s in stored])
            prefix: list[StoredEntry] = []
            for item in stored:
                if item.entry.entry_id not in result.accepted:
                    break
                prefix.append(item)
            if prefix:
                return prefix
            failure: ConnectorError = ConnectorError("the connector accepted none of the batch")
        except ConnectorRejected:
            raise
        except (ConnectorError, OSError, TimeoutError) as exc:
            failure = exc if isinstance(exc, ConnectorError) else ConnectorError(repr(exc))
        if attempt == max_attempts:
            raise failure
        await sleep(backoff_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


async def _begin(
    sessions: async_sessionmaker[AsyncSession], t: LedgerTables, tenant_id: str, target: str
) -> tuple[int, int]:
    async with sessions() as session, session.begin():
        position = await cursor_position(session, t, tenant_id, target)
        sync_id = await session.scalar(
            text(
                f"""INSERT INTO {t.sync_log} (tenant_id, target, from_position, status)
                    VALUES (:t, :target, :p, 'running') RETURNING sync_id"""
            ),
            {"t": tenant_id, "target": target, "p": position},
        )
    return position, int(sync_id)


async def _advance(
    sessions: async_sessionmaker[AsyncSession],
    t: LedgerTables,
    tenant_id: str,
    target: str,
    run: _Run,
) -> None:
    """Cursor and log move together; the cursor never moves back."""
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                f"""UPDATE {t.cursors} SET position = GREATEST(position, :p), updated_at = now()
                    WHERE tenant_id = :t AND target = :target"""
            ),
            {"t": tenant_id, "target": target, "p": run.position},
        )
        await session.execute(
            text(
                f"""UPDATE {t.sync_log} SET to_position = :p, entries = :n, attempts = :a
                    WHERE sync_id = :id"""
            ),
            {"p": run.position, "n": run.entries, "a": run.attempts, "id": run.sync_id},
        )


async def _finish(
    sessions: async_sessionmaker[AsyncSession],
    t: LedgerTables,
    run: _Run,
    status: str,
    error: str | None,
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                f"""UPDATE {t.sync_log} SET status = :s, error = :e, attempts = :a,
                        entries = :n, finished_at = now()
                    WHERE sync_id = :id"""
            ),
            {"s": status, "e": error, "a": run.attempts, "n": run.entries, "id": run.sync_id},
        )
