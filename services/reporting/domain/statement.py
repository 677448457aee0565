"""A customer's statement of account: opening balance, the dated movements of a period with a
running balance, the closing balance and its aging.

Pure: the application reads the movements and the invoices' positions from the projections and
hands them here. A movement's amount is signed from the customer's side of the account: > 0
raises what the customer owes (a debit: an invoice, a late fee, a refunded or bounced payment),
< 0 lowers it (a credit: a payment received, a credit note, a discount, a write-off, a void).
Payments are shown when the money was received, not when it was applied to invoices, so
money received but not yet applied still lowers the balance; the aging summary shows it as
`on_account`, which is what makes the buckets add up to the closing balance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from services.reporting.domain.aging import (
    Basis,
    Bucket,
    InvoicePosition,
    age,
    buckets_for,
    open_portions,
)

DISPUTED = "disputed"
ON_ACCOUNT = "on_account"

# Within one day: what raised the balance first, then what lowered it (a statement reads that
# way and the order is total, so the same data always gives the same lines).
KIND_ORDER: Mapping[str, int] = {
    "invoice": 0,
    "late_fee": 1,
    "refund": 2,
    "reversal": 3,
    "payment": 4,
    "credit_note": 5,
    "discount": 6,
    "write_off": 7,
    "void": 8,
}

_RETURNS = {
    "chargeback": "Payment charged back",
    "bounced": "Payment bounced",
    "returned": "Payment returned",
    "other": "Payment reversed",
}


@dataclass(frozen=True)
class Movement:
    """A fact as the projections hold it, before it is described for the customer.

    `reference` is the document's own number: the invoice's, the credit note's, the payer's
    reference of a payment. `detail` is kind-specific: the payment method of a payment, the
    return kind of a reversal, the invoice number of a credit note that has its own number.
    `key` is unique per movement (its event or obligation id): the last sort key.
    """

    on: date
    currency: str
    kind: str
    amount: int
    document_id: str
    key: str
    reference: str | None = None
    due_date: date | None = None
    detail: str | None = None


@dataclass(frozen=True)
class StatementLine:
    date: date
    kind: str
    document_id: str
    reference: str | None
    description: str
    debit: int
    credit: int
    balance: int


@dataclass(frozen=True)
class CurrencyStatement:
    currency: str
    opening_balance: int
    lines: tuple[StatementLine, ...]
    debits: int
    credits: int
    closing_balance: int
    aging: dict[str, int]


@dataclass(frozen=True)
class Statement:
    customer_id: str
    customer_name: str | None
    from_date: date
    to_date: date
    currencies: tuple[CurrencyStatement, ...] = field(default_factory=tuple)


def describe(m: Movement) -> str:
    """The line's text as a customer reads it."""
    ref = m.reference or m.document_id
    match m.kind:
        case "invoice":
            due = f", due {m.due_date.isoformat()}" if m.due_date is not None else ""
            return f"Invoice {ref}{due}"
        case "late_fee":
            return f"Late fee on invoice {ref}"
        case "payment":
            method = (m.detail or "").replace("_", " ")
            return f"Payment received ({method})" if method else "Payment received"
        case "refund":
            return "Payment refunded"
        case "reversal":
            return _RETURNS.get(m.detail or "other", "Payment reversed")
        case "credit_note":
            note = (
                f"Credit note {ref} on invoice {m.detail}"
                if m.detail
                else f"Credit note on invoice {ref}"
            )
            return note + (" reversed" if m.amount > 0 else "")
        case "discount":
            if m.amount > 0:
                return f"Early-payment discount on invoice {ref} reversed"
            return f"Early-payment discount on invoice {ref}"
        case "write_off":
            return f"Invoice {ref} written off"
        case "void":
            return f"Invoice {ref} voided"
        case _:
            return m.kind.replace("_", " ").capitalize()


def sort_key(m: Movement) -> tuple[date, int, str, str]:
    return (m.on, KIND_ORDER.get(m.kind, len(KIND_ORDER)), m.document_id, m.key)


def statement_lines(opening: int, movements: Iterable[Movement]) -> list[StatementLine]:
    """The movements in statement order, each with the balance after it."""
    balance = opening
    lines = []
    for m in sorted(movements, key=sort_key):
        balance += m.amount
        lines.append(
            StatementLine(
                date=m.on,
                kind=m.kind,
                document_id=m.document_id,
                reference=m.reference,
                description=describe(m),
                debit=max(m.amount, 0),
                credit=max(-m.amount, 0),
                balance=balance,
            )
        )
    return lines


def statement_buckets() -> list[Bucket]:
    """The aging report's default buckets (by due date: current, 1-30, 31-60, 61-90, 90+)."""
    return buckets_for(Basis.DUE_DATE)


def aging_summary(
    currency: str,
    positions: Iterable[InvoicePosition],
    as_of: date,
    closing_balance: int,
    buckets: Sequence[Bucket],
) -> dict[str, int]:
    """The open invoices of one currency by bucket as the aging report computes them, the
    amount under dispute, and `on_account`: what of the balance is not in an open invoice
    (money received but not applied is negative here). The values add up to the balance."""
    line = age(
        (p for p in positions if p.currency == currency), as_of, Basis.DUE_DATE, list(buckets)
    ).totals.get(currency)
    result = {b.key: line.buckets[b.key] if line is not None else 0 for b in buckets}
    result[DISPUTED] = line.disputed if line is not None else 0
    result[ON_ACCOUNT] = closing_balance - sum(result.values())
    return result


def currency_statement(
    currency: str,
    opening_balance: int,
    movements: Iterable[Movement],
    positions: Iterable[InvoicePosition],
    as_of: date,
    buckets: Sequence[Bucket] | None = None,
) -> CurrencyStatement:
    lines = statement_lines(opening_balance, (m for m in movements if m.currency == currency))
    debits = sum(line.debit for line in lines)
    credits = sum(line.credit for line in lines)
    closing = opening_balance + debits - credits
    return CurrencyStatement(
        currency=currency,
        opening_balance=opening_balance,
        lines=tuple(lines),
        debits=debits,
        credits=credits,
        closing_balance=closing,
        aging=aging_summary(currency, positions, as_of, closing, buckets or statement_buckets()),
    )


def build_statement(
    customer_id: str,
    customer_name: str | None,
    from_date: date,
    to_date: date,
    openings: Mapping[str, int],
    movements: Sequence[Movement],
    positions: Sequence[InvoicePosition],
    currency: str | None = None,
) -> Statement:
    """One block per currency with an opening balance, a movement in the period or an open
    invoice on `to_date` (only `currency`, always, when given). `openings` are the balances at
    the end of the day before `from_date`; `positions` the invoices as of `to_date`."""
    if from_date > to_date:
        raise ValueError("from_date must be on or before to_date")
    outside = [m for m in movements if not from_date <= m.on <= to_date]
    if outside:
        raise ValueError(f"{len(outside)} movement(s) outside {from_date}..{to_date}")
    if currency is not None:
        present = {currency}
    else:
        present = (
            {c for c, amount in openings.items() if amount != 0}
            | {m.currency for m in movements}
            | {p.currency for p in positions if open_portions(p)}
        )
    buckets = statement_buckets()
    return Statement(
        customer_id=customer_id,
        customer_name=customer_name,
        from_date=from_date,
        to_date=to_date,
        currencies=tuple(
            currency_statement(c, openings.get(c, 0), movements, positions, to_date, buckets)
            for c in sorted(present)
        ),
    )
