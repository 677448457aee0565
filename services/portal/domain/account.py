"""What a customer sees on the portal, and what it may ask for: pure, given the other services'
views of its invoices and payments.

The services answer for the whole tenant; the portal acts for one customer, so everything here
also checks that each document is that customer's — a changed id in a form must find nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.errors import NotFound, ValidationFailed
from shared.money import Money

OPEN_STATUSES = frozenset({"issued", "partially_paid", "overdue"})
PAID_STATUSES = frozenset({"paid", "credited", "written_off"})
PROMISE_HORIZON = timedelta(days=180)


@dataclass(frozen=True)
class InvoiceLine:
    invoice_id: uuid.UUID
    number: str
    issue_date: date | None
    due_date: date | None
    total: Money
    open_amount: Money
    disputed: Money
    status: str
    days_overdue: int

    @property
    def payable(self) -> Money:
        """What the customer can pay now: the open amount less what it disputes."""
        return (
            self.open_amount - self.disputed
            if self.open_amount > self.disputed
            else Money.zero(self.open_amount.currency)
        )


@dataclass(frozen=True)
class PaymentLine:
    payment_id: str
    received_on: date
    amount: Money
    method: str
    reference: str | None
    invoice_numbers: list[str]


@dataclass(frozen=True)
class Account:
    customer_id: str
    open_invoices: list[InvoiceLine]
    paid_invoices: list[InvoiceLine]
    payments: list[PaymentLine]
    unapplied: list[Money]
    totals: dict[str, Money] = field(default_factory=dict)  # open per currency
    overdue: dict[str, Money] = field(default_factory=dict)
    name: str | None = None
    promised: dict[str, date] = field(default_factory=dict)  # invoice id -> latest promise


def _money(view: dict[str, Any] | None, currency: str) -> Money:
    if not view:
        return Money.zero(currency)
    return Money.of_minor(int(view["amount"]), str(view["currency"]))


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def invoice_line(view: dict[str, Any], today: date) -> InvoiceLine:
    currency = str(view["currency"])
    due = _date(view.get("due_date"))
    return InvoiceLine(
        invoice_id=uuid.UUID(str(view["invoice_id"])),
        number=str(view.get("number") or ""),
        issue_date=_date(view.get("issue_date")),
        due_date=due,
        total=_money(view.get("total_due") or view.get("total"), currency),
        open_amount=_money(view.get("open_amount"), currency),
        disputed=_money(view.get("disputed_amount"), currency),
        status=str(view["status"]),
        days_overdue=max((today - due).days, 0) if due else 0,
    )


def account(
    customer_id: str,
    invoices: list[dict[str, Any]],
    payments: list[dict[str, Any]],
    unapplied: list[dict[str, Any]],
    today: date,
    *,
    name: str | None = None,
    promises: Sequence[dict[str, Any]] = (),
) -> Account:
    """The customer's page: open invoices oldest due first, paid ones newest first; each open
    invoice with the latest date the customer promised to pay it by."""
    mine = [invoice_line(v, today) for v in invoices if v.get("customer_id") == customer_id]
    open_lines = sorted(
        (i for i in mine if i.status in OPEN_STATUSES and i.open_amount.is_positive()),
        key=lambda i: (i.due_date or date.max, i.number),
    )
    paid_lines = sorted(
        (i for i in mine if i.status in PAID_STATUSES),
        key=lambda i: (i.issue_date or date.min, i.number),
        reverse=True,
    )
    numbers = {str(i.invoice_id): i.number for i in mine}
    payment_lines = sorted(
        (
            PaymentLine(
                payment_id=str(p["payment_id"]),
                received_on=date.fromisoformat(p["received_on"]),
                amount=_money(p["amount"], p["amount"]["currency"]),
                method=str(p.get("method") or ""),
                reference=p.get("reference"),
                invoice_numbers=[
                    numbers.get(str(a.get("invoice_id")), "") for a in p.get("allocations") or []
                ],
            )
            for p in payments
            if p.get("customer_id") == customer_id and p.get("status") != "reversed"
        ),
        key=lambda p: p.received_on,
        reverse=True,
    )
    totals: dict[str, Money] = {}
    overdue: dict[str, Money] = {}
    for line in open_lines:
        c = line.open_amount.currency
        totals[c] = totals.get(c, Money.zero(c)) + line.open_amount
        if line.days_overdue:
            overdue[c] = overdue.get(c, Money.zero(c)) + line.open_amount
    credits = [_money(u, u["currency"]) for u in unapplied]
    promised: dict[str, date] = {}
    for p in promises:
        when = date.fromisoformat(p["promised_date"])
        for invoice_id in p.get("invoice_ids", []):
            promised[invoice_id] = max(when, promised.get(invoice_id, when))
    return Account(
        name=name,
        promised=promised,
        customer_id=customer_id,
        open_invoices=open_lines,
        paid_invoices=paid_lines,
        payments=payment_lines,
        unapplied=[c for c in credits if c.is_positive()],
        totals=totals,
        overdue=overdue,
    )


def owned_open_invoice(acct: Account, invoice_id: str) -> InvoiceLine:
    """The customer's open invoice of that id; anything else (another customer's, paid, a
    mistyped id) is the same 404, so a form cannot probe which ids exist."""
    for line in acct.open_invoices:
        if str(line.invoice_id) == invoice_id:
            return line
    raise NotFound("no open invoice of yours with that id", {"invoice_id": invoice_id})


def selected(acct: Account, invoice_ids: list[str]) -> list[InvoiceLine]:
    if not invoice_ids:
        raise ValidationFailed("choose at least one invoice", {"field": "invoice_id"})
    if len(set(invoice_ids)) != len(invoice_ids):
        raise ValidationFailed("an invoice is chosen twice", {"field": "invoice_id"})
    lines = [owned_open_invoice(acct, i) for i in invoice_ids]
    if len({line.open_amount.currency for line in lines}) > 1:
        raise ValidationFailed(
            "invoices in different currencies are paid separately", {"field": "invoice_id"}
        )
    return lines


def amount_of(text: str | None, currency: str, *, field_name: str) -> Money:
    """A positive amount the customer typed in major units ("120.50"), exact in the currency."""
    try:
        value = Decimal((text or "").strip().replace(",", ""))
        amount = Money.from_decimal(value, currency)
    except (InvalidOperation, ValueError):
        raise ValidationFailed(
            f"enter an amount in {currency} such as 120.50", {"field": field_name}
        ) from None
    if not amount.is_positive():
        raise ValidationFailed("the amount must be more than zero", {"field": field_name})
    return amount


def checkout_amount(lines: list[InvoiceLine]) -> Money:
    """Paying selected invoices pays what is payable on each (disputed parts stay open)."""
    currency = lines[0].open_amount.currency
    total = Money.zero(currency)
    for line in lines:
        total = total + line.payable
    if not total.is_positive():
        raise ValidationFailed("nothing payable on the chosen invoices", {"field": "invoice_id"})
    return total


def dispute_amount(line: InvoiceLine, text: str | None) -> Money:
    """Blank disputes the whole undisputed open amount; else part of it."""
    if not (text or "").strip():
        amount = line.payable
    else:
        amount = amount_of(text, line.open_amount.currency, field_name="amount")
    if not amount.is_positive() or amount > line.payable:
        raise ValidationFailed(
            f"you can dispute up to {line.payable} on invoice {line.number}",
            {"field": "amount"},
        )
    return amount


def promise(
    lines: list[InvoiceLine], amount_text: str | None, promised: str | None, today: date
) -> tuple[Money, date]:
    """A promise covers chosen invoices: an amount up to what they owe, a date from today."""
    currency = lines[0].open_amount.currency
    owed = Money.zero(currency)
    for line in lines:
        owed = owed + line.open_amount
    amount = (
        owed
        if not (amount_text or "").strip()
        else amount_of(amount_text, currency, field_name="amount")
    )
    if amount > owed:
        raise ValidationFailed(f"the chosen invoices owe {owed}", {"field": "amount"})
    try:
        when = date.fromisoformat((promised or "").strip())
    except ValueError:
        raise ValidationFailed("choose the date you will pay", {"field": "promised_date"}) from None
    if not today <= when <= today + PROMISE_HORIZON:
        raise ValidationFailed(
            "the date must be between today and six months from now", {"field": "promised_date"}
        )
    return amount, when


def statement_period(from_text: str | None, to_text: str | None, today: date) -> tuple[date, date]:
    """Default: the month to date. At most ten years, never in the future."""
    try:
        end = date.fromisoformat(to_text) if to_text else today
        start = date.fromisoformat(from_text) if from_text else end.replace(day=1)
    except ValueError:
        raise ValidationFailed("dates are YYYY-MM-DD", {"field": "from"}) from None
    if start > end:
        raise ValidationFailed("the period starts after it ends", {"field": "from"})
    if end > today:
        raise ValidationFailed("the period cannot end in the future", {"field": "to"})
    if (end - start).days > 3660:
        raise ValidationFailed("at most ten years at a time", {"field": "from"})
    return start, end
