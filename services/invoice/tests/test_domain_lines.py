"""Line items and invoice totals: per-line rounding, exact sums, no floats."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.invoice.domain.lines import compute_totals
from shared.contracts.invoice import LineItem, TaxRate
from shared.errors import ValidationFailed
from shared.money import Money, Rounding


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def line(quantity: str, unit_price: int, discount: str = "0", **taxes: str) -> LineItem:
    return LineItem(
        description="Widget",
        quantity=Decimal(quantity),
        unit_price=unit_price,
        discount_percent=Decimal(discount),
        taxes=[TaxRate(code=code, percent=Decimal(p)) for code, p in taxes.items()],
    )


def test_hand_computed_invoice_with_two_tax_rates_and_a_discount() -> None:
    # Line 1: 3 x 19.99 EUR, 10% discount, VAT 20% and ECO 1.5%
    #   gross    = 3 x 1999              = 5997 cents
    #   discount = 10% x 5997  = 599.7   ->  600 (half up)
    #   net      = 5997 - 600            = 5397
    #   VAT      = 20% x 5397  = 1079.4  -> 1079
    #   ECO      = 1.5% x 5397 = 80.955  ->   81
    #   total    = 5397 + 1079 + 81      = 6557
    # Line 2: 2.5 x 12.34 EUR, no discount, VAT 20%
    #   gross    = 2.5 x 1234            = 3085, discount 0, net 3085
    #   VAT      = 20% x 3085  = 617.0   ->  617
    #   total    = 3085 + 617            = 3702
    # Invoice: subtotal 5397 + 3085 = 8482; VAT 1079 + 617 = 1696; ECO 81; tax 1777;
    #          total 8482 + 1777 = 10259 (= 6557 + 3702)
    totals = compute_totals(
        [line("3", 1999, "10", VAT="20", ECO="1.5"), line("2.5", 1234, VAT="20")], "EUR"
    )
    first, second = totals.lines
    assert (first.gross, first.discount, first.net) == (eur(5997), eur(600), eur(5397))
    assert first.taxes == {"VAT": eur(1079), "ECO": eur(81)}
    assert first.total == eur(6557)
    assert (second.gross, second.discount, second.net) == (eur(3085), eur(0), eur(3085))
    assert second.taxes == {"VAT": eur(617)}
    assert second.total == eur(3702)
    assert totals.gross_total == eur(9082)
    assert totals.discount_total == eur(600)
    assert totals.subtotal == eur(8482)
    assert totals.tax_by_code == {"VAT": eur(1696), "ECO": eur(81)}
    assert totals.tax_total == eur(1777)
    assert totals.total == eur(10259)
    assert totals.currency == "EUR"


def test_rounding_mode_is_explicit_and_applies_per_line() -> None:
    # 0.5 x 1 minor unit = 0.5: half up -> 1, half even -> 0. Two such lines: 2 vs 0, never
    # round(0.5 + 0.5) = 1 (the sum is of rounded lines).
    lines = [line("0.5", 1), line("0.5", 1)]
    assert compute_totals(lines, "EUR").total == eur(2)
    assert compute_totals(lines, "EUR", Rounding.HALF_EVEN).total == eur(0)


def test_zero_and_three_decimal_currencies() -> None:
    # JPY: 7 x 333 = 2331 yen, 8% tax = 186.48 -> 186
    jpy = compute_totals([line("7", 333, JCT="8")], "JPY")
    assert jpy.total == Money.of_minor(2517, "JPY")
    # KWD: 1.5 x 1.235 KWD = 1852.5 fils -> 1853; 5% discount = 92.65 -> 93; net 1760
    kwd = compute_totals([line("1.5", 1235, "5")], "KWD")
    assert kwd.lines[0].gross == Money.of_minor(1853, "KWD")
    assert kwd.total == Money.of_minor(1760, "KWD")


def test_a_free_line_and_a_zero_rate_tax_total_zero() -> None:
    totals = compute_totals([line("1", 0, EXEMPT="0")], "EUR")
    assert totals.total == eur(0)
    assert totals.tax_by_code == {"EXEMPT": eur(0)}


@pytest.mark.parametrize(
    "fields",
    [
        {"quantity": "0"},
        {"quantity": "-1"},
        {"quantity": "0.0000001"},  # 7 decimal places
        {"quantity": "1000000000.5"},  # above 1e9
        {"quantity": 1.5},  # a float has already lost precision
        {"quantity": "NaN"},
        {"quantity": "Infinity"},
        {"unit_price": -1},
        {"unit_price": True},
        {"unit_price": "100"},
        {"unit_price": 1.0},
        {"discount_percent": "100.01"},
        {"discount_percent": "-1"},
        {"description": ""},
        {"description": "   "},
        {"description": "x" * 501},
        {"taxes": [{"code": "VAT", "percent": "20"}, {"code": "VAT", "percent": "5"}]},
        {"taxes": [{"code": f"T{i}", "percent": "1"} for i in range(6)]},
        {"taxes": [{"code": "", "percent": "1"}]},
        {"taxes": [{"code": "X" * 21, "percent": "1"}]},
        {"taxes": [{"code": "VAT", "percent": "100.5"}]},
        {"colour": "red"},
    ],
)
def test_line_items_refuse_bad_values(fields: dict[str, Any]) -> None:
    base: dict[str, Any] = {"description": "Widget", "quantity": "1", "unit_price": 100}
    with pytest.raises(ValidationError):
        LineItem.model_validate({**base, **fields})


def test_line_items_accept_the_limits() -> None:
    item = LineItem(
        description="x" * 500,
        quantity=Decimal("1000000000"),
        unit_price=0,
        discount_percent=Decimal(100),
        taxes=[TaxRate(code=f"T{i}", percent=Decimal(i)) for i in range(5)],
    )
    assert item.quantity == Decimal(10**9)
    # trailing zeros are not significant places
    assert LineItem(
        description="x", quantity=Decimal("1.500000000"), unit_price=1
    ).quantity == Decimal("1.5")
    assert LineItem(description="x", quantity=Decimal("0.000001"), unit_price=1)


def test_a_line_item_round_trips_through_json_exactly() -> None:
    item = line("2.125000", 1999, "12.5", VAT="20.00")
    dumped = item.model_dump(mode="json")
    assert dumped["quantity"] == "2.125000"
    assert LineItem.model_validate(dumped) == item
    assert LineItem.model_validate_json(item.model_dump_json()) == item


@pytest.mark.parametrize("count", [0, 501])
def test_an_invoice_has_1_to_500_lines(count: int) -> None:
    with pytest.raises(ValidationFailed, match="between 1 and 500"):
        compute_totals([line("1", 1)] * count, "EUR")
    assert compute_totals([line("1", 1)] * 500, "EUR").total == eur(500)


@pytest.mark.parametrize("currency", ["eur", "XXX", "EU", "ZWL"])
def test_unknown_currency_is_a_validation_failure(currency: str) -> None:
    with pytest.raises(ValidationFailed):
        compute_totals([line("1", 1)], currency)


# ------------------------------------------------------------------------ properties

tax_codes = st.sampled_from(["VAT", "GST", "PST", "ECO", "CITY"])
percents = st.decimals(min_value=0, max_value=100, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def line_items(draw: st.DrawFn) -> LineItem:
    codes = draw(st.lists(tax_codes, unique=True, max_size=5))
    return LineItem(
        description="item",
        quantity=draw(
            st.decimals(
                min_value=Decimal("0.000001"),
                max_value=Decimal(10**9),
                places=6,
                allow_nan=False,
                allow_infinity=False,
            )
        ),
        unit_price=draw(st.integers(min_value=0, max_value=10**9)),
        discount_percent=draw(percents),
        taxes=[TaxRate(code=code, percent=draw(percents)) for code in codes],
    )


@given(
    lines=st.lists(line_items(), min_size=1, max_size=8),
    currency=st.sampled_from(["EUR", "JPY", "KWD"]),
    rounding=st.sampled_from(list(Rounding)),
)
def test_totals_are_always_the_sum_of_the_line_totals(
    lines: list[LineItem], currency: str, rounding: Rounding
) -> None:
    totals = compute_totals(lines, currency, rounding)
    assert len(totals.lines) == len(lines)
    assert totals.total.amount == sum(t.total.amount for t in totals.lines)
    assert totals.subtotal.amount == sum(t.net.amount for t in totals.lines)
    assert totals.discount_total.amount == sum(t.discount.amount for t in totals.lines)
    assert totals.tax_total.amount == sum(m.amount for m in totals.tax_by_code.values())
    assert totals.total == totals.subtotal + totals.tax_total
    for code, amount in totals.tax_by_code.items():
        assert amount.amount == sum(t.taxes[code].amount for t in totals.lines if code in t.taxes)
    for t in totals.lines:
        assert t.net == t.gross - t.discount
        assert t.total.amount == t.net.amount + sum(m.amount for m in t.taxes.values())
        assert {m.currency for m in (t.gross, t.discount, t.net, t.total)} == {currency}


@given(item=line_items(), currency=st.sampled_from(["EUR", "JPY", "KWD"]))
def test_each_rounded_amount_is_within_half_a_minor_unit_of_the_exact_value(
    item: LineItem, currency: str
) -> None:
    totals = compute_totals([item], currency)  # HALF_UP: error at most 1/2 a minor unit
    result = totals.lines[0]
    half = Fraction(1, 2)
    exact_gross = Fraction(item.quantity) * item.unit_price
    assert abs(result.gross.amount - exact_gross) <= half
    exact_discount = result.gross.amount * Fraction(item.discount_percent) / 100
    assert abs(result.discount.amount - exact_discount) <= half
    for tax in item.taxes:
        exact_tax = result.net.amount * Fraction(tax.percent) / 100
        assert abs(result.taxes[tax.code].amount - exact_tax) <= half
