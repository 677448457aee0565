"""Journal rows <-> ``JournalEntry``: where the journal lives and how it is read and written.

Shared by the journal projector (which rebuilds a document's ``Books`` from its own rows), the
ledger reads behind the REST API and CLI, and the connector sync. The journal tables are not
projection tables (see ``tables.PROJECTION_TABLES``): a projection rebuild leaves them alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.domain.postings import AccountRole, JournalEntry, JournalLine
from shared.db import checked_schema

DEFAULT_FUNCTIONAL_CURRENCY: Final = "EUR"
"""Used when a tenant has neither a ledger setting nor a reporting currency (docs/accounting.md)."""


@dataclass(frozen=True)
class LedgerTables:
    """Fully qualified names of the ledger tables (and the configuration tables they read)."""

    schema: str

    def __post_init__(self) -> None:
        checked_schema(self.schema)

    def _name(self, table: str) -> str:
        return f"{self.schema}.{table}"

    @property
    def entries(self) -> str:
        return self._name("journal_entries")

    @property
    def lines(self) -> str:
        return self._name("journal_lines")

    @property
    def settings(self) -> str:
        return self._name("ledger_settings")

    @property
    def cursors(self) -> str:
        return self._name("ledger_cursors")

    @property
    def sync_log(self) -> str:
        return self._name("ledger_sync_log")

    @property
    def fx_rates(self) -> str:
        return self._name("fx_rates")

    @property
    def tenant_settings(self) -> str:
        return self._name("tenant_settings")

    @property
    def open_items(self) -> str:
        return self._name("open_items")


@dataclass(frozen=True)
class StoredEntry:
    """An entry as read back, with its export position."""

    position: int
    entry: JournalEntry


# ----------------------------------------------------------------------- functional currency


async def configured_functional_currency(
    session: AsyncSession, t: LedgerTables, tenant_id: str
) -> str | None:
    value = await session.scalar(
        text(f"SELECT functional_currency FROM {t.settings} WHERE tenant_id = :t"),
        {"t": tenant_id},
    )
    return str(value) if value is not None else None


async def default_functional_currency(
    session: AsyncSession, t: LedgerTables, tenant_id: str, first_currency: str | None = None
) -> str:
    """The reporting currency if the tenant set one, else the currency of its first posted
    event (a business in one currency then needs no exchange rates), else
    ``DEFAULT_FUNCTIONAL_CURRENCY``."""
    value = await session.scalar(
        text(f"SELECT reporting_currency FROM {t.tenant_settings} WHERE tenant_id = :t"),
        {"t": tenant_id},
    )
    if value is not None:
        return str(value)
    return first_currency or DEFAULT_FUNCTIONAL_CURRENCY


async def functional_currency(
    session: AsyncSession, t: LedgerTables, tenant_id: str, first_currency: str | None = None
) -> str:
    """The tenant's functional currency, frozen on first use: a journal whose entries were
    valued in one currency cannot silently continue in another, so the default is written
    down the first time it is needed and later reporting-currency changes do not move it."""
    configured = await configured_functional_currency(session, t, tenant_id)
    if configured is not None:
        return configured
    default = await default_functional_currency(session, t, tenant_id, first_currency)
    await session.execute(
        text(
            f"""INSERT INTO {t.settings} (tenant_id, functional_currency, chosen_by)
                VALUES (:t, :c, 'default') ON CONFLICT (tenant_id) DO NOTHING"""
        ),
        {"t": tenant_id, "c": default},
    )
    chosen = await configured_functional_currency(session, t, tenant_id)
    assert chosen is not None
    return chosen


async def has_entries(session: AsyncSession, t: LedgerTables, tenant_id: str) -> bool:
    found = await session.scalar(
        text(f"SELECT 1 FROM {t.entries} WHERE tenant_id = :t LIMIT 1"), {"t": tenant_id}
    )
    return found is not None


# --------------------------------------------------------------------------------- writing


async def insert_entries(
    session: AsyncSession, t: LedgerTables, entries: Sequence[JournalEntry]
) -> int:
    """Insert entries with their lines; an entry already there (same ``entry_id``) is left as
    it is. Returns how many were new."""
    inserted = 0
    for entry in entries:
        row = await session.execute(
            text(
                f"""INSERT INTO {t.entries} (tenant_id, entry_id, kind, entry_date, event_id,
                        event_type, customer_id, invoice_id, payment_id, allocation_id,
                        document_number, narration, functional_currency, rate)
                    VALUES (:t, :entry_id, :kind, :on, :event_id, :event_type, :customer_id,
                        :invoice_id, :payment_id, :allocation_id, :number, :narration,
                        :functional, :rate)
                    ON CONFLICT (tenant_id, entry_id) DO NOTHING
                    RETURNING position"""
            ),
            {
                "t": entry.tenant_id,
                "entry_id": entry.entry_id,
                "kind": entry.kind,
                "on": entry.date,
                "event_id": entry.source_event_id,
                "event_type": entry.source_event_type,
                "customer_id": entry.customer_id,
                "invoice_id": entry.invoice_id,
                "payment_id": entry.payment_id,
                "allocation_id": entry.allocation_id,
                "number": entry.document_number,
                "narration": entry.narration,
                "functional": entry.functional_currency,
                "rate": entry.rate,
            },
        )
        if row.first() is None:
            continue
        inserted += 1
        await session.execute(
            text(
                f"""INSERT INTO {t.lines} (tenant_id, entry_id, line_no, role, account, currency,
                        amount_minor, functional_currency, functional_minor)
                    VALUES (:t, :entry_id, :no, :role, :account, :currency, :amount,
                        :functional, :functional_amount)"""
            ),
            [
                {
                    "t": entry.tenant_id,
                    "entry_id": entry.entry_id,
                    "no": no,
                    "role": line.role.value,
                    "account": line.account,
                    "currency": line.currency,
                    "amount": line.amount,
                    "functional": entry.functional_currency,
                    "functional_amount": line.functional_amount,
                }
                for no, line in enumerate(entry.lines, start=1)
            ],
        )
    return inserted


# --------------------------------------------------------------------------------- reading

_SELECT: Final = """
    SELECT e.position, e.entry_id, e.kind, e.entry_date, e.event_id, e.event_type, e.customer_id,
           e.invoice_id, e.payment_id, e.allocation_id, e.document_number, e.narration,
           e.functional_currency, e.rate,
           l.role, l.account, l.currency, l.amount_minor, l.functional_minor
    FROM {entries} e JOIN {lines} l ON l.tenant_id = e.tenant_id AND l.entry_id = e.entry_id
"""


def _fold_rows(tenant_id: str, rows: Iterable[Any]) -> list[StoredEntry]:
    """Rows ordered by position, line_no -> entries."""
    out: list[StoredEntry] = []
    head: Any = None
    lines: list[JournalLine] = []

    def close() -> None:
        if head is not None:
            out.append(StoredEntry(int(head.position), _entry(tenant_id, head, lines)))

    for row in rows:
        if head is None or row.position != head.position:
            close()
            head, lines = row, []
        lines.append(
            JournalLine(
                AccountRole(row.role),
                row.account,
                row.currency.strip(),
                int(row.amount_minor),
                int(row.functional_minor),
            )
        )
    close()
    return out


def _entry(tenant_id: str, row: Any, lines: list[JournalLine]) -> JournalEntry:
    return JournalEntry(
        entry_id=row.entry_id,
        kind=row.kind,
        tenant_id=tenant_id,
        date=row.entry_date,
        source_event_id=row.event_id,
        source_event_type=row.event_type,
        customer_id=row.customer_id,
        narration=row.narration,
        functional_currency=row.functional_currency.strip(),
        rate=Decimal(row.rate),
        lines=tuple(lines),
        invoice_id=row.invoice_id,
        payment_id=row.payment_id,
        allocation_id=row.allocation_id,
        document_number=row.document_number,
    )


async def document_entries(
    session: AsyncSession,
    t: LedgerTables,
    tenant_id: str,
    *,
    invoice_id: uuid.UUID | None = None,
    payment_id: uuid.UUID | None = None,
) -> list[JournalEntry]:
    """Every entry of one invoice or payment, in the order they were posted."""
    column, value = (
        ("invoice_id", invoice_id) if invoice_id is not None else ("payment_id", payment_id)
    )
    if value is None:
        return []
    rows = await session.execute(
        text(
            _SELECT.format(entries=t.entries, lines=t.lines)
            + f" WHERE e.tenant_id = :t AND e.{column} = :id ORDER BY e.position, l.line_no"
        ),
        {"t": tenant_id, "id": value},
    )
    return [stored.entry for stored in _fold_rows(tenant_id, rows)]


async def entries_after(
    session: AsyncSession, t: LedgerTables, tenant_id: str, after: int, limit: int
) -> list[StoredEntry]:
    """Up to ``limit`` entries with a position greater than ``after``, oldest first."""
    rows = await session.execute(
        text(
            _SELECT.format(entries=t.entries, lines=t.lines)
            + f""" WHERE e.tenant_id = :t AND e.position IN (
                    SELECT position FROM {t.entries}
                    WHERE tenant_id = :t AND position > :after ORDER BY position LIMIT :limit)
                  ORDER BY e.position, l.line_no"""
        ),
        {"t": tenant_id, "after": after, "limit": limit},
    )
    return _fold_rows(tenant_id, rows)


async def accounts_used_up_to(
    session: AsyncSession, t: LedgerTables, tenant_id: str, position: int
) -> frozenset[str]:
    """The accounts an export up to ``position`` has opened (Beancount opens on first use)."""
    rows = await session.scalars(
        text(
            f"""SELECT DISTINCT l.account FROM {t.lines} l JOIN {t.entries} e
                    ON e.tenant_id = l.tenant_id AND e.entry_id = l.entry_id
                WHERE e.tenant_id = :t AND e.position <= :p"""
        ),
        {"t": tenant_id, "p": position},
    )
    return frozenset(rows)
