"""Tests for the shared-kernel Money value type."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.money import (
    CURRENCY_EXPONENTS,
    CurrencyMismatch,
    InexactAmount,
    Money,
    Rounding,
    UnknownCurrency,
    currency_exponent,
    sum_money,
)

R = Rounding

# ------------------------------------------------------------------ strategies

CODES = sorted(CURRENCY_EXPONENTS)
amounts = st.integers(min_value=-(10**18), max_value=10**18)
currencies = st.sampled_from(CODES)
roundings = st.sampled_from(list(Rounding))
moneys = st.builds(Money.of_minor, amounts, currencies)

ratio_elements: st.SearchStrategy[int | Decimal] = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
)
ratio_lists = st.lists(ratio_elements, min_size=1, max_size=25).filter(
    lambda rs: any(r > 0 for r in rs)
)


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


# ------------------------------------------------------------ currency table


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("EUR", 2),
        ("USD", 2),
        ("GBP", 2),
        ("CHF", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("CLP", 0),
        ("ISK", 0),
        ("XOF", 0),
        ("UYI", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("JOD", 3),
        ("OMR", 3),
        ("TND", 3),
        ("LYD", 3),
        ("IQD", 3),
        ("CLF", 4),
        ("UYW", 4),
    ],
)
def test_exponent_of_representative_currencies(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent


def test_zero_and_three_decimal_sets_are_exactly_the_iso_ones() -> None:
    zero = {c for c, e in CURRENCY_EXPONENTS.items() if e == 0}
    three = {c for c, e in CURRENCY_EXPONENTS.items() if e == 3}
    four = {c for c, e in CURRENCY_EXPONENTS.items() if e == 4}
    assert zero == set(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()
    )
    assert three == set("BHD IQD JOD KWD LYD OMR TND".split())
    assert four == {"CLF", "UYW"}
    assert set(CURRENCY_EXPONENTS.values()) == {0, 2, 3, 4}


def test_table_is_complete_and_well_formed() -> None:
    assert len(CURRENCY_EXPONENTS) >= 150
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in CURRENCY_EXPONENTS)
    for code in ("AED", "BRL", "CNY", "INR", "MXN", "NGN", "SLE", "VES", "XCG", "ZWG", "ZAR"):
        assert currency_exponent(code) == 2


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CURRENCY_EXPONENTS["ABC"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    "code",
    [
        "ABC",
        "XYZ",
        "XAU",
        "XXX",
        "XTS",
        "XDR",
        "eur",
        "Eur",
        "EU",
        "EURO",
        "",
        " EUR",
        "E1R",
        "ÉUR",
    ],
)
def test_unknown_or_ill_formed_codes_raise(code: str) -> None:
    with pytest.raises(UnknownCurrency):
        currency_exponent(code)
    with pytest.raises(UnknownCurrency):
        Money.zero(code)
    with pytest.raises(UnknownCurrency):
        Money.of_minor(1, code)
    with pytest.raises(UnknownCurrency):
        eur(100).convert(code, "1", R.HALF_EVEN)
    with pytest.raises(ValidationError):
        Money(amount=1, currency=code)


@pytest.mark.parametrize("code", [None, 978, b"EUR"])
def test_non_string_codes_raise(code: Any) -> None:
    with pytest.raises(UnknownCurrency):
        currency_exponent(code)


def test_unknown_currency_is_a_value_error() -> None:
    assert issubclass(UnknownCurrency, ValueError)
    assert issubclass(CurrencyMismatch, ValueError)
    assert issubclass(InexactAmount, ValueError)


# ------------------------------------------------------------ float rejection


def test_float_rejected_everywhere() -> None:
    m = eur(1000)
    with pytest.raises(TypeError):
        Money.of_minor(1.0, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money.from_decimal(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money.from_decimal(1.5, "EUR", R.HALF_UP)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        m.multiply(1.5, R.HALF_UP)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        m.percentage(2.0, R.HALF_UP)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        m.convert("USD", 1.0845, R.HALF_UP)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        m.allocate([1.0, 2.0])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        m.split(2.0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Money(amount=1.0, currency="EUR")
    with pytest.raises(ValidationError):
        Money.model_validate_json('{"amount": 12.0, "currency": "EUR"}')


def test_bool_and_numeric_strings_rejected_as_amount() -> None:
    with pytest.raises(TypeError):
        Money.of_minor(True, "EUR")
    with pytest.raises(TypeError):
        Money.from_decimal(True, "EUR")
    with pytest.raises(TypeError):
        eur(100).multiply(True, R.HALF_UP)
    with pytest.raises(TypeError):
        eur(100).allocate([True, 1])
    with pytest.raises(ValidationError):
        Money(amount=True, currency="EUR")
    with pytest.raises(ValidationError):
        Money(amount="12", currency="EUR")
    with pytest.raises(ValidationError):
        Money.model_validate_json('{"amount": true, "currency": "EUR"}')
    with pytest.raises(ValidationError):
        Money.model_validate_json('{"amount": "12", "currency": "EUR"}')


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", "-inf", "sNaN", Decimal("NaN")])
def test_non_numeric_or_non_finite_decimals_rejected(bad: str | Decimal) -> None:
    with pytest.raises(ValueError):
        Money.from_decimal(bad, "EUR", R.HALF_UP)
    with pytest.raises(ValueError):
        eur(100).multiply(bad, R.HALF_UP)
    with pytest.raises(ValueError):
        eur(100).convert("USD", bad, R.HALF_UP)


def test_rounding_must_be_a_rounding() -> None:
    with pytest.raises(TypeError):
        eur(105).multiply("0.5", "half_up")  # type: ignore[arg-type]


# -------------------------------------------------------------- str / decimal


@pytest.mark.parametrize(
    ("minor", "code", "text"),
    [
        (1234, "EUR", "12.34 EUR"),
        (5, "EUR", "0.05 EUR"),
        (-5, "EUR", "-0.05 EUR"),
        (0, "EUR", "0.00 EUR"),
        (-123456, "USD", "-1234.56 USD"),
        (1234, "JPY", "1234 JPY"),
        (-1234, "JPY", "-1234 JPY"),
        (0, "JPY", "0 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (-1, "KWD", "-0.001 KWD"),
        (1, "CLF", "0.0001 CLF"),
        (10**30, "EUR", "1" + "0" * 28 + ".00 EUR"),
    ],
)
def test_str_formatting(minor: int, code: str, text: str) -> None:
    assert str(Money.of_minor(minor, code)) == text


def test_to_decimal_has_exactly_exponent_places() -> None:
    assert eur(1234).to_decimal().as_tuple().exponent == -2
    assert str(eur(0).to_decimal()) == "0.00"
    assert Money.of_minor(1234, "JPY").to_decimal() == Decimal(1234)
    assert Money.of_minor(1234, "JPY").to_decimal().as_tuple().exponent == 0
    assert str(Money.of_minor(-1234, "KWD").to_decimal()) == "-1.234"


# ---------------------------------------------------------------- from_decimal


@pytest.mark.parametrize(
    ("value", "code", "minor"),
    [
        ("12.34", "EUR", 1234),
        (Decimal("12.340000"), "EUR", 1234),
        (12, "EUR", 1200),
        ("-0.05", "EUR", -5),
        ("1234", "JPY", 1234),
        ("1234.000", "JPY", 1234),
        ("1.234", "KWD", 1234),
        ("0.0001", "CLF", 1),
        ("1E+2", "EUR", 10000),
        ("0", "EUR", 0),
        ("-0.00", "EUR", 0),
    ],
)
def test_from_decimal_exact(value: str | Decimal | int, code: str, minor: int) -> None:
    assert Money.from_decimal(value, code) == Money.of_minor(minor, code)


@pytest.mark.parametrize(
    ("value", "code"),
    [("12.345", "EUR"), ("0.5", "JPY"), ("1.2345", "KWD"), ("0.00001", "CLF")],
)
def test_from_decimal_inexact_requires_rounding(value: str, code: str) -> None:
    with pytest.raises(InexactAmount):
        Money.from_decimal(value, code)
    with pytest.raises(InexactAmount):
        Money.from_decimal(value, code, None)


def test_from_decimal_with_rounding() -> None:
    assert Money.from_decimal("12.345", "EUR", R.HALF_UP) == eur(1235)
    assert Money.from_decimal("12.345", "EUR", R.HALF_EVEN) == eur(1234)
    assert Money.from_decimal("2.5", "JPY", R.HALF_EVEN).amount == 2
    assert Money.from_decimal("3.5", "JPY", R.HALF_EVEN).amount == 4
    assert Money.from_decimal("1.2345", "KWD", R.HALF_UP).amount == 1235
    assert Money.from_decimal("1.2345", "KWD", R.HALF_EVEN).amount == 1234


def test_large_values_are_exact_beyond_default_decimal_precision() -> None:
    big = 10**30 + 1
    assert Money.from_decimal(f"{big}.01", "EUR").amount == big * 100 + 1
    # (10**30 + 1) * 1.5 = 1.5e30 + 1.5 -> tie rounds to even 2
    assert Money.of_minor(big, "EUR").multiply("1.5", R.HALF_EVEN).amount == 15 * 10**29 + 2


# ------------------------------------------------------------- rounding modes

# Hand-computed: value in EUR -> expected minor units per mode.
ROUNDING_TABLE: dict[str, dict[Rounding, int]] = {
    # ties, even neighbour below
    "0.125": {R.HALF_EVEN: 12, R.HALF_UP: 13, R.HALF_DOWN: 12, R.UP: 13, R.DOWN: 12,
              R.CEILING: 13, R.FLOOR: 12},
    # ties, even neighbour above
    "0.135": {R.HALF_EVEN: 14, R.HALF_UP: 14, R.HALF_DOWN: 13, R.UP: 14, R.DOWN: 13,
              R.CEILING: 14, R.FLOOR: 13},
    # non-ties
    "0.126": {R.HALF_EVEN: 13, R.HALF_UP: 13, R.HALF_DOWN: 13, R.UP: 13, R.DOWN: 12,
              R.CEILING: 13, R.FLOOR: 12},
    "0.124": {R.HALF_EVEN: 12, R.HALF_UP: 12, R.HALF_DOWN: 12, R.UP: 13, R.DOWN: 12,
              R.CEILING: 13, R.FLOOR: 12},
    # negatives: UP/HALF_UP go away from zero, CEILING toward +inf
    "-0.125": {R.HALF_EVEN: -12, R.HALF_UP: -13, R.HALF_DOWN: -12, R.UP: -13, R.DOWN: -12,
               R.CEILING: -12, R.FLOOR: -13},
    "-0.135": {R.HALF_EVEN: -14, R.HALF_UP: -14, R.HALF_DOWN: -13, R.UP: -14, R.DOWN: -13,
               R.CEILING: -13, R.FLOOR: -14},
    "-0.126": {R.HALF_EVEN: -13, R.HALF_UP: -13, R.HALF_DOWN: -13, R.UP: -13, R.DOWN: -12,
               R.CEILING: -12, R.FLOOR: -13},
    "-0.124": {R.HALF_EVEN: -12, R.HALF_UP: -12, R.HALF_DOWN: -12, R.UP: -13, R.DOWN: -12,
               R.CEILING: -12, R.FLOOR: -13},
}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [(v, mode, exp) for v, row in ROUNDING_TABLE.items() for mode, exp in row.items()],
)
def test_rounding_modes_from_decimal(value: str, mode: Rounding, expected: int) -> None:
    assert Money.from_decimal(value, "EUR", mode) == eur(expected)


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [(v, mode, exp) for v, row in ROUNDING_TABLE.items() for mode, exp in row.items()],
)
def test_rounding_modes_via_multiply(value: str, mode: Rounding, expected: int) -> None:
    # 1000 minor units * (value/10) lands on the same fractional minor units.
    factor = Decimal(value) / 10
    assert eur(1000).multiply(factor, mode) == eur(expected)


def test_rounding_enum_values() -> None:
    assert {r.value for r in Rounding} == {
        "half_even", "half_up", "half_down", "up", "down", "ceiling", "floor",
    }  # fmt: skip
    assert Rounding("half_up") is R.HALF_UP
    assert R.HALF_EVEN.decimal_mode == "ROUND_HALF_EVEN"
    assert R.FLOOR.decimal_mode == "ROUND_FLOOR"


# ------------------------------------------------------ multiply / percentage


def test_multiply() -> None:
    assert eur(105).multiply("0.5", R.HALF_EVEN) == eur(52)  # 52.5 -> 52
    assert eur(105).multiply("0.5", R.HALF_UP) == eur(53)
    assert eur(1999).multiply(3, R.HALF_EVEN) == eur(5997)
    assert eur(1000).multiply(Decimal("-0.333"), R.HALF_EVEN) == eur(-333)
    assert eur(1000).multiply(0, R.HALF_EVEN) == eur(0)


def test_percentage() -> None:
    # 2% discount on 100.00 EUR
    assert eur(10000).percentage("2", R.HALF_UP) == eur(200)
    assert eur(1005).percentage("2", R.HALF_UP) == eur(20)  # 20.1 -> 20
    assert eur(1005).percentage("2", R.UP) == eur(21)
    assert eur(25).percentage(Decimal("50"), R.HALF_EVEN) == eur(12)  # 12.5
    assert eur(25).percentage(Decimal("50"), R.HALF_UP) == eur(13)
    assert eur(25).percentage("50", R.HALF_DOWN) == eur(12)
    assert eur(-25).percentage("50", R.HALF_UP) == eur(-13)
    # 19% VAT on 9.99 EUR = 1.8981 -> 1.90
    assert eur(999).percentage("19", R.HALF_UP) == eur(190)
    assert Money.of_minor(1234, "KWD").percentage("12.5", R.HALF_EVEN).amount == 154  # 154.25


# ------------------------------------------------------------------- convert


def test_convert_examples() -> None:
    assert Money.from_decimal("100.00", "EUR").convert("USD", "1.0845", R.HALF_EVEN) == (
        Money.of_minor(10845, "USD")
    )
    assert Money.of_minor(1000, "JPY").convert("EUR", "0.0061", R.HALF_EVEN) == eur(610)
    assert str(Money.of_minor(1000, "JPY").convert("EUR", "0.0061", R.HALF_EVEN)) == "6.10 EUR"
    kwd = Money.from_decimal("1.000", "KWD")
    assert kwd.convert("JPY", "491.5", R.HALF_EVEN) == Money.of_minor(492, "JPY")
    assert kwd.convert("JPY", "491.5", R.DOWN) == Money.of_minor(491, "JPY")
    assert kwd.convert("JPY", Decimal("491.23"), R.HALF_UP) == Money.of_minor(491, "JPY")
    ten_eur = eur(1000)
    assert ten_eur.convert("KWD", "0.33456", R.HALF_UP) == Money.of_minor(3346, "KWD")
    assert ten_eur.convert("KWD", "0.33456", R.DOWN) == Money.of_minor(3345, "KWD")
    assert Money.of_minor(-1000, "JPY").convert("KWD", "0.00201", R.HALF_UP) == (
        Money.of_minor(-2010, "KWD")
    )
    assert eur(1).convert("USD", "1.5", R.HALF_UP) == Money.of_minor(2, "USD")
    assert eur(-1).convert("USD", "1.5", R.HALF_UP) == Money.of_minor(-2, "USD")
    assert eur(-1).convert("USD", "1.5", R.CEILING) == Money.of_minor(-1, "USD")


@pytest.mark.parametrize("rate", ["0", "-1.1", Decimal("-0.5")])
def test_convert_rejects_non_positive_rate(rate: str | Decimal) -> None:
    with pytest.raises(ValueError):
        eur(100).convert("USD", rate, R.HALF_EVEN)


# ---------------------------------------------- arithmetic and comparisons


def test_add_sub_neg_abs() -> None:
    assert eur(100) + eur(250) == eur(350)
    assert eur(100) - eur(250) == eur(-150)
    assert -eur(100) == eur(-100)
    assert -eur(0) == eur(0)
    assert abs(eur(-100)) == eur(100)
    assert abs(eur(100)) == eur(100)


def test_currency_mismatch() -> None:
    usd = Money.of_minor(100, "USD")
    with pytest.raises(CurrencyMismatch):
        eur(100) + usd
    with pytest.raises(CurrencyMismatch):
        eur(100) - usd
    with pytest.raises(CurrencyMismatch):
        _ = eur(1) < usd
    with pytest.raises(CurrencyMismatch):
        _ = eur(1) <= usd
    with pytest.raises(CurrencyMismatch):
        _ = eur(1) > usd
    with pytest.raises(CurrencyMismatch):
        _ = eur(1) >= usd
    with pytest.raises(CurrencyMismatch):
        sum_money([eur(1), usd], "EUR")
    with pytest.raises(CurrencyMismatch):
        sum_money([usd], "EUR")


def test_equality_is_plain_value_equality() -> None:
    assert eur(100) == eur(100)
    assert eur(100) != Money.of_minor(100, "USD")
    assert eur(100) != eur(101)
    not_money: object = 100
    assert eur(100) != not_money
    assert hash(eur(100)) == hash(Money.of_minor(100, "EUR"))
    assert len({eur(1), eur(1), eur(2)}) == 2


def test_ordering_same_currency() -> None:
    assert eur(1) < eur(2)
    assert eur(2) <= eur(2)
    assert eur(3) > eur(-3)
    assert eur(-3) >= eur(-3)
    assert max([eur(5), eur(-7), eur(9)]) == eur(9)
    assert sorted([eur(3), eur(-1), eur(2)]) == [eur(-1), eur(2), eur(3)]


def test_mixing_with_plain_numbers_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        eur(1) + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = eur(1) < 2  # type: ignore[operator]


def test_sign_predicates() -> None:
    assert eur(0).is_zero() and not eur(0).is_positive() and not eur(0).is_negative()
    assert eur(1).is_positive() and not eur(1).is_zero() and not eur(1).is_negative()
    assert eur(-1).is_negative() and not eur(-1).is_zero() and not eur(-1).is_positive()


def test_sum_money() -> None:
    assert sum_money([], "EUR") == Money.zero("EUR")
    assert sum_money(iter([]), "JPY") == Money.of_minor(0, "JPY")
    assert sum_money([eur(1), eur(2), eur(-5)], "EUR") == eur(-2)
    assert sum_money((eur(n) for n in range(5)), "EUR") == eur(10)
    with pytest.raises(UnknownCurrency):
        sum_money([], "eur")


def test_zero_and_exponent() -> None:
    assert Money.zero("KWD") == Money.of_minor(0, "KWD")
    assert Money.zero("KWD").exponent == 3
    assert eur(1).exponent == 2


# ------------------------------------------------------------------ pydantic


def test_immutable_and_extra_forbidden() -> None:
    m = eur(100)
    with pytest.raises(ValidationError):
        m.amount = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Money(amount=1, currency="EUR", note="x")  # type: ignore[call-arg]


def test_json_shape_and_round_trip() -> None:
    m = Money.of_minor(1234, "EUR")
    raw = m.model_dump_json()
    assert json.loads(raw) == {"amount": 1234, "currency": "EUR"}
    assert m.model_dump() == {"amount": 1234, "currency": "EUR"}
    assert Money.model_validate_json(raw) == m
    assert Money.model_validate({"amount": -5, "currency": "KWD"}) == Money.of_minor(-5, "KWD")
    with pytest.raises(ValidationError):
        Money.model_validate_json('{"amount": 1, "currency": "eur"}')
    with pytest.raises(ValidationError):
        Money.model_validate_json('{"amount": 1}')


@given(moneys)
def test_json_round_trip_property(m: Money) -> None:
    assert Money.model_validate_json(m.model_dump_json()) == m


# ---------------------------------------------------------------- allocation


def test_allocate_examples() -> None:
    assert eur(100).allocate([1, 1, 1]) == [eur(34), eur(33), eur(33)]
    assert eur(-100).allocate([1, 1, 1]) == [eur(-34), eur(-33), eur(-33)]
    assert eur(5).allocate([3, 7]) == [eur(2), eur(3)]  # 1.5, 3.5: tied remainders, first wins
    assert eur(1000).allocate([Decimal("0.7"), Decimal("0.3")]) == [eur(700), eur(300)]
    assert eur(10).allocate([0, 1, 0]) == [eur(0), eur(10), eur(0)]
    assert eur(2).allocate([1, 0, 1, 1]) == [eur(1), eur(0), eur(1), eur(0)]
    assert eur(0).allocate([1, 2]) == [eur(0), eur(0)]
    # largest remainder, not first-come: 0.2/0.3/0.5 of 7 = 1.4, 2.1, 3.5
    assert eur(7).allocate([2, 3, 5]) == [eur(1), eur(2), eur(4)]


def test_split_examples() -> None:
    assert eur(100).split(3) == [eur(34), eur(33), eur(33)]
    assert eur(-1).split(3) == [eur(-1), eur(0), eur(0)]
    assert eur(7).split(1) == [eur(7)]


@pytest.mark.parametrize(
    ("ratios", "error"),
    [
        ([], ValueError),
        ([0, 0], ValueError),
        ([1, -1], ValueError),
        ([Decimal("-0.1"), Decimal(1)], ValueError),
        ([Decimal("NaN")], ValueError),
        (["1", "2"], TypeError),
        ("12", TypeError),
    ],
)
def test_allocate_rejects_bad_ratios(ratios: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        eur(100).allocate(ratios)


@pytest.mark.parametrize("n", [0, -1])
def test_split_rejects_non_positive(n: int) -> None:
    with pytest.raises(ValueError):
        eur(100).split(n)


@given(amounts, currencies, ratio_lists)
def test_allocate_sums_exactly(amount: int, code: str, ratios: list[int | Decimal]) -> None:
    m = Money.of_minor(amount, code)
    parts = m.allocate(ratios)
    assert len(parts) == len(ratios)
    assert all(p.currency == code for p in parts)
    assert sum_money(parts, code) == m


@given(amounts, ratio_lists)
def test_allocate_parts_within_one_unit_of_exact_share(
    amount: int, ratios: list[int | Decimal]
) -> None:
    parts = eur(amount).allocate(ratios)
    total = sum((Fraction(r) for r in ratios), Fraction(0))
    for part, ratio in zip(parts, ratios, strict=True):
        exact = amount * Fraction(ratio) / total
        assert abs(part.amount - exact) < 1
        if ratio == 0:
            assert part.is_zero()


@given(amounts, ratio_lists)
def test_allocate_sign_symmetry(amount: int, ratios: list[int | Decimal]) -> None:
    assert eur(-amount).allocate(ratios) == [-p for p in eur(amount).allocate(ratios)]


@given(amounts, st.integers(min_value=1, max_value=200))
def test_split_parts_differ_by_at_most_one(amount: int, n: int) -> None:
    parts = eur(amount).split(n)
    assert len(parts) == n
    assert sum_money(parts, "EUR") == eur(amount)
    values = [p.amount for p in parts]
    assert max(values) - min(values) <= 1


# --------------------------------------------------------- algebraic properties


@given(amounts, amounts, currencies)
def test_add_then_subtract_is_identity(a: int, b: int, code: str) -> None:
    x, y = Money.of_minor(a, code), Money.of_minor(b, code)
    assert x + y - y == x
    assert x + y == y + x
    assert x - x == Money.zero(code)


@given(moneys)
def test_decimal_round_trip(m: Money) -> None:
    assert Money.from_decimal(m.to_decimal(), m.currency) == m
    assert Money.from_decimal(str(m.to_decimal()), m.currency) == m


@given(moneys)
def test_negation_and_abs(m: Money) -> None:
    negated = -m
    assert -negated == m
    assert abs(m) == abs(-m)
    assert not abs(m).is_negative()


def _same_exponent_pairs() -> list[tuple[str, str]]:
    return [(a, b) for a in CODES for b in CODES if CURRENCY_EXPONENTS[a] == CURRENCY_EXPONENTS[b]]


@given(amounts, st.sampled_from(_same_exponent_pairs()), roundings)
def test_convert_at_rate_one_preserves_amount(
    amount: int, pair: tuple[str, str], rounding: Rounding
) -> None:
    source, target = pair
    converted = Money.of_minor(amount, source).convert(target, "1", rounding)
    assert converted == Money.of_minor(amount, target)


@given(moneys, roundings, st.sampled_from([1, "1", Decimal("1.0000")]))
def test_multiply_by_one_is_identity(m: Money, rounding: Rounding, one: int | str) -> None:
    assert m.multiply(one, rounding) == m


@given(moneys, roundings, st.sampled_from(["100", Decimal(100), Decimal("100.00")]))
def test_percentage_100_is_identity(m: Money, rounding: Rounding, hundred: str | Decimal) -> None:
    assert m.percentage(hundred, rounding) == m


@given(moneys, st.integers(min_value=-1000, max_value=1000), roundings)
def test_multiply_by_integer_is_exact(m: Money, k: int, rounding: Rounding) -> None:
    assert m.multiply(k, rounding) == Money.of_minor(m.amount * k, m.currency)


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9
    )
)
def test_rounding_brackets_the_exact_value(value: Decimal) -> None:
    # FLOOR <= exact <= CEILING, DOWN/UP bracket by magnitude, and all modes
    # land on one of the two neighbouring minor units.
    exact = Fraction(value) * 100
    got = {mode: Money.from_decimal(value, "EUR", mode).amount for mode in Rounding}
    assert got[R.FLOOR] <= exact <= got[R.CEILING]
    assert got[R.CEILING] - got[R.FLOOR] in (0, 1)
    assert all(got[R.FLOOR] <= v <= got[R.CEILING] for v in got.values())
    assert abs(got[R.DOWN]) <= abs(exact) <= abs(got[R.UP])
    for mode in (R.HALF_EVEN, R.HALF_UP, R.HALF_DOWN):
        assert abs(got[mode] - exact) <= Fraction(1, 2)
