"""Payment terms: validation per kind, wording, due dates, instalment schedules and discounts."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.invoice.domain.terms import (
    discount_deadline,
    due_date,
    early_payment_discount,
    schedule,
)
from shared.contracts.invoice import (
    EarlyPaymentDiscount,
    Installment,
    InstallmentSpec,
    PaymentMethod,
    PaymentTerms,
    TermsKind,
)
from shared.money import Money


def net(days: int, discount: tuple[str, int] | None = None) -> PaymentTerms:
    epd = None
    if discount is not None:
        epd = EarlyPaymentDiscount(percent=Decimal(discount[0]), within_days=discount[1])
    return PaymentTerms(kind=TermsKind.NET, net_days=days, early_payment_discount=epd)


def plan(*specs: tuple[int, str]) -> PaymentTerms:
    return PaymentTerms(
        kind=TermsKind.INSTALLMENTS,
        installments=[InstallmentSpec(days_after_issue=d, percent=Decimal(p)) for d, p in specs],
    )


# ------------------------------------------------------------------------ validation


def test_payment_methods_and_kinds_are_the_catalogue() -> None:
    assert [m.value for m in PaymentMethod] == [
        "card",
        "ach",
        "direct_debit",
        "bank_transfer",
        "wallet",
        "cheque",
        "cash",
    ]
    assert [k.value for k in TermsKind] == [
        "net",
        "due_on_receipt",
        "end_of_month",
        "installments",
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "net"},  # net_days missing
        {"kind": "net", "net_days": 30, "eom_plus_days": 5},
        {"kind": "net", "net_days": -1},
        {"kind": "net", "net_days": 3651},
        {"kind": "net", "net_days": True},  # bool is not a number of days
        {"kind": "net", "net_days": 30.0},
        {"kind": "due_on_receipt", "net_days": 0},
        {"kind": "end_of_month"},
        {"kind": "end_of_month", "eom_plus_days": 15, "net_days": 30},
        {"kind": "installments"},
        {
            "kind": "net",
            "net_days": 30,
            "installments": [
                {"days_after_issue": 0, "percent": "50"},
                {"days_after_issue": 30, "percent": "50"},
            ],
        },
        {"kind": "weekly"},
        {"kind": "net", "net_days": 30, "surprise": 1},
        {
            "kind": "net",
            "net_days": 30,
            "early_payment_discount": {"percent": "100", "within_days": 10},
        },
        {
            "kind": "net",
            "net_days": 30,
            "early_payment_discount": {"percent": "0", "within_days": 10},
        },
        {
            "kind": "net",
            "net_days": 30,
            "early_payment_discount": {"percent": 2.0, "within_days": 10},
        },
        {
            "kind": "net",
            "net_days": 30,
            "early_payment_discount": {"percent": "2", "within_days": 366},
        },
        {"kind": "net", "net_days": 30, "late_fee_policy": ""},
    ],
)
def test_terms_refuse_fields_that_do_not_fit_the_kind(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PaymentTerms.model_validate(fields)


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([(30, "100")], "at least 2"),
        ([(0, "50"), (30, "49.99")], "sum to exactly 100"),
        ([(0, "50"), (30, "50.01")], "sum to exactly 100"),
        ([(30, "50"), (30, "50")], "strictly increasing"),
        ([(60, "50"), (30, "50")], "strictly increasing"),
    ],
)
def test_installment_plans_must_be_well_formed(specs: list[tuple[int, str]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        plan(*specs)


@pytest.mark.parametrize("percent", ["0", "-5", "100.01"])
def test_an_installment_percent_is_above_zero_and_at_most_100(percent: str) -> None:
    with pytest.raises(ValidationError):
        InstallmentSpec(days_after_issue=0, percent=Decimal(percent))


@pytest.mark.parametrize(
    ("terms", "wording"),
    [
        (net(30), "Net 30"),
        (PaymentTerms(kind=TermsKind.DUE_ON_RECEIPT), "Due on receipt"),
        (PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=15), "EOM + 15"),
        (plan((0, "30"), (30, "30"), (60, "40")), "3 installments"),
        (net(30, ("2", 10)), "2% 10, Net 30"),
        (net(60, ("1.50", 15)), "1.5% 15, Net 60"),
    ],
)
def test_describe_uses_the_usual_wording(terms: PaymentTerms, wording: str) -> None:
    assert terms.describe() == wording


def test_terms_survive_a_json_round_trip_exactly() -> None:
    terms = PaymentTerms(
        kind=TermsKind.INSTALLMENTS,
        installments=[
            InstallmentSpec(days_after_issue=0, percent=Decimal("33.333")),
            InstallmentSpec(days_after_issue=30, percent=Decimal("33.333")),
            InstallmentSpec(days_after_issue=60, percent=Decimal("33.334")),
        ],
        early_payment_discount=EarlyPaymentDiscount(percent=Decimal("1.25"), within_days=7),
        late_fee_policy="standard-eu",
    )
    dumped = terms.model_dump(mode="json")
    assert dumped["installments"][0]["percent"] == "33.333"  # a string, never a float
    again = PaymentTerms.model_validate(dumped)
    assert again == terms
    assert again.installments is not None
    assert str(again.installments[2].percent) == "33.334"


# ------------------------------------------------------------------------- due dates


@pytest.mark.parametrize(
    ("terms", "issued", "due"),
    [
        (net(30), date(2026, 1, 15), date(2026, 2, 14)),
        (net(0), date(2026, 1, 15), date(2026, 1, 15)),
        (PaymentTerms(kind=TermsKind.DUE_ON_RECEIPT), date(2026, 3, 9), date(2026, 3, 9)),
        # EOM: last day of the issue month, then N days
        (
            PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=15),
            date(2026, 1, 31),
            date(2026, 2, 15),
        ),
        (
            PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=0),
            date(2026, 2, 1),
            date(2026, 2, 28),
        ),
        (
            PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=0),
            date(2028, 2, 10),
            date(2028, 2, 29),
        ),
        (
            PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=1),
            date(2028, 2, 29),
            date(2028, 3, 1),
        ),
        (
            PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=1),
            date(2026, 2, 28),
            date(2026, 3, 1),
        ),
        (
            PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=30),
            date(2100, 2, 3),
            date(2100, 3, 30),
        ),
        (
            PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=15),
            date(2026, 12, 1),
            date(2027, 1, 15),
        ),
        (plan((0, "50"), (45, "50")), date(2026, 1, 1), date(2026, 2, 15)),
    ],
)
def test_due_date_per_kind(terms: PaymentTerms, issued: date, due: date) -> None:
    assert due_date(terms, issued) == due


# ------------------------------------------------------------------------- schedules


def test_non_installment_terms_schedule_one_installment_of_the_total() -> None:
    total = Money.of_minor(12345, "EUR")
    assert schedule(net(30), date(2026, 1, 1), total) == [
        Installment(due_date=date(2026, 1, 31), amount=total)
    ]


def test_kwd_installments_sum_to_the_total_to_the_fils() -> None:
    # 10.001 KWD = 10001 fils. Exact shares: 33.33% -> 3333.3333, 33.33% -> 3333.3333,
    # 33.34% -> 3334.3334. Floors 3333 + 3333 + 3334 = 10000; the 1 fils left over goes to the
    # largest remainder (.3334, the third instalment) -> 3335.
    terms = plan((0, "33.33"), (30, "33.33"), (60, "33.34"))
    installments = schedule(terms, date(2026, 1, 10), Money.of_minor(10001, "KWD"))
    assert installments == [
        Installment(due_date=date(2026, 1, 10), amount=Money.of_minor(3333, "KWD")),
        Installment(due_date=date(2026, 2, 9), amount=Money.of_minor(3333, "KWD")),
        Installment(due_date=date(2026, 3, 11), amount=Money.of_minor(3335, "KWD")),
    ]


def test_jpy_installments_have_no_fractional_yen() -> None:
    # 1001 JPY at 50/50: exact shares 500.5 each; floors 500 + 500, the leftover yen goes to the
    # earlier instalment on the tie.
    terms = plan((0, "50"), (30, "50"))
    amounts = [i.amount for i in schedule(terms, date(2026, 1, 1), Money.of_minor(1001, "JPY"))]
    assert amounts == [Money.of_minor(501, "JPY"), Money.of_minor(500, "JPY")]
    # 3 x 33.33..: percents must sum to exactly 100, so thirds are written 33.33/33.33/33.34
    terms = plan((0, "33.33"), (10, "33.33"), (20, "33.34"))
    amounts = [i.amount for i in schedule(terms, date(2026, 1, 1), Money.of_minor(100, "JPY"))]
    assert [a.amount for a in amounts] == [33, 33, 34]


@st.composite
def installment_plans(draw: st.DrawFn) -> PaymentTerms:
    n = draw(st.integers(min_value=2, max_value=12))
    # n positive weights in basis points (0.01 %) summing to 10000
    cuts = sorted(draw(st.sets(st.integers(1, 9999), min_size=n - 1, max_size=n - 1)))
    bps = [b - a for a, b in zip([0, *cuts], [*cuts, 10000], strict=True)]
    days = sorted(draw(st.sets(st.integers(0, 3650), min_size=n, max_size=n)))
    return PaymentTerms(
        kind=TermsKind.INSTALLMENTS,
        installments=[
            InstallmentSpec(days_after_issue=d, percent=Decimal(b).scaleb(-2))
            for d, b in zip(days, bps, strict=True)
        ],
    )


@given(
    terms=installment_plans(),
    amount=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from(["EUR", "JPY", "KWD", "CLF"]),
    issued=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
)
def test_installments_always_sum_exactly_to_the_total(
    terms: PaymentTerms, amount: int, currency: str, issued: date
) -> None:
    total = Money.of_minor(amount, currency)
    installments = schedule(terms, issued, total)
    assert terms.installments is not None
    assert len(installments) == len(terms.installments)
    assert sum(i.amount.amount for i in installments) == amount
    for spec, inst in zip(terms.installments, installments, strict=True):
        exact = Fraction(amount) * Fraction(spec.percent) / 100
        assert abs(inst.amount.amount - exact) < 1  # largest remainder: within one minor unit
        assert inst.due_date == issued + timedelta(days=spec.days_after_issue)
    assert installments[-1].due_date == due_date(terms, issued)


# ------------------------------------------------------------------------- discounts


def test_early_payment_discount_inside_the_inclusive_window() -> None:
    terms = net(30, ("2", 10))
    issued = date(2026, 1, 1)
    due = Money.of_minor(10000, "EUR")
    assert discount_deadline(terms, issued) == date(2026, 1, 11)
    assert early_payment_discount(terms, issued, date(2026, 1, 1), due) == Money.of_minor(
        200, "EUR"
    )
    assert early_payment_discount(terms, issued, date(2026, 1, 11), due) == Money.of_minor(
        200, "EUR"
    )
    assert early_payment_discount(terms, issued, date(2026, 1, 12), due) == Money.zero("EUR")


def test_early_payment_discount_rounds_half_up() -> None:
    # 2% of 10.25 EUR = 0.205 EUR -> 0.21 (half up); 2% of 1025 JPY = 20.5 -> 21
    terms = net(30, ("2", 10))
    issued = date(2026, 1, 1)
    assert early_payment_discount(
        terms, issued, issued, Money.of_minor(1025, "EUR")
    ) == Money.of_minor(21, "EUR")
    assert early_payment_discount(
        terms, issued, issued, Money.of_minor(1025, "JPY")
    ) == Money.of_minor(21, "JPY")


def test_no_discount_without_a_discount_term() -> None:
    issued = date(2026, 1, 1)
    assert discount_deadline(net(30), issued) is None
    assert early_payment_discount(
        net(30), issued, issued, Money.of_minor(999, "KWD")
    ) == Money.zero("KWD")
