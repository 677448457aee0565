"""Invoice totals of the line items, computed per line with explicit rounding.

Rounding happens per line and per step (gross, discount, each tax), never on the invoice sum:
that is what a customer can re-add by hand from the printed invoice, and the invoice total is
then exactly the sum of the printed line totals. ``LineItem`` and ``TaxRate`` are published
language (``shared.contracts.invoice``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from shared.contracts.invoice import LineItem
from shared.errors import ValidationFailed
from shared.money import Money, Rounding, currency_exponent, sum_money

__all__ = [
    "MAX_LINES",
    "InvoiceTotals",
    "LineTotals",
    "compute_totals",
]

MAX_LINES = 500


class LineTotals(BaseModel):
    """One line's amounts: ``net = gross - discount``, ``total = net + sum(taxes)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gross: Money
    discount: Money
    net: Money
    taxes: dict[str, Money]
    total: Money


class InvoiceTotals(BaseModel):
    """All amounts of an invoice, in its currency. ``total == subtotal + tax_total``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str
    lines: list[LineTotals]
    gross_total: Money
    discount_total: Money
    subtotal: Money
    tax_by_code: dict[str, Money]
    tax_total: Money
    total: Money


def _line_totals(line: LineItem, currency: str, rounding: Rounding) -> LineTotals:
    gross = Money.of_minor(line.unit_price, currency).multiply(line.quantity, rounding)
    discount = gross.percentage(line.discount_percent, rounding)
    net = gross - discount
    taxes = {tax.code: net.percentage(tax.percent, rounding) for tax in line.taxes}
    total = net + sum_money(taxes.values(), currency)
    return LineTotals(gross=gross, discount=discount, net=net, taxes=taxes, total=total)


def compute_totals(
    lines: Sequence[LineItem], currency: str, rounding: Rounding = Rounding.HALF_UP
) -> InvoiceTotals:
    """Totals of ``lines`` in ``currency`` (1 to 500 lines), rounding each step of each line.

    Per line: ``gross = round(quantity * unit_price)``, ``discount = round(gross * discount%)``,
    ``net = gross - discount``, and per tax ``tax = round(net * rate%)``. Invoice: ``subtotal =
    sum(net)``, ``tax_total = sum(tax)``, ``total = subtotal + tax_total`` (= sum of line totals).
    Raises ``ValidationFailed`` for a wrong line count or an unknown currency.
    """
    try:
        currency_exponent(currency)
    except ValueError as exc:
        raise ValidationFailed(str(exc), {"field": "currency", "value": currency}) from None
    if not 1 <= len(lines) <= MAX_LINES:
        raise ValidationFailed(
            f"an invoice needs between 1 and {MAX_LINES} lines, got {len(lines)}",
            {"field": "lines", "count": len(lines)},
        )
    per_line = [_line_totals(line, currency, rounding) for line in lines]
    tax_by_code: dict[str, Money] = {}
    for line_totals in per_line:
        for code, tax in line_totals.taxes.items():
            tax_by_code[code] = tax_by_code.get(code, Money.zero(currency)) + tax
    subtotal = sum_money((t.net for t in per_line), currency)
    tax_total = sum_money(tax_by_code.values(), currency)
    return InvoiceTotals(
        currency=currency,
        lines=per_line,
        gross_total=sum_money((t.gross for t in per_line), currency),
        discount_total=sum_money((t.discount for t in per_line), currency),
        subtotal=subtotal,
        tax_by_code=tax_by_code,
        tax_total=tax_total,
        total=subtotal + tax_total,
    )
