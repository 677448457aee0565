"""The risk score: a hand-computed example, every factor's explanation, the thin file, the trend,
the recommended limit per band, reassess, and properties (range, monotone, deterministic)."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.credit.domain.risk import (
    DEFAULT_WEIGHTS,
    InvoiceBehaviour,
    RiskAssessment,
    RiskSnapshot,
    RiskWeights,
    reassess,
    risk_band,
    score,
)
from shared.contracts.credit import RiskFactorRecord, RiskScoreChanged
from shared.errors import ValidationFailed
from shared.events.registry import registry
from shared.money import CurrencyMismatch, Money

AS_OF = date(2026, 3, 31)
CUSTOMER = "cust-42"


def eur(value: str) -> Money:
    return Money.from_decimal(value, "EUR")


def invoice(
    n: int,
    *,
    issued: date,
    due: date,
    paid: date | None = None,
    amount: str = "100.00",
    open_amount: str | None = None,
    disputed: bool = False,
    reversals: int = 0,
    currency: str = "EUR",
) -> InvoiceBehaviour:
    """Paid invoices have nothing open; unpaid ones are fully open unless told otherwise."""
    total = Money.from_decimal(amount, currency)
    if paid is not None:
        still_open = Money.zero(currency)
    elif open_amount is not None:
        still_open = Money.from_decimal(open_amount, currency)
    else:
        still_open = total
    return InvoiceBehaviour(
        invoice_id=uuid.UUID(int=n),
        amount=total,
        issue_date=issued,
        due_date=due,
        paid_on=paid,
        open_amount=still_open,
        disputed=disputed,
        reversals=reversals,
    )


def paid_days_late(n: int, days: int, *, due: date = date(2026, 1, 31)) -> InvoiceBehaviour:
    """A 100.00 EUR invoice issued 30 days before ``due`` and paid ``days`` after it."""
    return invoice(n, issued=due - timedelta(days=30), due=due, paid=due + timedelta(days=days))


def paid_series(*days_late: int) -> list[InvoiceBehaviour]:
    """Invoices due on consecutive days from 2026-01-01, paid ``days_late`` after each."""
    return [paid_days_late(n, d, due=date(2026, 1, n)) for n, d in enumerate(days_late, 1)]


def points(assessment: RiskAssessment) -> dict[str, int]:
    return {f.code: f.points for f in assessment.factors}


def explanation(assessment: RiskAssessment, code: str) -> str:
    factor = assessment.factor(code)
    assert factor is not None
    return factor.explanation


# The hand-computed example, as of 2026-03-31 in EUR (the USD invoice is ignored):
#
#   id  issued      due         paid        amount    open      days late
#   1   2025-12-01  2025-12-31  2025-12-29  1,000.00  0          0
#   2   2026-01-01  2026-01-31  2026-02-05  2,000.00  0          5  (disputed)
#   3   2026-01-15  2026-02-14  2026-02-24  1,500.00  0         10  (1 reversal)
#   4   2026-02-01  2026-03-03  -           1,200.00  1,200.00  28  (open, overdue)
#   5   2026-03-10  2026-04-09  -             800.00    800.00   -  (open, not yet due)
#   6   2026-02-01  2026-03-03  -             999.00 USD (other currency: ignored)
#
# average_days_late  (0 + 5 + 10 + 28) / 4 = 10.75 days      x 1 point/day  = 10.75
# late_share         3 of 4 late (2, 3 paid late; 4 overdue) = 0.75 x 25     = 18.75
# trend              recent (3, 4): (10 + 28) / 2 = 19; older (1, 2): (0 + 5) / 2 = 2.5;
#                    19 - 2.5 = +16.5 days                   x 0.25 (max 10) = 4.125
# disputes           1 of 5 = 0.2                            x 20            = 4
# reversals          1                                       x 15 (max 60)   = 15
# overdue_exposure   1,200.00 of 2,000.00 open = 0.6         x 20            = 12
#                                                                     total  = 64.625 -> 65
# Whole points: floors 10 + 18 + 4 + 4 + 15 + 12 = 63; the 2 left over go to the largest
# remainders (.75 average_days_late, .75 late_share): 11, 19, 4, 4, 15, 12 = 65 -> "high".
# Volume: issued after 2025-12-31 (90 days back): 2,000 + 1,500 + 1,200 + 800 = 5,500.00;
# / 3 = 1,833.333... a month; x 1 (high) = 1,833.33... -> rounded down to 1,833.00 EUR.
EXAMPLE = [
    invoice(1, issued=date(2025, 12, 1), due=date(2025, 12, 31), paid=date(2025, 12, 29),
            amount="1000.00"),
    invoice(2, issued=date(2026, 1, 1), due=date(2026, 1, 31), paid=date(2026, 2, 5),
            amount="2000.00", disputed=True),
    invoice(3, issued=date(2026, 1, 15), due=date(2026, 2, 14), paid=date(2026, 2, 24),
            amount="1500.00", reversals=1),
    invoice(4, issued=date(2026, 2, 1), due=date(2026, 3, 3), amount="1200.00"),
    invoice(5, issued=date(2026, 3, 10), due=date(2026, 4, 9), amount="800.00"),
    invoice(6, issued=date(2026, 2, 1), due=date(2026, 3, 3), amount="999.00", disputed=True,
            reversals=2, currency="USD"),
]  # fmt: skip


def example() -> RiskAssessment:
    return score(EXAMPLE, as_of=AS_OF, limit=eur("5000.00"), currency="EUR")


# ============================================================================ the example


def test_the_hand_computed_example() -> None:
    assessment = example()

    assert points(assessment) == {
        "average_days_late": 11,
        "late_share": 19,
        "trend": 4,
        "disputes": 4,
        "reversals": 15,
        "overdue_exposure": 12,
    }
    assert {f.code: f.value for f in assessment.factors} == {
        "average_days_late": Decimal("10.75"),
        "late_share": Decimal("0.75"),
        "trend": Decimal("16.5"),
        "disputes": Decimal("0.2"),
        "reversals": Decimal(1),
        "overdue_exposure": Decimal("0.6"),
    }
    assert assessment.score == 65
    assert assessment.band == "high"
    assert assessment.monthly_volume == eur("1833.33")
    assert assessment.recommended_limit == eur("1833.00")
    assert assessment.current_limit == eur("5000.00")
    assert (assessment.as_of, assessment.currency) == (AS_OF, "EUR")


def test_each_factor_explains_itself_with_its_numbers() -> None:
    assessment = example()

    assert [(f.code, f.label, f.explanation) for f in assessment.factors] == [
        (
            "average_days_late",
            "Average days late",
            "4 paid or overdue invoices (3 paid, 1 overdue) were 10.75 days late on average "
            "(43 days late in all)",
        ),
        (
            "late_share",
            "Share of invoices paid late",
            "3 of 4 invoices (75%) were paid late (2) or still open past their due date (1)",
        ),
        (
            "trend",
            "Trend in lateness",
            "the 2 invoices due most recently were 19 days late on average against 2.5 for the "
            "2 due before: 16.5 days worse",
        ),
        ("disputes", "Disputed invoices", "1 of 5 invoices (20%) was disputed"),
        (
            "reversals",
            "Payment reversals",
            "1 payment was reversed (chargebacks, bounced payments or other reversals) on "
            "1 invoice",
        ),
        (
            "overdue_exposure",
            "Overdue share of open amount",
            "1,200.00 EUR of the 2,000.00 EUR open (60%) is overdue as of 2026-03-31",
        ),
    ]
    assert assessment.limit_explanation == (
        "5,500.00 EUR invoiced in the 90 days to 2026-03-31 is 1,833.33 EUR a month; "
        "times 1 for high risk is 1,833.00 EUR, rounded down to whole EUR; "
        "the current limit is 5,000.00 EUR"
    )


def test_explanations_of_a_clean_or_empty_record() -> None:
    clean = score(paid_series(0, 0, 0, 0), as_of=AS_OF, limit=None, currency="EUR")

    assert clean.score == 0
    assert explanation(clean, "average_days_late") == (
        "4 paid invoices were 0 days late on average (0 days late in all)"
    )
    assert explanation(clean, "late_share") == "0 of 4 invoices (0%) were paid late"
    assert explanation(clean, "trend") == (
        "the 2 invoices due most recently were 0 days late on average against 0 for the 2 due "
        "before: no change"
    )
    assert explanation(clean, "disputes") == "none of 4 invoices was disputed"
    assert explanation(clean, "reversals") == "no payment has been reversed"
    assert explanation(clean, "overdue_exposure") == "nothing is open as of 2026-03-31"

    empty = score([], as_of=AS_OF, limit=None, currency="EUR")
    assert explanation(empty, "average_days_late") == (
        "no invoice has been paid or fallen overdue yet, so there is no lateness to average"
    )
    assert explanation(empty, "late_share") == "no invoice has been paid or fallen overdue yet"
    assert explanation(empty, "trend") == (
        "fewer than 2 paid or overdue invoices, so there is no trend yet"
    )
    assert explanation(empty, "disputes") == "no invoices on file"
    assert empty.limit_explanation == (
        "nothing was invoiced in EUR in the 90 days to 2026-03-31: no recommendation; "
        "no limit is set"
    )


def test_explanations_of_overdue_invoices_and_several_reversals() -> None:
    overdue = [
        invoice(1, issued=date(2026, 1, 1), due=date(2026, 1, 31), amount="300.00",
                open_amount="100.00", reversals=2),
        invoice(2, issued=date(2026, 2, 1), due=date(2026, 3, 3), reversals=1, disputed=True),
        invoice(3, issued=date(2026, 3, 1), due=date(2026, 3, 31)),
    ]  # fmt: skip
    assessment = score(overdue, as_of=AS_OF, limit=None, currency="EUR")

    # 2026-03-31 is 59 days after 2026-01-31 and 28 after 2026-03-03
    assert explanation(assessment, "average_days_late") == (
        "2 overdue invoices were 43.5 days late on average (87 days late in all)"
    )
    assert explanation(assessment, "late_share") == (
        "2 of 2 invoices (100%) were still open past their due date"
    )
    assert explanation(assessment, "trend") == (
        "the invoice due most recently was 28 days late against 59 for the one due before: "
        "31 days better (an improving trend adds no points)"
    )
    assert explanation(assessment, "disputes") == "1 of 3 invoices (33.33%) was disputed"
    assert explanation(assessment, "reversals") == (
        "3 payments were reversed (chargebacks, bounced payments or other reversals) on 2 invoices"
    )
    # due today is not overdue: 100.00 + 100.00 of 300.00 open
    assert explanation(assessment, "overdue_exposure") == (
        "200.00 EUR of the 300.00 EUR open (66.67%) is overdue as of 2026-03-31"
    )
    assert explanation(
        score(overdue[1:2], as_of=AS_OF, limit=None, currency="EUR"), "late_share"
    ) == ("1 of 1 invoice (100%) was still open past its due date")


# ============================================================================ thin file


def test_a_thin_file_adds_a_fixed_contribution_and_says_so() -> None:
    two = [paid_days_late(1, 0), paid_days_late(2, 0, due=date(2026, 2, 28))]
    assessment = score(two, as_of=AS_OF, limit=None, currency="EUR")

    thin = assessment.factor("thin_file")
    assert thin is not None
    assert (thin.value, thin.points) == (Decimal(2), 20)
    assert thin.explanation == (
        "only 2 invoices on file (fewer than 3): 20 points are added because there is too "
        "little history to judge"
    )
    assert (assessment.score, assessment.band) == (20, "low")

    nothing = score([], as_of=AS_OF, limit=None, currency="EUR")
    assert nothing.score == 20
    assert explanation(nothing, "thin_file").startswith("no invoices on file (fewer than 3)")

    three = [*two, paid_days_late(3, 0, due=date(2026, 3, 1))]
    assert score(three, as_of=AS_OF, limit=None, currency="EUR").factor("thin_file") is None
    assert score(three, as_of=AS_OF, limit=None, currency="EUR").score == 0


def test_invoices_in_other_currencies_or_issued_later_do_not_count() -> None:
    usd = [
        invoice(n, issued=date(2026, 1, 1), due=date(2026, 1, 31), currency="USD",
                disputed=True, reversals=3)
        for n in range(1, 6)
    ]  # fmt: skip
    future = invoice(9, issued=date(2026, 4, 1), due=date(2026, 4, 2), disputed=True)

    assessment = score([*usd, future], as_of=AS_OF, limit=None, currency="EUR")

    assert assessment == score([], as_of=AS_OF, limit=None, currency="EUR")


# ============================================================================ trend


def test_the_trend_is_positive_when_payment_gets_later() -> None:
    assessment = score(paid_series(0, 2, 10, 20), as_of=AS_OF, limit=None, currency="EUR")
    trend = assessment.factor("trend")

    assert trend is not None
    # recent (10 + 20) / 2 = 15, older (0 + 2) / 2 = 1: +14 days x 0.25 = 3.5. With 8 (average)
    # and 18.75 (late share) the total is 30.25 -> 30: floors 8 + 18 + 3 = 29, and the point
    # left over goes to the larger remainder (.75 of late share, not .5 of trend).
    assert trend.value == Decimal(14)
    assert trend.points == 3
    assert points(assessment)["late_share"] == 19
    assert assessment.score == 30


def test_an_improving_trend_is_negative_and_adds_no_points() -> None:
    trend = score(paid_series(20, 10, 2, 0), as_of=AS_OF, limit=None, currency="EUR").factor(
        "trend"
    )

    assert trend is not None
    assert trend.value == Decimal(-14)
    assert trend.points == 0


def test_the_trend_orders_by_due_date_and_leaves_out_the_middle_of_an_odd_count() -> None:
    # given out of order; by due date: 0, 100 (middle, in neither half), 8 -> +8 days
    odd = [
        paid_days_late(1, 8, due=date(2026, 1, 20)),
        paid_days_late(2, 0, due=date(2026, 1, 1)),
        paid_days_late(3, 100, due=date(2026, 1, 10)),
    ]
    trend = score(odd, as_of=AS_OF, limit=None, currency="EUR").factor("trend")

    assert trend is not None
    assert trend.value == Decimal(8)
    assert trend.points == 2
    assert trend.explanation.endswith("8 days worse (the middle invoice is in neither half)")


def test_the_trend_is_capped() -> None:
    spike = [paid_days_late(1, 0, due=date(2025, 6, 1)), paid_days_late(2, 200)]
    trend = score(spike, as_of=AS_OF, limit=None, currency="EUR").factor("trend")

    assert trend is not None
    assert (trend.value, trend.points) == (Decimal(200), 10)


# ============================================================================ score and bands


@pytest.mark.parametrize(
    ("score_", "band"),
    [(0, "low"), (24, "low"), (25, "medium"), (49, "medium"), (50, "high"), (74, "high"),
     (75, "severe"), (100, "severe")],
)  # fmt: skip
def test_bands(score_: int, band: str) -> None:
    assert risk_band(score_) == band


def test_the_score_is_capped_at_100_while_the_factors_keep_their_points() -> None:
    awful = [
        invoice(n, issued=date(2025, 1, 1), due=date(2025, 1, 31), disputed=True, reversals=2)
        for n in range(1, 5)
    ]
    assessment = score(awful, as_of=AS_OF, limit=None, currency="EUR")

    assert assessment.score == 100
    assert assessment.band == "severe"
    assert points(assessment)["average_days_late"] == 100  # 424 days, capped per factor
    assert sum(points(assessment).values()) > 100
    [event] = reassess(None, assessment, CUSTOMER)
    assert isinstance(event, RiskScoreChanged) and event.score == 100


# ============================================================================ recommended limit


def tuned(points_: str) -> RiskWeights:
    """Only the thin file scores, with ``points_``: a way to land in any band."""
    return dataclasses.replace(DEFAULT_WEIGHTS, thin_file_points=Decimal(points_))


@pytest.mark.parametrize(
    ("thin_points", "band", "recommended"),
    [
        # volume 1,234.56 EUR: 411.52 a month
        ("0", "low", "1234.00"),  # x 3 = 1,234.56 -> 1,234.00
        ("30", "medium", "823.00"),  # x 2 = 823.04 -> 823.00
        ("60", "high", "411.00"),  # x 1 = 411.52 -> 411.00
        ("80", "severe", "0.00"),  # x 0: cash in advance
    ],
)
def test_the_recommended_limit_per_band_is_rounded_down_to_whole_units(
    thin_points: str, band: str, recommended: str
) -> None:
    volume = [
        invoice(1, issued=date(2026, 3, 1), due=date(2026, 4, 30), amount="1000.00"),
        invoice(2, issued=date(2026, 3, 2), due=date(2026, 4, 30), amount="234.56"),
    ]
    assessment = score(volume, as_of=AS_OF, limit=None, currency="EUR", weights=tuned(thin_points))

    assert assessment.band == band
    assert assessment.monthly_volume == eur("411.52")
    assert assessment.recommended_limit == eur(recommended)


def test_the_cash_in_advance_recommendation_says_so() -> None:
    volume = [invoice(1, issued=date(2026, 3, 1), due=date(2026, 4, 30), amount="300.00")]
    assessment = score(volume, as_of=AS_OF, limit=None, currency="EUR", weights=tuned("90"))

    assert assessment.limit_explanation == (
        "300.00 EUR invoiced in the 90 days to 2026-03-31 is 100.00 EUR a month; times 0 for "
        "severe risk is 0.00 EUR (cash in advance), rounded down to whole EUR; no limit is set"
    )


@pytest.mark.parametrize(
    ("currency", "amount", "recommended"),
    [
        # 3 invoices of `amount` in 90 days: one `amount` a month, x 3 (low), rounded down
        ("JPY", "1000", "3000"),  # 3,000 JPY exactly
        ("KWD", "1.234", "3.000"),  # 3.702 -> 3.000
        ("EUR", "2.99", "8.00"),  # 8.97 -> 8.00
    ],
)
def test_rounding_down_respects_the_currency_exponent(
    currency: str, amount: str, recommended: str
) -> None:
    volume = [
        invoice(n, issued=date(2026, 3, n), due=date(2026, 4, 30), amount=amount, currency=currency)
        for n in range(1, 4)
    ]
    assessment = score(volume, as_of=AS_OF, limit=None, currency=currency)

    assert assessment.band == "low"
    assert assessment.monthly_volume == Money.from_decimal(amount, currency)
    assert assessment.recommended_limit == Money.from_decimal(recommended, currency)


def test_the_volume_window_is_the_90_days_up_to_as_of() -> None:
    def volume_on(issued: date) -> Money | None:
        one = invoice(1, issued=issued, due=issued + timedelta(days=60), amount="300.00")
        return score([one], as_of=AS_OF, limit=None, currency="EUR").monthly_volume

    assert volume_on(AS_OF) == eur("100.00")
    assert volume_on(AS_OF - timedelta(days=89)) == eur("100.00")
    assert volume_on(AS_OF - timedelta(days=90)) is None


def test_no_recent_volume_means_no_recommendation() -> None:
    old = [paid_days_late(n, 0, due=date(2025, 6, n)) for n in range(1, 5)]
    assessment = score(old, as_of=AS_OF, limit=eur("1000.00"), currency="EUR")

    assert assessment.recommended_limit is None
    assert assessment.monthly_volume is None
    assert assessment.limit_explanation.endswith(
        "no recommendation; the current limit is 1,000.00 EUR"
    )


# ============================================================================ bad input


def test_bad_input_is_refused() -> None:
    with pytest.raises(CurrencyMismatch):
        score([], as_of=AS_OF, limit=Money.from_decimal("1", "USD"), currency="EUR")
    with pytest.raises(ValueError, match="once"):
        score([paid_days_late(1, 0), paid_days_late(1, 3)], as_of=AS_OF, limit=None, currency="EUR")
    with pytest.raises(ValueError, match="ill-formed"):
        score([], as_of=AS_OF, limit=None, currency="eur")
    with pytest.raises(ValueError, match="open"):
        InvoiceBehaviour(uuid.UUID(int=1), eur("1.00"), AS_OF, AS_OF, AS_OF, eur("0.50"), False, 0)
    with pytest.raises(ValueError, match="before issue"):
        invoice(1, issued=AS_OF, due=AS_OF - timedelta(days=1))
    with pytest.raises(ValueError, match="negative"):
        invoice(1, issued=AS_OF, due=AS_OF, reversals=-1)
    with pytest.raises(CurrencyMismatch):
        InvoiceBehaviour(
            uuid.UUID(int=1), eur("1.00"), AS_OF, AS_OF, None, Money.of_minor(100, "USD"), False, 0
        )


def test_weights_that_could_break_monotonicity_or_are_floats_are_refused() -> None:
    with pytest.raises(ValueError, match="third"):
        RiskWeights(trend_points_per_day=Decimal("0.34"))
    RiskWeights(points_per_day_late=Decimal(3), trend_points_per_day=Decimal(1))
    with pytest.raises(ValueError, match="non-negative"):
        RiskWeights(late_share_points=Decimal(-1))
    with pytest.raises(TypeError, match="Decimal"):
        RiskWeights(late_share_points=25.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="riskier band"):
        RiskWeights(limit_multiplier_high=Decimal(5))


def test_the_trend_weight_limit_is_what_keeps_the_score_monotone() -> None:
    # Three invoices paid 10, 10 and 40 days late; then the first is paid 30 days later still.
    # Average: 20 -> 30 days (+10); trend (40 - 10 -> 40 - 40): 30 -> 0 days (-30, three times
    # as much, since the older "half" is one invoice of three). At the steepest trend allowed,
    # a third of the per-day weight, the two cancel out exactly:
    #   before 20 x 0.3 + 25 (all late) + 30 x 0.1 = 34; after 30 x 0.3 + 25 + 0 = 34.
    steepest = RiskWeights(points_per_day_late=Decimal("0.3"), trend_points_per_day=Decimal("0.1"))
    before = paid_series(10, 10, 40)
    after = [dataclasses.replace(before[0], paid_on=date(2026, 2, 10)), *before[1:]]  # +30

    def total(book: list[InvoiceBehaviour], weights: RiskWeights) -> int:
        return score(book, as_of=AS_OF, limit=None, currency="EUR", weights=weights).score

    assert total(before, steepest) == total(after, steepest) == 34
    # Any steeper (refused by RiskWeights, forced here) and paying later would lower the score.
    too_steep = dataclasses.replace(steepest)
    object.__setattr__(too_steep, "trend_points_per_day", Decimal("0.2"))
    assert total(before, too_steep) == 37 > total(after, too_steep) == 34


# ============================================================================ reassess


def test_the_first_assessment_is_published() -> None:
    assessment = example()

    [event] = reassess(None, assessment, CUSTOMER)

    assert event == RiskScoreChanged(
        customer_id=CUSTOMER,
        score=65,
        previous_score=None,
        band="high",
        factors=[f.to_record() for f in assessment.factors],
        recommended_limit=eur("1833.00"),
        as_of=AS_OF,
    )


def test_reprocessing_the_same_facts_publishes_nothing() -> None:
    assessment = example()
    [event] = reassess(None, assessment, CUSTOMER)
    assert isinstance(event, RiskScoreChanged)

    assert reassess(assessment, example(), CUSTOMER) == []
    assert reassess(event, example(), CUSTOMER) == []
    assert reassess(RiskSnapshot(65, "high", eur("1833.00")), example(), CUSTOMER) == []
    assert reassess((65, "high"), example(), CUSTOMER) == []


def test_a_changed_score_is_published_with_the_previous_one() -> None:
    before = example()
    paid = invoice(4, issued=date(2026, 2, 1), due=date(2026, 3, 3), paid=date(2026, 3, 30))
    paid_now = [*EXAMPLE[:3], paid, *EXAMPLE[4:]]
    after = score(paid_now, as_of=AS_OF, limit=eur("5000.00"), currency="EUR")
    assert after.score != before.score

    [event] = reassess(before, after, CUSTOMER)

    assert isinstance(event, RiskScoreChanged)
    assert (event.score, event.previous_score, event.band) == (after.score, 65, after.band)
    assert reassess((65, "high"), after, CUSTOMER) == [event]


def test_a_recommended_limit_moved_by_a_tenth_alone_is_published() -> None:
    before = example()
    assert before.recommended_limit == eur("1833.00")
    after = dataclasses.replace(before, recommended_limit=eur("2016.30"))  # +10 %

    [event] = reassess(before, after, CUSTOMER)

    assert isinstance(event, RiskScoreChanged)
    assert (event.score, event.previous_score) == (65, 65)
    assert event.recommended_limit == eur("2016.30")
    # a bare (score, band) pair cannot see the limit
    assert reassess((65, "high"), after, CUSTOMER) == []


@pytest.mark.parametrize("limit", ["2016.29", "1649.71", "1833.00"])
def test_a_recommended_limit_moved_by_less_than_a_tenth_is_not_news(limit: str) -> None:
    """It follows the volume invoiced: every issued invoice moved it a little."""
    before = example()
    assert (
        reassess(before, dataclasses.replace(before, recommended_limit=eur(limit)), CUSTOMER) == []
    )


@pytest.mark.parametrize(
    ("before_limit", "after_limit"),
    [("1833.00", "1649.70"), ("1833.00", None), (None, "1.00"), ("0.00", "1.00")],
)
def test_a_recommended_limit_that_falls_by_a_tenth_appears_or_goes_is_news(
    before_limit: str | None, after_limit: str | None
) -> None:
    before = dataclasses.replace(
        example(), recommended_limit=eur(before_limit) if before_limit else None
    )
    after = dataclasses.replace(before, recommended_limit=eur(after_limit) if after_limit else None)

    [event] = reassess(before, after, CUSTOMER)

    assert isinstance(event, RiskScoreChanged)
    assert event.recommended_limit == after.recommended_limit


def test_a_bad_customer_id_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed, match="customer_id"):
        reassess(None, example(), "has space")


# ============================================================================ the payload


def test_the_payload_is_consistent_and_strict() -> None:
    [event] = reassess(None, example(), CUSTOMER)
    data = event.model_dump(mode="json")

    assert data["factors"][0]["value"] == "10.75"
    assert registry.spec("RiskScoreChanged").payload_model is RiskScoreChanged
    for bad in (
        {**data, "score": 64},
        {**data, "score": 101},
        {**data, "band": "extreme"},
        {**data, "factors": []},
        {**data, "factors": [data["factors"][0], data["factors"][0]]},
        {**data, "recommended_limit": {"amount": -1, "currency": "EUR"}},
        {**data, "surprise": 1},
    ):
        with pytest.raises(ValidationError):
            RiskScoreChanged.model_validate(bad)
    with pytest.raises(ValidationError):
        RiskFactorRecord.model_validate({**data["factors"][0], "value": 10.75})
    with pytest.raises(ValidationError):
        RiskFactorRecord.model_validate({**data["factors"][0], "code": "Late Share"})


# ============================================================================ properties


@st.composite
def behaviours(draw: st.DrawFn, n: int) -> InvoiceBehaviour:
    """Mostly EUR, mostly paid, moderately late and rarely disputed or reversed, so that scores
    spread over the whole range instead of piling up at 100."""
    currency = draw(st.sampled_from(["EUR"] * 5 + ["USD"]))
    issued = AS_OF - timedelta(days=draw(st.integers(min_value=-3, max_value=150)))
    due = issued + timedelta(days=draw(st.integers(min_value=0, max_value=60)))
    amount = Money.of_minor(draw(st.integers(min_value=0, max_value=10**9)), currency)
    state = draw(st.sampled_from(["paid"] * 3 + ["open", "closed"]))
    paid = due + timedelta(days=draw(st.integers(min_value=-20, max_value=45)))
    open_minor = draw(st.integers(min_value=1, max_value=max(1, amount.amount)))
    return InvoiceBehaviour(
        invoice_id=uuid.UUID(int=n),
        amount=amount,
        issue_date=issued,
        due_date=due,
        paid_on=paid if state == "paid" else None,
        open_amount=Money.of_minor(open_minor if state == "open" else 0, currency),
        disputed=draw(st.sampled_from([False] * 6 + [True])),
        reversals=draw(st.sampled_from([0] * 12 + [1, 2])),
    )


@st.composite
def books(draw: st.DrawFn) -> list[InvoiceBehaviour]:
    size = draw(st.integers(min_value=0, max_value=12))
    return [draw(behaviours(n)) for n in range(size)]


WEIGHTS = st.sampled_from(
    [
        DEFAULT_WEIGHTS,
        # the steepest trend allowed (a third of the per-day weight), never capped
        RiskWeights(
            points_per_day_late=Decimal(3),
            trend_points_per_day=Decimal(1),
            trend_max_points=Decimal(100),
        ),
        RiskWeights(points_per_day_late=Decimal("0.3"), trend_points_per_day=Decimal("0.1")),
    ]
)


@given(book=books(), weights=WEIGHTS)
def test_the_score_is_between_0_and_100_and_adds_up(
    book: list[InvoiceBehaviour], weights: RiskWeights
) -> None:
    assessment = score(book, as_of=AS_OF, limit=None, currency="EUR", weights=weights)

    assert 0 <= assessment.score <= 100
    assert assessment.score == min(100, sum(f.points for f in assessment.factors))
    assert all(0 <= f.points <= 100 for f in assessment.factors)
    assert assessment.band == risk_band(assessment.score)
    if assessment.recommended_limit is not None:
        assert not assessment.recommended_limit.is_negative()
        assert assessment.recommended_limit.amount % 100 == 0


@settings(max_examples=300)
@given(book=books(), weights=WEIGHTS, data=st.data())
def test_paying_any_invoice_later_never_lowers_the_score(
    book: list[InvoiceBehaviour], weights: RiskWeights, data: st.DataObject
) -> None:
    paid = [i for i, inv in enumerate(book) if inv.paid_on is not None]
    if not paid:
        return
    index = data.draw(st.sampled_from(paid))
    delay = data.draw(st.integers(min_value=1, max_value=400))
    original = book[index]
    assert original.paid_on is not None
    later = [*book]
    later[index] = dataclasses.replace(original, paid_on=original.paid_on + timedelta(days=delay))

    before = score(book, as_of=AS_OF, limit=None, currency="EUR", weights=weights)
    after = score(later, as_of=AS_OF, limit=None, currency="EUR", weights=weights)

    assert after.score >= before.score


@given(book=books(), rng=st.randoms(use_true_random=False))
def test_the_score_is_deterministic_whatever_the_order(
    book: list[InvoiceBehaviour], rng: random.Random
) -> None:
    shuffled = [*book]
    rng.shuffle(shuffled)

    first = score(book, as_of=AS_OF, limit=eur("1000.00"), currency="EUR")

    assert score(book, as_of=AS_OF, limit=eur("1000.00"), currency="EUR") == first
    assert score(shuffled, as_of=AS_OF, limit=eur("1000.00"), currency="EUR") == first


@given(book=books(), previous=st.none() | st.integers(min_value=0, max_value=100))
def test_the_payload_survives_a_json_round_trip(
    book: list[InvoiceBehaviour], previous: int | None
) -> None:
    assessment = score(book, as_of=AS_OF, limit=None, currency="EUR")
    prior = None if previous is None else (previous, risk_band(previous))
    events = reassess(prior, assessment, CUSTOMER)
    if not events:
        return
    [event] = events

    new = registry.new_event(event)
    wire = json.loads(json.dumps(new.payload))

    assert registry.spec(new.event_type).payload_model.model_validate(wire) == event
