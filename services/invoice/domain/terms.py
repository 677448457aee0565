"""Payment terms: when an invoice falls due, in how many instalments, and any early-payment discount.

Terms are a value object copied onto each invoice when it is drafted (templates and customer
defaults are only where the copy comes from), so re-defining a template never changes an invoice
that was already issued.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from services.invoice.domain._types import Days, ExactDecimal, format_decimal
from shared.money import Money, Rounding

__all__ = [
    "EarlyPaymentDiscount",
    "Installment",
    "InstallmentSpec",
    "PaymentMethod",
    "PaymentTerms",
    "TermsKind",
    "discount_deadline",
    "due_date",
    "early_payment_discount",
    "schedule",
]


class PaymentMethod(StrEnum):
    CARD = "card"
    ACH = "ach"
    DIRECT_DEBIT = "direct_debit"
    BANK_TRANSFER = "bank_transfer"
    WALLET = "wallet"
    CHEQUE = "cheque"
    CASH = "cash"


class TermsKind(StrEnum):
    NET = "net"
    DUE_ON_RECEIPT = "due_on_receipt"
    END_OF_MONTH = "end_of_month"
    INSTALLMENTS = "installments"


class InstallmentSpec(BaseModel):
    """One instalment of an instalment plan: ``percent`` of the total, due N days after issue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days_after_issue: Days
    percent: Annotated[ExactDecimal, Field(gt=0, le=100)]


class EarlyPaymentDiscount(BaseModel):
    """``percent`` off when the invoice is settled within ``within_days`` of issue ("2/10")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    percent: Annotated[ExactDecimal, Field(gt=0, lt=100)]
    within_days: Annotated[StrictInt, Field(ge=0, le=365)]


class PaymentTerms(BaseModel):
    """When an invoice is due. Only the fields of ``kind`` may be set:

    * ``net``: ``net_days`` (due = issue date + N days)
    * ``due_on_receipt``: nothing (due on the issue date)
    * ``end_of_month``: ``eom_plus_days`` (due = last day of the issue month + N days)
    * ``installments``: ``installments`` (>= 2, percents summing to exactly 100, days strictly
      increasing; the final due date is the last instalment's)

    ``early_payment_discount`` and ``late_fee_policy`` (a reference to a dunning policy) may go
    with any kind.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TermsKind
    net_days: Days | None = None
    eom_plus_days: Days | None = None
    installments: list[InstallmentSpec] | None = None
    early_payment_discount: EarlyPaymentDiscount | None = None
    late_fee_policy: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @model_validator(mode="after")
    def _fields_match_kind(self) -> PaymentTerms:
        required = {
            TermsKind.NET: "net_days",
            TermsKind.DUE_ON_RECEIPT: None,
            TermsKind.END_OF_MONTH: "eom_plus_days",
            TermsKind.INSTALLMENTS: "installments",
        }[self.kind]
        for name in ("net_days", "eom_plus_days", "installments"):
            present = getattr(self, name) is not None
            if name == required and not present:
                raise ValueError(f"{name} is required for {self.kind.value} terms")
            if name != required and present:
                raise ValueError(f"{name} does not belong to {self.kind.value} terms")
        if self.installments is not None:
            _check_installments(self.installments)
        return self

    def describe(self) -> str:
        """Human wording: "Net 30", "Due on receipt", "EOM + 15", "3 installments", "2% 10, Net 30"."""
        if self.kind is TermsKind.NET:
            base = f"Net {self.net_days}"
        elif self.kind is TermsKind.DUE_ON_RECEIPT:
            base = "Due on receipt"
        elif self.kind is TermsKind.END_OF_MONTH:
            base = f"EOM + {self.eom_plus_days}"
        else:
            base = f"{len(self.installments or [])} installments"
        discount = self.early_payment_discount
        if discount is None:
            return base
        return f"{format_decimal(discount.percent)}% {discount.within_days}, {base}"


def _check_installments(specs: list[InstallmentSpec]) -> None:
    if len(specs) < 2:
        raise ValueError("installment terms need at least 2 installments")
    if len(specs) > 120:
        raise ValueError("installment terms allow at most 120 installments")
    total = sum((spec.percent for spec in specs), Decimal(0))
    if total != 100:
        raise ValueError(f"installment percents must sum to exactly 100, got {total}")
    days = [spec.days_after_issue for spec in specs]
    if any(later <= earlier for earlier, later in pairwise(days)):
        raise ValueError(f"installment days must be strictly increasing, got {days}")


class Installment(BaseModel):
    """One scheduled amount of an issued invoice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    due_date: date
    amount: Money


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
