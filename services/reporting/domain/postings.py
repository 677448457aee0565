"""The posting projection: every financial event becomes balanced double-entry journal entries.

Pure: no I/O, no clock. The caller passes the tenant's functional currency, a rate lookup and the
``Books`` (what earlier entries of the same invoice or payment established); ``Books`` is itself a
fold of journal entries, so a projection can rebuild it from its own journal rows.

Accounting decisions (the chart is ``DEFAULT_CHART``; roles are ``AccountRole``):

* ``InvoiceIssued``: Dr Receivables (total) / Cr Revenue (subtotal) / Cr TaxPayable (tax_total).
  The event carries the tax total only, so tax is one line, not one per tax code.
* ``CreditNoteIssued``: Dr SalesReturns (contra revenue) and Dr TaxPayable / Cr Receivables. The
  note is split between net and tax in the invoice's subtotal : tax_total proportion (largest
  remainder, exact), because a credit note gives back the tax charged on what it credits.
* ``LateFeeCharged``: Dr Receivables / Cr LateFees (a debit note; no tax on fees).
  ``LateFeeAssessed`` (dunning's decision) posts nothing: the invoice's charge is the fact.
* ``InvoiceWrittenOff``: Dr BadDebt / Cr Receivables for the whole open amount (gross; recovering
  output tax on bad debts is jurisdiction-specific and left to the accountant).
* ``InvoiceVoided``: the exact reversal of everything the invoice's own stream posted (issue and
  late fees; a void is only allowed while nothing was paid, credited or written off).
* ``PaymentReceived``: Dr Bank / Cr UnappliedCash (a liability: cash we hold for the customer
  until it is applied). Over-payments simply stay there; ``PaymentRefunded`` and
  ``PaymentReversed`` (chargeback, bounced) take it back out: Dr UnappliedCash / Cr Bank.
* Cash application goes through ``CashApplicationClearing``, because it is recorded twice, on
  two topics that arrive in any order: ``PaymentAllocated`` (payments) posts Dr UnappliedCash /
  Cr Clearing, ``PaymentApplied`` (invoice) posts Dr Clearing / Cr Receivables, plus its
  early-payment discount as Dr Discounts / Cr Receivables. Each half needs only its own stream, so
  posting never waits for the other topic, and a clearing balance other than zero shows an
  allocation that one side has not (or not yet) recorded. ``PaymentApplicationRejected`` posts
  nothing: payments answers it with ``PaymentUnallocated``. ``PaymentUnallocated`` and
  ``PaymentUnapplied`` are the exact reversals of the half they undo (allocations are only ever
  taken back whole).
* Period-end revaluation of open foreign items (unrealized FX, reversed the next day) is not
  an event's posting: ``revaluation.py`` builds it, and ``Books`` ignores those entries, so
  every posting here keeps relieving the original carrying values.
* Disputes, promises, reminders, statements, credit limits and every other event post nothing
  (``NON_POSTING``): they move no money between accounts.

Currencies. Every line has an amount in its transaction currency and one in the functional
currency. Rates are units of functional currency per unit of the other (``RateLookup``), applied
half up. An invoice's receivable is carried at its issue-date rate and a payment's unapplied cash
at its receipt-date rate; every later entry of the same document relieves that carrying value
(proportionally, and the remainder exactly when the balance is cleared), so a settled document
leaves nothing behind in functional currency either. Revenue-side lines of credit notes, fees,
discounts and write-offs use the invoice's rate (they adjust the original sale); refunds and
reversals use the payment's rate (they undo the receipt). Rounding one line at a time can leave a
minor unit over: it goes to the FX rounding account. The clearing account is valued at the
invoice currency's rate on the allocation date (both halves carry that date), so the difference
between the cash's carrying value and the receivable's is the realized FX gain or loss, split
between the two halves. ``PaymentAllocated.rate`` is the invoice-to-payment cross rate: it is not
used for valuation, because ``PaymentApplied`` cannot see it and both halves of the clearing must
agree. An allocation across two currencies also passes through the ``CurrencyConversions``
trading account, so that every entry balances in each currency on its own.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Final

from shared.contracts import invoice as inv
from shared.contracts import payments as pay
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload, registry
from shared.money import Money, Rounding

__all__ = [
    "DEFAULT_CHART",
    "NON_POSTING",
    "POSTING_EVENT_TYPES",
    "AccountRole",
    "Balance",
    "Books",
    "ChartOfAccounts",
    "DocumentBook",
    "EventMeta",
    "JournalEntry",
    "JournalLine",
    "MissingDocument",
    "RateLookup",
    "UnbalancedEntry",
    "assert_balanced",
    "postings_for",
    "postings_for_envelope",
    "receivables_by_customer",
    "trial_balance",
    "unbalanced_reasons",
]

RateLookup = Callable[[str, date], Decimal]
"""``(currency, day) -> units of functional currency per one unit of currency``."""


class MissingDocument(LookupError):
    """The event refers to an invoice, payment or allocation whose earlier entries are not in
    the ``Books``: the caller should retry once the document's stream has caught up."""

    def __init__(self, kind: str, ident: uuid.UUID) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"no posted {kind} {ident} in the books")


class UnbalancedEntry(AssertionError):
    """An entry (or the journal) whose debits and credits differ: always a bug."""


# ------------------------------------------------------------------ chart of accounts


class AccountRole(StrEnum):
    RECEIVABLES = "receivables"
    BANK = "bank"
    CLEARING = "cash_application_clearing"
    UNAPPLIED_CASH = "unapplied_cash"
    REVENUE = "revenue"
    SALES_RETURNS = "sales_returns"
    TAX_PAYABLE = "tax_payable"
    LATE_FEES = "late_fees"
    DISCOUNTS = "discounts"
    BAD_DEBT = "bad_debt"
    FX_GAIN = "fx_gain"
    FX_LOSS = "fx_loss"
    FX_ROUNDING = "fx_rounding"
    FX_UNREALIZED_GAIN = "fx_unrealized_gain"
    FX_UNREALIZED_LOSS = "fx_unrealized_loss"
    CONVERSIONS = "currency_conversions"


@dataclass(frozen=True)
class ChartOfAccounts:
    """Account names per role. Names are Beancount-valid (``Type:Component``), which is also the
    ``Parent:Sub`` form QuickBooks imports by name."""

    names: Mapping[AccountRole, str]

    def __post_init__(self) -> None:
        missing = [role.value for role in AccountRole if role not in self.names]
        if missing:
            raise ValueError(f"chart of accounts lacks roles: {', '.join(missing)}")

    def __getitem__(self, role: AccountRole) -> str:
        return self.names[role]


DEFAULT_CHART: Final = ChartOfAccounts(
    MappingProxyType(
        {
            AccountRole.RECEIVABLES: "Assets:AccountsReceivable",
            AccountRole.BANK: "Assets:Bank",
            AccountRole.CLEARING: "Assets:CashApplicationClearing",
            AccountRole.UNAPPLIED_CASH: "Liabilities:UnappliedCash",
            AccountRole.TAX_PAYABLE: "Liabilities:TaxPayable",
            AccountRole.REVENUE: "Income:Sales",
            AccountRole.SALES_RETURNS: "Income:SalesReturns",
            AccountRole.LATE_FEES: "Income:LateFees",
            AccountRole.FX_GAIN: "Income:FX:RealizedGain",
            AccountRole.DISCOUNTS: "Expenses:Discounts",
            AccountRole.BAD_DEBT: "Expenses:BadDebt",
            AccountRole.FX_LOSS: "Expenses:FX:RealizedLoss",
            AccountRole.FX_ROUNDING: "Expenses:FX:Rounding",
            AccountRole.FX_UNREALIZED_GAIN: "Income:FX:UnrealizedGain",
            AccountRole.FX_UNREALIZED_LOSS: "Expenses:FX:UnrealizedLoss",
            AccountRole.CONVERSIONS: "Equity:CurrencyConversions",
        }
    )
)


# ------------------------------------------------------------------------ the journal


@dataclass(frozen=True)
class JournalLine:
    """One posting. Amounts are signed minor units (debit positive, credit negative) so that
    sums are plain additions; ``debit``/``credit`` give the usual two columns. A line with a zero
    ``amount`` and a non-zero ``functional_amount`` exists only in the functional currency (FX
    differences and rounding)."""

    role: AccountRole
    account: str
    currency: str
    amount: int
    functional_amount: int

    def __post_init__(self) -> None:
        if (
            self.amount
            and self.functional_amount
            and (self.amount > 0) != (self.functional_amount > 0)
        ):
            raise ValueError(f"line on {self.account}: the two amounts have opposite signs")

    @property
    def debit(self) -> int:
        return max(self.amount, 0)

    @property
    def credit(self) -> int:
        return max(-self.amount, 0)

    @property
    def functional_debit(self) -> int:
        return max(self.functional_amount, 0)

    @property
    def functional_credit(self) -> int:
        return max(-self.functional_amount, 0)

    def negated(self) -> JournalLine:
        return replace(self, amount=-self.amount, functional_amount=-self.functional_amount)


@dataclass(frozen=True)
class JournalEntry:
    """One balanced journal entry. ``entry_id`` is ``<source event_id>:<kind>``, so posting the
    same event again yields the same ids (an upsert, never a duplicate). ``rate`` valued the
    entry's document-currency lines (1 in the functional currency)."""

    entry_id: str
    kind: str
    tenant_id: str
    date: date
    source_event_id: uuid.UUID
    source_event_type: str
    customer_id: str | None
    narration: str
    functional_currency: str
    rate: Decimal
    lines: tuple[JournalLine, ...]
    invoice_id: uuid.UUID | None = None
    payment_id: uuid.UUID | None = None
    allocation_id: uuid.UUID | None = None
    document_number: str | None = None

    def negated(self, **changes: Any) -> JournalEntry:
        lines = tuple(line.negated() for line in self.lines)
        return replace(self, lines=lines, **changes)


@dataclass(frozen=True)
class EventMeta:
    """The envelope fields a posting needs."""

    event_id: uuid.UUID
    tenant_id: str
    customer_id: str | None = None
    occurred_at: datetime | None = None

    @classmethod
    def of(cls, envelope: EventEnvelope) -> EventMeta:
        return cls(
            event_id=envelope.event_id,
            tenant_id=envelope.tenant_id,
            customer_id=envelope.customer_id,
            occurred_at=envelope.occurred_at,
        )


# -------------------------------------------------------------------------- the books

Balance = tuple[int, int]
"""``(amount, functional_amount)``, signed minor units."""

_INVOICE_TYPES: Final = frozenset(
    {"InvoiceIssued", "CreditNoteIssued", "LateFeeCharged", "InvoiceWrittenOff", "InvoiceVoided"}
    | {"PaymentApplied", "PaymentUnapplied"}
)
_PAYMENT_TYPES: Final = frozenset(
    {"PaymentReceived", "PaymentAllocated", "PaymentUnallocated", "PaymentRefunded"}
    | {"PaymentReversed"}
)
POSTING_EVENT_TYPES: Final = _INVOICE_TYPES | _PAYMENT_TYPES

NON_POSTING: Final = frozenset(
    {
        # invoice: drafts, master data, status changes that follow money events, disputes
        # (their money moves only when a credit note resolves them), due-date moves.
        "InvoiceDrafted",
        "InvoiceDraftUpdated",
        "InvoicePaid",
        "InvoiceReopened",
        "InvoiceDueDateChanged",
        "PaymentApplicationRejected",
        "DisputeOpened",
        "DisputeResolved",
        "CustomerRegistered",
        "CustomerUpdated",
        "PaymentTermsTemplateDefined",
        # payments: statements confirm or create payments, which post themselves.
        "BankStatementImported",
        "StatementLineMatched",
        "StatementLineIgnored",
        # credit: limits, checks, holds and scores are memoranda, not money.
        "CreditLimitChanged",
        "CreditLimitChangeRequested",
        "CreditLimitChangeRejected",
        "CreditPolicyUpdated",
        "CreditCheckPassed",
        "CreditCheckFailed",
        "CreditReservationReleased",
        "CreditHoldPlaced",
        "CreditHoldReleased",
        "RiskScoreChanged",
        "CreditDefaultPolicySet",
        # dunning: the fee it assesses posts when the invoice charges it (LateFeeCharged).
        "DunningPolicyDefined",
        "DunningPolicyRemoved",
        "ReminderScheduled",
        "ReminderCancelled",
        "ReminderSent",
        "ReminderFailed",
        "LateFeeAssessed",
        "AccountEscalated",
        "PromiseToPayRecorded",
        "PromiseToPayKept",
        "PromiseToPayBroken",
        "DunningPaused",
        "DunningResumed",
    }
)


@dataclass(frozen=True)
class DocumentBook:
    """What an invoice's or a payment's own stream has posted: its currency and rate, and the
    balance per (role, currency) of its entries."""

    currency: str
    customer_id: str | None
    rate: Decimal
    number: str | None = None
    issued_net: int = 0
    issued_tax: int = 0
    balances: Mapping[tuple[AccountRole, str], Balance] = field(default_factory=dict)

    def balance(self, role: AccountRole) -> Balance:
        return self.balances.get((role, self.currency), (0, 0))

    def with_lines(self, lines: Iterable[JournalLine]) -> DocumentBook:
        balances = dict(self.balances)
        for line in lines:
            amount, functional = balances.get((line.role, line.currency), (0, 0))
            balances[line.role, line.currency] = (
                amount + line.amount,
                functional + line.functional_amount,
            )
        return replace(self, balances=balances)


@dataclass(frozen=True)
class Books:
    """The state postings need, folded from earlier entries (``Books().after(entries)``): per
    invoice and per payment its ``DocumentBook``, and per allocation the entries that applied or
    allocated it, so that taking it back reverses exactly what was posted."""

    invoices: Mapping[uuid.UUID, DocumentBook] = field(default_factory=dict)
    payments: Mapping[uuid.UUID, DocumentBook] = field(default_factory=dict)
    allocations: Mapping[tuple[str, uuid.UUID], tuple[JournalEntry, ...]] = field(
        default_factory=dict
    )

    def after(self, entries: Iterable[JournalEntry]) -> Books:
        invoices, payments = dict(self.invoices), dict(self.payments)
        allocations = dict(self.allocations)
        for entry in entries:
            if entry.source_event_type in _INVOICE_TYPES and entry.invoice_id is not None:
                _fold(invoices, entry.invoice_id, entry, "InvoiceIssued")
            if entry.source_event_type in _PAYMENT_TYPES and entry.payment_id is not None:
                _fold(payments, entry.payment_id, entry, "PaymentReceived")
            if entry.source_event_type in ("PaymentApplied", "PaymentAllocated"):
                assert entry.allocation_id is not None
                key = (entry.source_event_type, entry.allocation_id)
                allocations[key] = (*allocations.get(key, ()), entry)
        return Books(invoices, payments, allocations)

    def invoice(self, invoice_id: uuid.UUID) -> DocumentBook:
        book = self.invoices.get(invoice_id)
        if book is None:
            raise MissingDocument("invoice", invoice_id)
        return book

    def payment(self, payment_id: uuid.UUID) -> DocumentBook:
        book = self.payments.get(payment_id)
        if book is None:
            raise MissingDocument("payment", payment_id)
        return book


def _fold(
    books: dict[uuid.UUID, DocumentBook], key: uuid.UUID, entry: JournalEntry, opener: str
) -> None:
    book = books.get(key)
    if book is None:
        if entry.source_event_type != opener:
            return  # only reachable with a corrupted journal: the opener is always first
        book = DocumentBook(
            currency=entry.lines[0].currency,
            customer_id=entry.customer_id,
            rate=entry.rate,
            number=entry.document_number,
            issued_net=-_sum_role(entry.lines, AccountRole.REVENUE),
            issued_tax=-_sum_role(entry.lines, AccountRole.TAX_PAYABLE),
        )
    books[key] = book.with_lines(entry.lines)


def _sum_role(lines: Iterable[JournalLine], role: AccountRole) -> int:
    return sum(line.amount for line in lines if line.role is role)


# ---------------------------------------------------------------------- valuation


@dataclass(frozen=True)
class _Context:
    meta: EventMeta
    functional: str
    rates: RateLookup
    books: Books

    def rate(self, currency: str, on: date) -> Decimal:
        if currency == self.functional:
            return Decimal(1)
        rate = self.rates(currency, on)
        if rate <= 0:
            raise ValueError(f"exchange rate for {currency} on {on} must be positive, got {rate}")
        return rate

    def value(self, amount: int, currency: str, rate: Decimal) -> int:
        if currency == self.functional:
            return amount
        return (
            Money.of_minor(amount, currency).convert(self.functional, rate, Rounding.HALF_UP).amount
        )


def _round_half_up(value: Fraction) -> int:
    magnitude = abs(value)
    whole = magnitude.numerator // magnitude.denominator
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return whole if value >= 0 else -whole


def _relief(book: DocumentBook, role: AccountRole, amount: int, ctx: _Context) -> int:
    """The carrying value (functional) of ``amount`` taken out of a document's balance on
    ``role``: proportional, or all that is left when the balance is cleared."""
    open_amount, carrying = book.balance(role)
    sign = 1 if open_amount >= 0 else -1
    open_amount, carrying = sign * open_amount, sign * carrying
    if amount == open_amount:
        return carrying
    if 0 < amount < open_amount:
        return _round_half_up(Fraction(carrying * amount, open_amount))
    return ctx.value(amount, book.currency, book.rate)


# ------------------------------------------------------------------ building entries


@dataclass
class _Draft:
    """An entry being built: lines are added by role, then closed with an FX or rounding line."""

    chart: ChartOfAccounts
    currency: str
    functional: str
    lines: list[JournalLine] = field(default_factory=list)

    def add(self, role: AccountRole, amount: int, functional: int, currency: str = "") -> None:
        currency = currency or self.currency
        if amount or functional:
            self.lines.append(JournalLine(role, self.chart[role], currency, amount, functional))

    def close(self, fx: bool) -> tuple[JournalLine, ...]:
        """Put what the functional side lacks on FX gain/loss (``fx``) or on rounding."""
        residual = -sum(line.functional_amount for line in self.lines)
        if residual:
            role = AccountRole.FX_ROUNDING
            if fx:
                role = AccountRole.FX_GAIN if residual < 0 else AccountRole.FX_LOSS
            self.add(role, 0, residual, self._foreign_currency())
        return tuple(self.lines)

    def _foreign_currency(self) -> str:
        """A difference only arises from converting, so some line is in a foreign currency;
        the difference line goes there with a zero amount, so every currency still balances
        and functional-currency lines stay valued at themselves."""
        return next(x.currency for x in self.lines if x.currency != self.functional)


def _entry(
    ctx: _Context,
    event_type: str,
    kind: str,
    on: date,
    narration: str,
    lines: Sequence[JournalLine],
    rate: Decimal,
    customer_id: str | None,
    **refs: Any,
) -> JournalEntry:
    entry = JournalEntry(
        entry_id=f"{ctx.meta.event_id}:{kind}",
        kind=kind,
        tenant_id=ctx.meta.tenant_id,
        date=on,
        source_event_id=ctx.meta.event_id,
        source_event_type=event_type,
        customer_id=ctx.meta.customer_id or customer_id,
        narration=narration,
        functional_currency=ctx.functional,
        rate=rate,
        lines=tuple(lines),
        **refs,
    )
    reasons = unbalanced_reasons(entry)
    if reasons:
        raise UnbalancedEntry(f"{entry.entry_id}: {'; '.join(reasons)}")
    return entry


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _invoice_label(book: DocumentBook, invoice_id: uuid.UUID) -> str:
    return f"invoice {book.number or invoice_id}"


# ----------------------------------------------------------------- invoice stream


def _issued(p: inv.InvoiceIssued, ctx: _Context, chart: ChartOfAccounts) -> list[JournalEntry]:
    if p.total.amount != p.subtotal.amount + p.tax_total.amount:
        raise ValueError(f"invoice {p.number}: total is not subtotal + tax_total")
    rate = ctx.rate(p.currency, p.issue_date)
    draft = _Draft(chart, p.currency, ctx.functional)
    draft.lines.append(
        JournalLine(
            AccountRole.RECEIVABLES,
            chart[AccountRole.RECEIVABLES],
            p.currency,
            p.total.amount,
            ctx.value(p.total.amount, p.currency, rate),
        )
    )
    revenue = -p.subtotal.amount
    draft.lines.append(
        JournalLine(
            AccountRole.REVENUE,
            chart[AccountRole.REVENUE],
            p.currency,
            revenue,
            ctx.value(revenue, p.currency, rate),
        )
    )
    tax = -p.tax_total.amount
    draft.add(AccountRole.TAX_PAYABLE, tax, ctx.value(tax, p.currency, rate))
    lines = draft.close(fx=False)
    return [
        _entry(
            ctx,
            "InvoiceIssued",
            "issued",
            p.issue_date,
            f"Invoice {p.number} issued",
            lines,
            rate,
            p.customer_id,
            invoice_id=p.invoice_id,
            document_number=p.number,
        )
    ]


def _on_invoice(
    ctx: _Context,
    event_type: str,
    kind: str,
    invoice_id: uuid.UUID,
    on: date,
    narration: str,
    lines: Sequence[JournalLine],
    **refs: Any,
) -> JournalEntry:
    book = ctx.books.invoice(invoice_id)
    return _entry(
        ctx,
        event_type,
        kind,
        on,
        narration,
        lines,
        book.rate,
        book.customer_id,
        invoice_id=invoice_id,
        document_number=book.number,
        **refs,
    )


def _against_receivable(
    ctx: _Context,
    chart: ChartOfAccounts,
    book: DocumentBook,
    debits: Sequence[tuple[AccountRole, int]],
    fx: bool = False,
) -> tuple[JournalLine, ...]:
    """Debit ``debits`` (valued at the invoice's rate) and credit the receivable their total at
    its carrying value."""
    draft = _Draft(chart, book.currency, ctx.functional)
    for role, amount in debits:
        draft.add(role, amount, ctx.value(amount, book.currency, book.rate))
    total = sum(amount for _, amount in debits)
    draft.add(AccountRole.RECEIVABLES, -total, -_relief(book, AccountRole.RECEIVABLES, total, ctx))
    return draft.close(fx=fx)


def _credit_note(
    p: inv.CreditNoteIssued, ctx: _Context, chart: ChartOfAccounts
) -> list[JournalEntry]:
    book = ctx.books.invoice(p.invoice_id)
    net, tax = _net_and_tax(book, p.amount)
    lines = _against_receivable(
        ctx, chart, book, [(AccountRole.SALES_RETURNS, net), (AccountRole.TAX_PAYABLE, tax)]
    )
    label = f"Credit note {p.number or p.credit_note_id} on {_invoice_label(book, p.invoice_id)}"
    return [
        _on_invoice(
            ctx,
            "CreditNoteIssued",
            "credit_note",
            p.invoice_id,
            p.issued_on,
            f"{label}: {p.reason}",
            lines,
        )
    ]


def _net_and_tax(book: DocumentBook, amount: Money) -> tuple[int, int]:
    """Split a credit in the invoice's net : tax proportion as issued."""
    if book.issued_net <= 0 or book.issued_tax <= 0:
        return amount.amount, 0
    net, tax = amount.allocate([book.issued_net, book.issued_tax])
    return net.amount, tax.amount


def _late_fee(p: inv.LateFeeCharged, ctx: _Context, chart: ChartOfAccounts) -> list[JournalEntry]:
    book = ctx.books.invoice(p.invoice_id)
    value = ctx.value(p.amount.amount, book.currency, book.rate)
    draft = _Draft(chart, book.currency, ctx.functional)
    draft.add(AccountRole.RECEIVABLES, p.amount.amount, value)
    draft.add(AccountRole.LATE_FEES, -p.amount.amount, -value)
    label = f"Late fee {p.debit_note_number or p.fee_id} on {_invoice_label(book, p.invoice_id)}"
    return [
        _on_invoice(
            ctx,
            "LateFeeCharged",
            "late_fee",
            p.invoice_id,
            p.charged_on,
            f"{label}: {p.reason}",
            draft.close(fx=False),
        )
    ]


def _written_off(
    p: inv.InvoiceWrittenOff, ctx: _Context, chart: ChartOfAccounts
) -> list[JournalEntry]:
    book = ctx.books.invoice(p.invoice_id)
    lines = _against_receivable(ctx, chart, book, [(AccountRole.BAD_DEBT, p.amount.amount)])
    return [
        _on_invoice(
            ctx,
            "InvoiceWrittenOff",
            "write_off",
            p.invoice_id,
            p.written_off_on,
            f"{_capitalized(_invoice_label(book, p.invoice_id))} written off: {p.reason}",
            lines,
        )
    ]


def _voided(p: inv.InvoiceVoided, ctx: _Context, chart: ChartOfAccounts) -> list[JournalEntry]:
    """Reverse every balance the invoice's stream left, in both currencies, to the unit."""
    book = ctx.books.invoice(p.invoice_id)
    lines = [
        JournalLine(role, chart[role], currency, -amount, -functional)
        for (role, currency), (amount, functional) in sorted(book.balances.items())
        if amount or functional
    ]
    return [
        _on_invoice(
            ctx,
            "InvoiceVoided",
            "void",
            p.invoice_id,
            p.voided_on,
            f"{_capitalized(_invoice_label(book, p.invoice_id))} voided: {p.reason}",
            lines,
        )
    ]


def _applied(p: inv.PaymentApplied, ctx: _Context, chart: ChartOfAccounts) -> list[JournalEntry]:
    """Clear the allocation (valued at the day's rate) against the receivable (at its carrying
    value); the difference is realized FX. The discount follows as a second entry."""
    book = ctx.books.invoice(p.invoice_id)
    clearing_rate = ctx.rate(book.currency, p.applied_on)
    amount = p.amount.amount
    draft = _Draft(chart, book.currency, ctx.functional)
    draft.add(AccountRole.CLEARING, amount, ctx.value(amount, book.currency, clearing_rate))
    draft.add(
        AccountRole.RECEIVABLES, -amount, -_relief(book, AccountRole.RECEIVABLES, amount, ctx)
    )
    label = _invoice_label(book, p.invoice_id)
    refs: dict[str, Any] = {"payment_id": p.payment_id, "allocation_id": p.allocation_id}
    application = _on_invoice(
        ctx,
        "PaymentApplied",
        "applied",
        p.invoice_id,
        p.applied_on,
        f"Payment applied to {label}",
        draft.close(fx=True),
        **refs,
    )
    entries = [replace(application, rate=clearing_rate)]
    if p.discount_taken.amount:
        after = replace(ctx, books=ctx.books.after(entries))
        book = after.books.invoice(p.invoice_id)
        lines = _against_receivable(
            after, chart, book, [(AccountRole.DISCOUNTS, p.discount_taken.amount)]
        )
        entries.append(
            _on_invoice(
                after,
                "PaymentApplied",
                "discount",
                p.invoice_id,
                p.applied_on,
                f"Early-payment discount on {label}",
                lines,
                **refs,
            )
        )
    return entries


def _unapplied(
    p: inv.PaymentUnapplied, ctx: _Context, chart: ChartOfAccounts
) -> list[JournalEntry]:
    originals = ctx.books.allocations.get(("PaymentApplied", p.allocation_id))
    if not originals:
        raise MissingDocument("payment application", p.allocation_id)
    reason = f"Payment application reversed: {p.reason}"
    return [_reversal(ctx, "PaymentUnapplied", o, p.unapplied_on, reason) for o in originals]


def _reversal(
    ctx: _Context, event_type: str, original: JournalEntry, on: date, narration: str
) -> JournalEntry:
    kind = f"reverses_{original.kind}"
    reversed_entry = original.negated(
        entry_id=f"{ctx.meta.event_id}:{kind}",
        kind=kind,
        date=on,
        source_event_id=ctx.meta.event_id,
        source_event_type=event_type,
        narration=f"{narration} (reverses {original.entry_id})",
    )
    reasons = unbalanced_reasons(reversed_entry)
    if reasons:
        raise UnbalancedEntry(f"{reversed_entry.entry_id}: {'; '.join(reasons)}")
    return reversed_entry


# ----------------------------------------------------------------- payment stream


def _received(p: pay.PaymentReceived, ctx: _Context, chart: ChartOfAccounts) -> list[JournalEntry]:
    currency, amount = p.amount.currency, p.amount.amount
    rate = ctx.rate(currency, p.received_on)
    value = ctx.value(amount, currency, rate)
    lines = (
        JournalLine(AccountRole.BANK, chart[AccountRole.BANK], currency, amount, value),
        JournalLine(
            AccountRole.UNAPPLIED_CASH, chart[AccountRole.UNAPPLIED_CASH], currency, -amount, -value
        ),
    )
    narration = f"Payment received ({p.method}{f', {p.reference}' if p.reference else ''})"
    return [
        _entry(
            ctx,
            "PaymentReceived",
            "received",
            p.received_on,
            narration,
            lines,
            rate,
            p.customer_id,
            payment_id=p.payment_id,
        )
    ]


def _on_payment(
    ctx: _Context,
    event_type: str,
    kind: str,
    payment_id: uuid.UUID,
    on: date,
    narration: str,
    lines: Sequence[JournalLine],
    **refs: Any,
) -> JournalEntry:
    book = ctx.books.payment(payment_id)
    return _entry(
        ctx,
        event_type,
        kind,
        on,
        narration,
        lines,
        book.rate,
        book.customer_id,
        payment_id=payment_id,
        **refs,
    )


def _allocated(
    p: pay.PaymentAllocated, ctx: _Context, chart: ChartOfAccounts
) -> list[JournalEntry]:
    """Unapplied cash (at its carrying value) moves to the clearing account (at the invoice
    currency's rate of the day); across currencies via the conversions account."""
    book = ctx.books.payment(p.payment_id)
    paid, invoiced = p.payment_amount, p.amount
    cash_value = _relief(book, AccountRole.UNAPPLIED_CASH, paid.amount, ctx)
    clearing_rate = ctx.rate(invoiced.currency, p.allocated_on)
    clearing_value = ctx.value(invoiced.amount, invoiced.currency, clearing_rate)
    draft = _Draft(chart, book.currency, ctx.functional)
    draft.add(AccountRole.UNAPPLIED_CASH, paid.amount, cash_value)
    if paid.currency != invoiced.currency:
        # Both legs of the trade at one value, so the conversions account nets to zero in the
        # functional currency; a leg in the functional currency is valued at itself.
        traded = paid.amount if paid.currency == ctx.functional else clearing_value
        draft.add(AccountRole.CONVERSIONS, -paid.amount, -traded)
        draft.add(AccountRole.CONVERSIONS, invoiced.amount, traded, invoiced.currency)
    elif paid.amount != invoiced.amount:
        raise ValueError(f"allocation {p.allocation_id}: one currency, two different amounts")
    draft.add(AccountRole.CLEARING, -invoiced.amount, -clearing_value, invoiced.currency)
    entry = _on_payment(
        ctx,
        "PaymentAllocated",
        "allocated",
        p.payment_id,
        p.allocated_on,
        f"Payment allocated to invoice {p.invoice_id}",
        draft.close(fx=True),
        invoice_id=p.invoice_id,
        allocation_id=p.allocation_id,
    )
    return [replace(entry, rate=clearing_rate)]


def _unallocated(
    p: pay.PaymentUnallocated, ctx: _Context, chart: ChartOfAccounts
) -> list[JournalEntry]:
    originals = ctx.books.allocations.get(("PaymentAllocated", p.allocation_id))
    if not originals:
        raise MissingDocument("payment allocation", p.allocation_id)
    reason = f"Payment allocation taken back: {p.reason}"
    return [_reversal(ctx, "PaymentUnallocated", o, p.unallocated_on, reason) for o in originals]


def _paid_back(
    ctx: _Context,
    chart: ChartOfAccounts,
    event_type: str,
    kind: str,
    payment_id: uuid.UUID,
    amount: Money,
    on: date,
    narration: str,
) -> list[JournalEntry]:
    """Cash leaves the bank out of the customer's unapplied cash, both at the receipt's rate."""
    book = ctx.books.payment(payment_id)
    draft = _Draft(chart, book.currency, ctx.functional)
    draft.add(
        AccountRole.UNAPPLIED_CASH,
        amount.amount,
        _relief(book, AccountRole.UNAPPLIED_CASH, amount.amount, ctx),
    )
    draft.add(AccountRole.BANK, -amount.amount, -ctx.value(amount.amount, book.currency, book.rate))
    return [_on_payment(ctx, event_type, kind, payment_id, on, narration, draft.close(fx=False))]


def _refunded(p: pay.PaymentRefunded, ctx: _Context, chart: ChartOfAccounts) -> list[JournalEntry]:
    narration = f"Payment refunded: {p.reason}"
    return _paid_back(
        ctx, chart, "PaymentRefunded", "refund", p.payment_id, p.amount, p.refunded_on, narration
    )


def _reversed(p: pay.PaymentReversed, ctx: _Context, chart: ChartOfAccounts) -> list[JournalEntry]:
    narration = f"Payment reversed ({p.kind}): {p.reason}"
    return _paid_back(
        ctx, chart, "PaymentReversed", "reversal", p.payment_id, p.amount, p.reversed_on, narration
    )


# -------------------------------------------------------------------------- dispatch

_Poster = Callable[[Any, _Context, ChartOfAccounts], list[JournalEntry]]

_POSTERS: Final[Mapping[str, _Poster]] = MappingProxyType(
    {
        "InvoiceIssued": _issued,
        "CreditNoteIssued": _credit_note,
        "LateFeeCharged": _late_fee,
        "InvoiceWrittenOff": _written_off,
        "InvoiceVoided": _voided,
        "PaymentApplied": _applied,
        "PaymentUnapplied": _unapplied,
        "PaymentReceived": _received,
        "PaymentAllocated": _allocated,
        "PaymentUnallocated": _unallocated,
        "PaymentRefunded": _refunded,
        "PaymentReversed": _reversed,
    }
)
assert frozenset(_POSTERS) == POSTING_EVENT_TYPES


def postings_for(
    event_type: str,
    payload: EventPayload | Mapping[str, Any],
    meta: EventMeta,
    functional_currency: str,
    rates: RateLookup,
    books: Books | None = None,
    chart: ChartOfAccounts = DEFAULT_CHART,
) -> list[JournalEntry]:
    """The journal entries one event posts ([] for events that move no money).

    ``books`` must hold the earlier entries of the invoice or payment the event belongs to
    (its own stream, so they always precede it); ``MissingDocument`` says which is missing.
    A mapping payload is validated as the current schema version (upcast it first)."""
    poster = _POSTERS.get(event_type)
    if poster is None:
        return []
    if not isinstance(payload, EventPayload):
        payload = registry.spec(event_type).payload_model.model_validate(dict(payload))
    ctx = _Context(meta, functional_currency, rates, books or Books())
    return poster(payload, ctx, chart)


def postings_for_envelope(
    envelope: EventEnvelope,
    functional_currency: str,
    rates: RateLookup,
    books: Books | None = None,
    chart: ChartOfAccounts = DEFAULT_CHART,
) -> list[JournalEntry]:
    """``postings_for`` an envelope as read from a topic or store (upcast on the way)."""
    if envelope.event_type not in _POSTERS:
        return []
    payload = registry.decode(envelope)
    meta = EventMeta.of(envelope)
    return postings_for(
        envelope.event_type, payload, meta, functional_currency, rates, books, chart
    )


# ------------------------------------------------------------------------ validation


def unbalanced_reasons(entry: JournalEntry) -> list[str]:
    """Why an entry does not balance (empty when it does): per currency, in the functional
    currency, and functional-currency lines valued at themselves."""
    reasons = []
    per_currency: dict[str, int] = defaultdict(int)
    for line in entry.lines:
        per_currency[line.currency] += line.amount
        if line.currency == entry.functional_currency and line.amount != line.functional_amount:
            reasons.append(f"{line.account}: a {line.currency} line valued at something else")
    reasons += [f"{c} off by {total}" for c, total in sorted(per_currency.items()) if total]
    functional = sum(line.functional_amount for line in entry.lines)
    if functional:
        reasons.append(f"functional {entry.functional_currency} off by {functional}")
    return reasons


def assert_balanced(entries: Iterable[JournalEntry]) -> None:
    """Every entry balances, and so (therefore, but checked) does the whole journal."""
    entries = list(entries)
    problems = [
        f"{entry.entry_id}: {'; '.join(reasons)}"
        for entry in entries
        if (reasons := unbalanced_reasons(entry))
    ]
    currencies: dict[str, int] = defaultdict(int)
    functional: dict[str, int] = defaultdict(int)
    for entry in entries:
        functional[entry.functional_currency] += sum(x.functional_amount for x in entry.lines)
        for line in entry.lines:
            currencies[line.currency] += line.amount
    problems += [f"journal {c} off by {t}" for c, t in sorted(currencies.items()) if t]
    problems += [f"journal functional {c} off by {t}" for c, t in sorted(functional.items()) if t]
    if problems:
        raise UnbalancedEntry("\n".join(problems))


def trial_balance(entries: Iterable[JournalEntry]) -> dict[tuple[str, str], Balance]:
    """``(account, currency) -> (amount, functional amount)``, debit positive; all-zero rows
    are left out."""
    totals: dict[tuple[str, str], Balance] = {}
    for entry in entries:
        for line in entry.lines:
            amount, functional = totals.get((line.account, line.currency), (0, 0))
            totals[line.account, line.currency] = (
                amount + line.amount,
                functional + line.functional_amount,
            )
    return {key: value for key, value in sorted(totals.items()) if value != (0, 0)}


def receivables_by_customer(entries: Iterable[JournalEntry]) -> dict[tuple[str, str], Balance]:
    """The receivable per ``(customer, currency)``: what reconciles with the open invoices."""
    totals: dict[tuple[str, str], Balance] = {}
    for entry in entries:
        for line in entry.lines:
            if line.role is not AccountRole.RECEIVABLES:
                continue
            key = (entry.customer_id or "", line.currency)
            amount, functional = totals.get(key, (0, 0))
            totals[key] = (amount + line.amount, functional + line.functional_amount)
    return {key: value for key, value in sorted(totals.items()) if value != (0, 0)}
