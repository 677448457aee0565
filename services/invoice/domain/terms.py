"""Payment terms: when an invoice falls due, in how many instalments, and any early-payment discount.

Terms are a value object copied onto each invoice when it is drafted (templates and customer
defaults are only where the copy comes from), so re-defining a template never changes an invoice
that was already issued. The terms models are published language (``shared.contracts.invoice``);
this module computes with them.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from shared.contracts.invoice import Installment, PaymentTerms, TermsKind
from shared.money import Money, Rounding

__all__ = [
    "discount_deadline",
    "due_date",
    "early_payment_discount",
    "schedule",
]


def _end_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def due_date(terms: PaymentTerms, issue_date: date) -> date:
    """The final due date of an invoice issued on ``issue_date``."""
    if terms.kind is TermsKind.NET:
        assert terms.net_days is not None
        return issue_date + timedelta(days=terms.net_days)
    if terms.kind is TermsKind.DUE_ON_RECEIPT:
        return issue_date
    if terms.kind is TermsKind.END_OF_MONTH:
        assert terms.eom_plus_days is not None
        return _end_of_month(issue_date) + timedelta(days=terms.eom_plus_days)
    assert terms.installments is not None
    return issue_date + timedelta(days=terms.installments[-1].days_after_issue)


def schedule(terms: PaymentTerms, issue_date: date, total: Money) -> list[Installment]:
    """The instalments of ``total``: one for non-instalment kinds, else one per spec.

    Instalment amounts come from ``Money.allocate`` of the percents, so they always sum to
    exactly ``total`` with the leftover minor units spread by largest remainder.
    """
    if terms.installments is None:
        return [Installment(due_date=due_date(terms, issue_date), amount=total)]
    amounts = total.allocate([spec.percent for spec in terms.installments])
    return [
        Installment(due_date=issue_date + timedelta(days=spec.days_after_issue), amount=amount)
        for spec, amount in zip(terms.installments, amounts, strict=True)
    ]


def discount_deadline(terms: PaymentTerms, issue_date: date) -> date | None:
    """The last day a payment still earns the early-payment discount, if the terms have one."""
    if terms.early_payment_discount is None:
        return None
    return issue_date + timedelta(days=terms.early_payment_discount.within_days)


def early_payment_discount(
    terms: PaymentTerms, issue_date: date, paid_on: date, amount_due: Money
) -> Money:
    """The discount earned by paying ``amount_due`` on ``paid_on`` (HALF_UP), or zero.

    The window is inclusive: with "2/10" an invoice issued on the 1st earns the discount when
    paid on or before the 11th.
    """
    deadline = discount_deadline(terms, issue_date)
    discount = terms.early_payment_discount
    if discount is None or deadline is None or paid_on > deadline:
        return Money.zero(amount_due.currency)
    return amount_due.percentage(discount.percent, Rounding.HALF_UP)
