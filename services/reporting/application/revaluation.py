"""Period-end revaluation of a tenant's open foreign-currency items (unrealized FX), posted into
the journal. Shared by ``POST /v1/ledger/revaluations`` and ``ar ledger revalue``.

The accounting is ``services/reporting/domain/revaluation.py``; this reads the open documents
as of the period end from the journal, values them at the period-end rates from ``fx_rates``
and inserts the entries through the journal store.

Concurrency: the whole run holds the tenant's journal advisory lock (the journal projector's),
taken before anything is read, so the balances it revalues are the ones its entries land on,
and positions stay visible in order for the export cursors. The caller runs it inside one
transaction (``async with session.begin()``): every entry of the run commits, or none.

Rates: the latest rate on or before the period end (as for every posting), but no older than
``RATE_MAX_AGE`` (a week: covers a weekend or holidays at the period end). An older rate means
the period-end rates were not loaded, and revaluing at, say, the issue-date rate would post
nothing and look done. A missing rate refuses the whole run (``MissingRevaluationRate``, a 422
naming currency and dates) before anything is posted: a partial revaluation would look complete
in the reports.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.domain.ledger_exports import json_feed
from services.reporting.domain.postings import AccountRole, JournalEntry
from services.reporting.domain.revaluation import (
    Revaluation,
    books_as_of,
    entry_ids,
    open_documents,
    revaluations,
    reversal_date,
)
from services.reporting.projections.journal import PAYMENT_STREAM_TYPES, journal_lock_key
from services.reporting.projections.journal_store import (
    LedgerTables,
    configured_functional_currency,
    document_entries,
    insert_entries,
)
from shared.contracts.fields import FIRST_DAY, LAST_DAY
from shared.errors import ValidationFailed

RATE_MAX_AGE: Final = timedelta(days=7)
"""How old the period-end rate may be (its ``rate_date`` before the period end)."""


class MissingRevaluationRate(ValidationFailed):
    """Some open document's currency has no rate on or before the period end: load it
    (``PUT /v1/fx-rates``) and run again. Nothing was posted."""

    code = "missing_rate"


@dataclass(frozen=True)
class RevaluationRun:
    """What a run found and posted. ``revaluations`` are the documents revalued by this run
    (with their entries, which ``posted`` lists in insertion order); ``already_revalued``
    counts open documents that an earlier run of the same period end had posted."""

    tenant_id: str
    period_end: date
    functional_currency: str | None
    open_documents: int
    already_revalued: int
    rates: dict[str, Decimal]
    revaluations: list[Revaluation]

    @property
    def posted(self) -> list[JournalEntry]:
        return [e for r in self.revaluations for e in (r.entry, r.reversal)]

    def as_json(self) -> dict[str, Any]:
        """The API's answer: amounts in signed minor units beside their currency."""
        return {
            "period_end": self.period_end.isoformat(),
            "reversal_date": reversal_date(self.period_end).isoformat(),
            "functional_currency": self.functional_currency,
            "open_documents": self.open_documents,
            "already_revalued": self.already_revalued,
            "rates": {c: format(r.normalize(), "f") for c, r in sorted(self.rates.items())},
            "revaluations": [
                {
                    "document": r.document.kind,
                    "document_id": str(r.document.document_id),
                    "document_number": r.document.number,
                    "customer_id": r.document.customer_id,
                    "account": r.entry.lines[0].account,
                    "currency": r.document.currency,
                    "open_minor": r.document.amount,
                    "rate": format(r.rate.normalize(), "f"),
                    "carrying_minor": r.document.carrying,
                    "revalued_minor": r.revalued,
                    "difference_minor": r.difference,
                    "entry_id": r.entry.entry_id,
                    "reversal_entry_id": r.reversal.entry_id,
                }
                for r in self.revaluations
            ],
            "posted": json_feed(self.posted, cursor="")["entries"],
        }


def validate_period_end(period_end: date, today: date) -> None:
    """A period that has ended (today's included: it ends tonight, and running it again
    later posts what was missed), within the dates the contracts allow, with room for the
    reversal on the next day."""
    if not FIRST_DAY <= period_end < LAST_DAY:
        raise ValidationFailed(
            f"period_end must be between {FIRST_DAY} and {LAST_DAY} (exclusive)",
            {"period_end": period_end.isoformat()},
        )
    if period_end > today:
        raise ValidationFailed(
            "period_end is in the future: a period is revalued once it has ended",
            {"period_end": period_end.isoformat(), "today": today.isoformat()},
        )


async def revalue(
    session: AsyncSession, t: LedgerTables, tenant_id: str, period_end: date
) -> RevaluationRun:
    """Revalue the tenant's open foreign receivables and unapplied cash at ``period_end`` and
    post the entries with their reversals; documents already revalued for that period end are
    left as they are (a second run posts nothing). Call inside a transaction."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": journal_lock_key(t.schema, tenant_id)},
    )
    functional = await configured_functional_currency(session, t, tenant_id)
    if functional is None:  # frozen on the first posting: no entries, nothing to revalue
        return RevaluationRun(tenant_id, period_end, None, 0, 0, {}, [])

    entries: list[JournalEntry] = []
    for kind, document_id in await _candidates(session, t, tenant_id, functional, period_end):
        # Only the document's own stream: an allocation names both the payment and the
        # invoice, and must be folded once, into the payment.
        if kind == "invoice":
            history = await document_entries(session, t, tenant_id, invoice_id=document_id)
            entries += [e for e in history if e.source_event_type not in PAYMENT_STREAM_TYPES]
        else:
            history = await document_entries(session, t, tenant_id, payment_id=document_id)
            entries += [e for e in history if e.source_event_type in PAYMENT_STREAM_TYPES]
    documents = open_documents(books_as_of(entries, period_end), functional)

    done = await _existing(
        session, t, tenant_id, [entry_ids(period_end, d.document_id)[0] for d in documents]
    )
    todo = [d for d in documents if entry_ids(period_end, d.document_id)[0] not in done]
    rates = await _rates(session, t, tenant_id, functional, period_end, {d.currency for d in todo})
    found = revaluations(
        tenant_id, functional, period_end, todo, lambda currency, _: rates[currency]
    )
    run = RevaluationRun(
        tenant_id, period_end, functional, len(documents), len(documents) - len(todo), rates, found
    )
    await insert_entries(session, t, run.posted)
    return run


async def _candidates(
    session: AsyncSession, t: LedgerTables, tenant_id: str, functional: str, period_end: date
) -> list[tuple[str, uuid.UUID]]:
    """Documents with a foreign open balance at the period end, found in SQL so that only
    their entries are read: receivable lines belong to invoice streams, unapplied-cash lines
    to payment streams. The domain recomputes the balances from the entries (the source of
    truth); this only narrows the read."""
    rows = await session.execute(
        text(
            f"""SELECT CASE WHEN l.role = :receivables THEN 'invoice' ELSE 'payment' END AS kind,
                       CASE WHEN l.role = :receivables THEN e.invoice_id ELSE e.payment_id END
                           AS document_id
                FROM {t.lines} l JOIN {t.entries} e
                    ON e.tenant_id = l.tenant_id AND e.entry_id = l.entry_id
                WHERE l.tenant_id = :t AND e.entry_date <= :on AND l.currency <> :functional
                    AND l.role IN (:receivables, :unapplied)
                GROUP BY 1, 2
                HAVING SUM(l.amount_minor) <> 0
                ORDER BY 1, 2"""
        ),
        {
            "t": tenant_id,
            "on": period_end,
            "functional": functional,
            "receivables": AccountRole.RECEIVABLES.value,
            "unapplied": AccountRole.UNAPPLIED_CASH.value,
        },
    )
    return [(str(r.kind), r.document_id) for r in rows if r.document_id is not None]


async def _existing(
    session: AsyncSession, t: LedgerTables, tenant_id: str, ids: list[str]
) -> set[str]:
    if not ids:
        return set()
    found = await session.scalars(
        text(f"SELECT entry_id FROM {t.entries} WHERE tenant_id = :t AND entry_id = ANY(:ids)"),
        {"t": tenant_id, "ids": ids},
    )
    return set(found)


async def _rates(
    session: AsyncSession,
    t: LedgerTables,
    tenant_id: str,
    functional: str,
    on: date,
    currencies: set[str],
) -> dict[str, Decimal]:
    """The latest rate on or before ``on`` (and at most ``RATE_MAX_AGE`` older) per currency;
    all missing ones named at once."""
    rates: dict[str, Decimal] = {}
    for currency in sorted(currencies):
        rate = await session.scalar(
            text(
                f"""SELECT rate FROM {t.fx_rates}
                    WHERE tenant_id = :t AND currency = :c AND to_currency = :to
                        AND rate_date <= :on AND rate_date >= :since
                    ORDER BY rate_date DESC LIMIT 1"""
            ),
            {"t": tenant_id, "c": currency, "to": functional, "on": on, "since": on - RATE_MAX_AGE},
        )
        if rate is not None:
            rates[currency] = Decimal(rate)
    missing = sorted(currencies - set(rates))
    if missing:
        pairs = ", ".join(f"{c}->{functional}" for c in missing)
        raise MissingRevaluationRate(
            f"no {pairs} rate dated between {(on - RATE_MAX_AGE).isoformat()} and "
            f"{on.isoformat()}: load the period-end rate (PUT /v1/fx-rates) and run the "
            "revaluation again; nothing was posted",
            {
                "currencies": missing,
                "to_currency": functional,
                "on_or_before": on.isoformat(),
                "not_before": (on - RATE_MAX_AGE).isoformat(),
            },
        )
    return rates
