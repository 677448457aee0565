"""Period-end revaluation of open foreign-currency items: unrealized FX, reversed next period.

Pure: no I/O, no clock. The caller passes the ``Books`` as of the period end (``books_as_of``),
the functional currency, the period-end date and a rate lookup.

Accounting decisions (docs/accounting.md, "Revaluation"):

* **What is revalued.** Monetary items carried in a foreign currency: each invoice's open
  receivable (``Assets:AccountsReceivable``) and each payment's unapplied cash
  (``Liabilities:UnappliedCash``), per document, at their carrying value in the ``Books``
  (issue- or receipt-date rate, less what later entries relieved). Revenue, tax and the other
  non-monetary lines are not revalued. A document whose open amount is zero (paid, credited,
  written off, voided) or that is in the functional currency is left out.
* **Rate.** The rate on the period-end date (the caller's lookup; the application takes the
  latest rate on or before it, as for every posting), applied half up like ``postings.py``.
* **One entry per document**, not per currency: the entry carries the document's customer,
  invoice or payment id and number, so the customer subledger (functional) and a drill-down
  show which document moved, and an entry id per document makes posting idempotent per
  document (a run after a back-dated invoice posts only that invoice).
* **Lines.** The document's account by the difference (revalued - carrying), the opposite on
  ``Income:FX:UnrealizedGain`` (a credit) or ``Expenses:FX:UnrealizedLoss`` (a debit). Both
  lines exist only in the functional currency, represented as ``postings.py`` represents FX and
  rounding lines: in the document's currency with a zero amount, so every entry balances per
  currency and in the functional currency. A zero difference posts nothing.
* **Reversal.** The exact negation, dated the day after the period end (the first day of the
  next period). So from then on the account is back at its carrying value, and a later
  payment realizes FX against the original carrying value exactly as without a revaluation;
  the P&L sees unrealized + realized = the total FX effect, each in its period.
* **Not in the Books.** Both entries have the source event type ``FxRevaluation``, which
  ``Books.after`` does not fold, so every posting (relief, void, realized FX) keeps working on
  the original carrying value, whether or not revaluation entries are among a document's rows.
* **Ids.** ``reval:<period_end>:<document id>`` and ``reval-reversal:<period_end>:<document
  id>``; the source event id is a UUIDv5 of the tenant and entry id. Running the same period
  again yields the same ids, so nothing new is posted (the store inserts ``ON CONFLICT DO
  NOTHING``); amounts already posted are never recomputed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final, Literal

from services.reporting.domain.postings import (
    DEFAULT_CHART,
    AccountRole,
    Books,
    ChartOfAccounts,
    DocumentBook,
    JournalEntry,
    JournalLine,
    RateLookup,
    UnbalancedEntry,
    unbalanced_reasons,
)
from shared.money import Money, Rounding

__all__ = [
    "REVALUATION_EVENT_TYPE",
    "REVALUATION_KIND",
    "REVERSAL_KIND",
    "DocumentKind",
    "OpenDocument",
    "Revaluation",
    "books_as_of",
    "entry_ids",
    "open_documents",
    "revaluations",
    "reversal_date",
]

REVALUATION_EVENT_TYPE: Final = "FxRevaluation"
"""The ``source_event_type`` of revaluation entries and their reversals: not an event on any
topic, and not one ``Books.after`` folds."""
REVALUATION_KIND: Final = "revaluation"
REVERSAL_KIND: Final = "revaluation_reversal"

_NAMESPACE: Final = uuid.UUID("6f0c1e52-52a4-4c5b-9a51-7d3f0e2a9b10")
"""Namespace of the UUIDv5 source event ids (fixed: changing it changes no id already posted,
but would give a second run different event ids)."""

DocumentKind = Literal["invoice", "payment"]
_ROLE_OF: Final[dict[DocumentKind, AccountRole]] = {
    "invoice": AccountRole.RECEIVABLES,
    "payment": AccountRole.UNAPPLIED_CASH,
}


@dataclass(frozen=True)
class OpenDocument:
    """A foreign-currency document with an open balance on its monetary account: ``amount``
    in its currency and ``carrying`` in the functional currency, both signed (debit positive,
    so unapplied cash is negative)."""

    kind: DocumentKind
    document_id: uuid.UUID
    customer_id: str | None
    number: str | None
    role: AccountRole
    currency: str
    amount: int
    carrying: int


@dataclass(frozen=True)
class Revaluation:
    """One document revalued: the rate, the value at it, and the two entries to post."""

    document: OpenDocument
    rate: Decimal
    revalued: int
    entry: JournalEntry
    reversal: JournalEntry

    @property
    def difference(self) -> int:
        """Functional change of the document's account (positive: a debit to it)."""
        return self.revalued - self.document.carrying


def reversal_date(period_end: date) -> date:
    """The first day of the next period."""
    return period_end + timedelta(days=1)


def entry_ids(period_end: date, document_id: uuid.UUID) -> tuple[str, str]:
    """The revaluation's and its reversal's entry ids: the same for every run of a period."""
    day = period_end.isoformat()
    return f"reval:{day}:{document_id}", f"reval-reversal:{day}:{document_id}"


def books_as_of(entries: Iterable[JournalEntry], day: date) -> Books:
    """The ``Books`` folded from the entries dated up to ``day`` (in the order given, which
    must be posting order): the documents' balances at the end of that day."""
    return Books().after(entry for entry in entries if entry.date <= day)


def open_documents(books: Books, functional_currency: str) -> list[OpenDocument]:
    """The documents with a non-zero open amount in a currency other than the functional one,
    invoices then payments, each ordered by id (so entries come out in a stable order)."""
    found: list[OpenDocument] = []
    shelves: tuple[tuple[DocumentKind, dict[uuid.UUID, DocumentBook]], ...] = (
        ("invoice", dict(books.invoices)),
        ("payment", dict(books.payments)),
    )
    for kind, shelf in shelves:
        role = _ROLE_OF[kind]
        for document_id in sorted(shelf):
            book = shelf[document_id]
            if book.currency == functional_currency:
                continue
            amount, carrying = book.balance(role)
            if amount == 0:
                continue
            found.append(
                OpenDocument(
                    kind,
                    document_id,
                    book.customer_id,
                    book.number,
                    role,
                    book.currency,
                    amount,
                    carrying,
                )
            )
    return found


def _value(amount: int, currency: str, functional: str, rate: Decimal) -> int:
    """The functional value at ``rate``, rounded half up like every posting."""
    return Money.of_minor(amount, currency).convert(functional, rate, Rounding.HALF_UP).amount


def revaluations(
    tenant_id: str,
    functional_currency: str,
    period_end: date,
    documents: Sequence[OpenDocument],
    rates: RateLookup,
    chart: ChartOfAccounts = DEFAULT_CHART,
) -> list[Revaluation]:
    """Revalue each open document at the period-end rate; documents whose value did not move
    are left out (nothing to post)."""
    out = []
    for document in documents:
        if document.currency == functional_currency or document.amount == 0:
            continue
        rate = rates(document.currency, period_end)
        if rate <= 0:
            raise ValueError(
                f"exchange rate for {document.currency} on {period_end} must be positive, "
                f"got {rate}"
            )
        revalued = _value(document.amount, document.currency, functional_currency, rate)
        difference = revalued - document.carrying
        if difference == 0:
            continue
        entry = _entry(
            tenant_id, functional_currency, period_end, document, rate, difference, chart
        )
        reversal = _reversal(entry, period_end, document.document_id)
        out.append(Revaluation(document, rate, revalued, entry, reversal))
    return out


def _entry(
    tenant_id: str,
    functional: str,
    period_end: date,
    document: OpenDocument,
    rate: Decimal,
    difference: int,
    chart: ChartOfAccounts,
) -> JournalEntry:
    counter = AccountRole.FX_UNREALIZED_GAIN if difference > 0 else AccountRole.FX_UNREALIZED_LOSS
    lines = (
        JournalLine(document.role, chart[document.role], document.currency, 0, difference),
        JournalLine(counter, chart[counter], document.currency, 0, -difference),
    )
    entry_id, _ = entry_ids(period_end, document.document_id)
    label = f"{document.kind} {document.number or document.document_id}"
    open_text = f"{Money.of_minor(abs(document.amount), document.currency).to_decimal():f}"
    entry = JournalEntry(
        entry_id=entry_id,
        kind=REVALUATION_KIND,
        tenant_id=tenant_id,
        date=period_end,
        source_event_id=uuid.uuid5(_NAMESPACE, f"{tenant_id}:{entry_id}"),
        source_event_type=REVALUATION_EVENT_TYPE,
        customer_id=document.customer_id,
        narration=(
            f"Unrealized FX on {label}: {open_text} {document.currency} open at {period_end}, "
            f"revalued at {rate:f}"
        ),
        functional_currency=functional,
        rate=rate,
        lines=lines,
        invoice_id=document.document_id if document.kind == "invoice" else None,
        payment_id=document.document_id if document.kind == "payment" else None,
        document_number=document.number,
    )
    _check(entry)
    return entry


def _reversal(entry: JournalEntry, period_end: date, document_id: uuid.UUID) -> JournalEntry:
    _, reversal_id = entry_ids(period_end, document_id)
    reversal = entry.negated(
        entry_id=reversal_id,
        kind=REVERSAL_KIND,
        date=reversal_date(period_end),
        source_event_id=uuid.uuid5(_NAMESPACE, f"{entry.tenant_id}:{reversal_id}"),
        narration=f"Reverses {entry.entry_id} (unrealized FX at {period_end})",
    )
    _check(reversal)
    return reversal


def _check(entry: JournalEntry) -> None:
    reasons = unbalanced_reasons(entry)
    if reasons:
        raise UnbalancedEntry(f"{entry.entry_id}: {'; '.join(reasons)}")
