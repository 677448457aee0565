"""Ledger reads: journal pages and exports after a cursor, the trial balance and the AR
reconciliation. Shared by the REST API and the ``ar ledger`` CLI; every query is per tenant.

Cursor semantics (docs/accounting.md): a journal position is a number that only grows per
tenant, and positions become visible in order (the journal projector serialises a tenant's
writers). ``after=N`` returns the entries with a position above N, oldest first; the answer's
``next_after`` is the last position returned (N when nothing was), to pass back next time. A
page is always the same bytes for the same ``after`` and ``limit`` once its entries exist.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.domain.ledger_exports import (
    XERO_DEFAULT_CODES,
    json_feed,
    render_beancount,
    render_quickbooks_csv,
    render_xero_csv,
)
from services.reporting.domain.postings import DEFAULT_CHART, AccountRole
from services.reporting.projections.journal_store import (
    LedgerTables,
    StoredEntry,
    accounts_used_up_to,
    configured_functional_currency,
    default_functional_currency,
    entries_after,
)
from shared.contracts.fields import FIRST_DAY

ExportFormat = Literal["beancount", "quickbooks", "xero", "json"]
EXPORT_FORMATS: Final[tuple[ExportFormat, ...]] = ("beancount", "quickbooks", "xero", "json")
_MEDIA: Final[dict[ExportFormat, str]] = {
    "beancount": "text/plain; charset=utf-8",
    "quickbooks": "text/csv; charset=utf-8",
    "xero": "text/csv; charset=utf-8",
    "json": "application/json",
}
AR_ACCOUNT: Final = DEFAULT_CHART[AccountRole.RECEIVABLES]


@dataclass(frozen=True)
class Page:
    entries: list[StoredEntry]
    after: int
    next_after: int
    has_more: bool


async def page_after(
    session: AsyncSession, t: LedgerTables, tenant_id: str, after: int, limit: int
) -> Page:
    stored = await entries_after(session, t, tenant_id, after, limit + 1)
    has_more = len(stored) > limit
    stored = stored[:limit]
    next_after = stored[-1].position if stored else after
    return Page(stored, after, next_after, has_more)


async def ledger_currency(session: AsyncSession, t: LedgerTables, tenant_id: str) -> str:
    """The functional currency the journal uses (or will use) for the tenant; reads only."""
    configured = await configured_functional_currency(session, t, tenant_id)
    return configured or await default_functional_currency(session, t, tenant_id)


def feed(page: Page) -> dict[str, Any]:
    """The JSON feed with each entry's position and the cursor to continue from."""
    document = json_feed([s.entry for s in page.entries], cursor=str(page.next_after))
    for stored, item in zip(page.entries, document["entries"], strict=True):
        item["position"] = stored.position
    document.update(after=page.after, next_after=page.next_after, has_more=page.has_more)
    return document


@dataclass(frozen=True)
class Export:
    body: str
    media_type: str
    page: Page


async def render_export(
    session: AsyncSession,
    t: LedgerTables,
    tenant_id: str,
    fmt: ExportFormat,
    after: int,
    limit: int,
) -> Export:
    """One export chunk. Beancount: with ``after`` = 0 the start of a file; otherwise a chunk
    to append, which opens only accounts that no entry up to ``after`` used (accounts open on
    the first business day, so an entry dated earlier than any before it still validates)."""
    page = await page_after(session, t, tenant_id, after, limit)
    entries = [s.entry for s in page.entries]
    if fmt == "beancount":
        currency = await ledger_currency(session, t, tenant_id)
        opened = await accounts_used_up_to(session, t, tenant_id, after) if after else frozenset()
        chunk = render_beancount(
            entries,
            operating_currency=currency,
            cursor=str(page.next_after),
            already_open=opened,
            start_date=FIRST_DAY,
        )
        body = chunk.text
    elif fmt == "quickbooks":
        names = await _customer_names(session, t, tenant_id, {e.customer_id for e in entries})
        body = render_quickbooks_csv(entries, names)
    elif fmt == "xero":
        body = render_xero_csv(entries, XERO_DEFAULT_CODES)
    else:
        body = json.dumps(feed(page), sort_keys=True, ensure_ascii=False, indent=1)
    return Export(body, _MEDIA[fmt], page)


async def _customer_names(
    session: AsyncSession, t: LedgerTables, tenant_id: str, ids: set[str | None]
) -> dict[str, str]:
    wanted = sorted(i for i in ids if i)
    if not wanted:
        return {}
    rows = await session.execute(
        text(
            f"""SELECT customer_id, name FROM {t.schema}.customers
                WHERE tenant_id = :t AND customer_id = ANY(:ids)"""
        ),
        {"t": tenant_id, "ids": wanted},
    )
    return {r.customer_id: r.name for r in rows}


# ---------------------------------------------------------------------------- trial balance


async def trial_balance(
    session: AsyncSession, t: LedgerTables, tenant_id: str, as_of: date
) -> dict[str, Any]:
    """Debits and credits per account and currency up to ``as_of`` (entry date), with totals
    per currency and in the functional currency; ``balanced`` says whether they agree."""
    rows = await session.execute(
        text(
            f"""SELECT l.account, l.currency,
                       SUM(GREATEST(l.amount_minor, 0)) AS debit,
                       SUM(GREATEST(-l.amount_minor, 0)) AS credit,
                       SUM(GREATEST(l.functional_minor, 0)) AS functional_debit,
                       SUM(GREATEST(-l.functional_minor, 0)) AS functional_credit
                FROM {t.lines} l JOIN {t.entries} e
                    ON e.tenant_id = l.tenant_id AND e.entry_id = l.entry_id
                WHERE e.tenant_id = :t AND e.entry_date <= :as_of
                GROUP BY l.account, l.currency ORDER BY l.account, l.currency"""
        ),
        {"t": tenant_id, "as_of": as_of},
    )
    accounts = []
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    functional = [0, 0]
    for r in rows:
        debit, credit = int(r.debit), int(r.credit)
        f_debit, f_credit = int(r.functional_debit), int(r.functional_credit)
        currency = r.currency.strip()
        accounts.append(
            {
                "account": r.account,
                "currency": currency,
                "debit_minor": debit,
                "credit_minor": credit,
                "balance_minor": debit - credit,
                "functional_debit_minor": f_debit,
                "functional_credit_minor": f_credit,
                "functional_balance_minor": f_debit - f_credit,
            }
        )
        totals[currency][0] += debit
        totals[currency][1] += credit
        functional[0] += f_debit
        functional[1] += f_credit
    per_currency = [
        {"currency": c, "debit_minor": d, "credit_minor": k, "difference_minor": d - k}
        for c, (d, k) in sorted(totals.items())
    ]
    balanced = functional[0] == functional[1] and all(
        x["difference_minor"] == 0 for x in per_currency
    )
    return {
        "as_of": as_of.isoformat(),
        "functional_currency": await ledger_currency(session, t, tenant_id),
        "accounts": accounts,
        "totals": per_currency,
        "functional_totals": {
            "debit_minor": functional[0],
            "credit_minor": functional[1],
            "difference_minor": functional[0] - functional[1],
        },
        "balanced": balanced,
    }


# --------------------------------------------------------------------------- reconciliation


async def reconciliation(
    session: AsyncSession, t: LedgerTables, tenant_id: str, as_of: date, today: date
) -> dict[str, Any]:
    """The AR subledger (each customer's receivable lines) against the AR control account
    (every line on the account, whoever it names), per currency; and, as of today, each
    customer's subledger against the aging's open items (the reporting projection, another
    consumer group: a difference can also be one of them lagging behind). ``differences``
    counts the rows that disagree."""
    subledger = await _subledger(session, t, tenant_id, as_of)
    control = await _control(session, t, tenant_id, as_of)
    with_aging = as_of >= today
    open_items = await _open_items(session, t, tenant_id) if with_aging else {}

    control_rows = []
    sub_totals: dict[str, int] = defaultdict(int)
    for (_, currency), (amount, _) in subledger.items():
        sub_totals[currency] += amount
    for currency in sorted(set(control) | set(sub_totals)):
        amount = control.get(currency, 0)
        control_rows.append(
            {
                "currency": currency,
                "control_minor": amount,
                "subledger_minor": sub_totals.get(currency, 0),
                "difference_minor": amount - sub_totals.get(currency, 0),
            }
        )
    customers = []
    for key in sorted(set(subledger) | set(open_items)):
        customer, currency = key
        amount, functional = subledger.get(key, (0, 0))
        aging = open_items.get(key, 0) if with_aging else None
        customers.append(
            {
                "customer_id": customer,
                "currency": currency,
                "subledger_minor": amount,
                "functional_minor": functional,
                "open_items_minor": aging,
                "difference_minor": amount - aging if aging is not None else 0,
            }
        )
    differences = sum(1 for r in control_rows if r["difference_minor"]) + sum(
        1 for r in customers if r["difference_minor"]
    )
    return {
        "as_of": as_of.isoformat(),
        "account": AR_ACCOUNT,
        "compared_with_aging": with_aging,
        "control": control_rows,
        "customers": customers,
        "differences": differences,
    }


async def _subledger(
    session: AsyncSession, t: LedgerTables, tenant_id: str, as_of: date
) -> dict[tuple[str, str], tuple[int, int]]:
    rows = await session.execute(
        text(
            f"""SELECT e.customer_id, l.currency, SUM(l.amount_minor) AS amount,
                       SUM(l.functional_minor) AS functional
                FROM {t.lines} l JOIN {t.entries} e
                    ON e.tenant_id = l.tenant_id AND e.entry_id = l.entry_id
                WHERE e.tenant_id = :t AND e.entry_date <= :as_of AND l.role = :role
                    AND e.customer_id IS NOT NULL
                GROUP BY e.customer_id, l.currency"""
        ),
        {"t": tenant_id, "as_of": as_of, "role": AccountRole.RECEIVABLES.value},
    )
    return {
        (r.customer_id, r.currency.strip()): (int(r.amount), int(r.functional))
        for r in rows
        if int(r.amount) or int(r.functional)
    }


async def _control(
    session: AsyncSession, t: LedgerTables, tenant_id: str, as_of: date
) -> dict[str, int]:
    rows = await session.execute(
        text(
            f"""SELECT l.currency, SUM(l.amount_minor) AS amount
                FROM {t.lines} l JOIN {t.entries} e
                    ON e.tenant_id = l.tenant_id AND e.entry_id = l.entry_id
                WHERE e.tenant_id = :t AND e.entry_date <= :as_of AND l.account = :account
                GROUP BY l.currency"""
        ),
        {"t": tenant_id, "as_of": as_of, "account": AR_ACCOUNT},
    )
    return {r.currency.strip(): int(r.amount) for r in rows if int(r.amount)}


async def _open_items(
    session: AsyncSession, t: LedgerTables, tenant_id: str
) -> dict[tuple[str, str], int]:
    rows = await session.execute(
        text(
            f"""SELECT customer_id, currency, SUM(undisputed_minor + disputed_minor) AS amount
                FROM {t.open_items} WHERE tenant_id = :t GROUP BY customer_id, currency"""
        ),
        {"t": tenant_id},
    )
    return {(r.customer_id, r.currency.strip()): int(r.amount) for r in rows if int(r.amount)}


# ------------------------------------------------------------------------------ sync log


async def cursor_position(
    session: AsyncSession, t: LedgerTables, tenant_id: str, target: str
) -> int:
    """Where the export or sync to ``target`` stands (a new target starts at 0)."""
    await session.execute(
        text(
            f"""INSERT INTO {t.cursors} (tenant_id, target) VALUES (:t, :target)
                ON CONFLICT DO NOTHING"""
        ),
        {"t": tenant_id, "target": target},
    )
    position = await session.scalar(
        text(f"SELECT position FROM {t.cursors} WHERE tenant_id = :t AND target = :target"),
        {"t": tenant_id, "target": target},
    )
    return int(position)


async def sync_runs(
    session: AsyncSession, t: LedgerTables, tenant_id: str, target: str | None, limit: int
) -> list[dict[str, Any]]:
    """The tenant's export and sync runs, newest first, with their cursors' positions."""
    rows = await session.execute(
        text(
            f"""SELECT l.sync_id, l.target, l.from_position, l.to_position, l.entries, l.status,
                       l.attempts, l.error, l.started_at, l.finished_at, c.position AS cursor
                FROM {t.sync_log} l LEFT JOIN {t.cursors} c
                    ON c.tenant_id = l.tenant_id AND c.target = l.target
                WHERE l.tenant_id = :t AND (CAST(:target AS text) IS NULL OR l.target = :target)
                ORDER BY l.sync_id DESC LIMIT :limit"""
        ),
        {"t": tenant_id, "target": target, "limit": limit},
    )
    return [
        {
            "sync_id": r.sync_id,
            "target": r.target,
            "from_position": r.from_position,
            "to_position": r.to_position,
            "entries": r.entries,
            "status": r.status,
            "attempts": r.attempts,
            "error": r.error,
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "cursor": r.cursor,
        }
        for r in rows
    ]
