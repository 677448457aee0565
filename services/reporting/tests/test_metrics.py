"""The receivables metrics, each against a hand-computed example (the arithmetic is beside it);
docs/metrics.md quotes these examples by test name."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.metrics import (
    DailyActivity,
    DsoPoint,
    Forecast,
    ForecastWeek,
    OpenItem,
    ar_turnover,
    bad_debt_ratio,
    balances,
    best_possible_dso,
    collection_effectiveness,
    countback_dso,
    dso_series,
    forecast_collections,
    month_periods,
    standard_dso,
    summed,
    trend_label,
    trend_slope,
    weighted_average_days,
)

D = Decimal


# --- DailyActivity, summed, balances ---------------------------------------------------------


def test_net_sales_and_ar_change() -> None:
    day = DailyActivity(
        day=date(2026, 3, 1),
        invoiced=10_000,
        fees=500,
        credit_notes=1_000,
        voids=2_000,
        collections=3_000,
        discounts=100,
        write_offs=400,
    )
    assert day.net_sales == 7_500  # 10_000 + 500 - 1_000 - 2_000
    assert day.ar_change == 4_000  # 7_500 - 3_000 - 100 - 400


def test_negative_collections_raise_the_receivables() -> None:
    # An un-application larger than the day's applications: -2_000 collected, +50 discount reversed.
    day = DailyActivity(day=date(2026, 3, 1), collections=-2_000, discounts=-50)
    assert day.ar_change == 2_050  # 0 - (-2_000) - (-50)


def test_summed_adds_the_days_in_range_and_is_dated_end() -> None:
    activity = [
        DailyActivity(day=date(2026, 3, 1), invoiced=1_000, collections=200),
        DailyActivity(day=date(2026, 3, 3), invoiced=500, fees=20, write_offs=70),
        DailyActivity(day=date(2026, 3, 3), credit_notes=100, discounts=5, voids=30),
        DailyActivity(day=date(2026, 2, 28), invoiced=99_999),  # before start: ignored
        DailyActivity(day=date(2026, 3, 4), invoiced=99_999),  # after end: ignored
    ]
    total = summed(activity, date(2026, 3, 1), date(2026, 3, 3))
    assert total == DailyActivity(
        day=date(2026, 3, 3),
        invoiced=1_500,  # 1_000 + 500
        fees=20,
        credit_notes=100,
        voids=30,
        collections=200,
        discounts=5,
        write_offs=70,
    )
    assert total.net_sales == 1_390  # 1_500 + 20 - 100 - 30


def test_summed_of_nothing_is_zero() -> None:
    assert summed([], date(2026, 3, 1), date(2026, 3, 31)) == DailyActivity(day=date(2026, 3, 31))


def test_balances_carry_forward_add_same_day_entries_and_ignore_order() -> None:
    activity = [
        DailyActivity(day=date(2026, 3, 3), invoiced=500),
        DailyActivity(day=date(2026, 3, 5), invoiced=99_999),  # after end: ignored
        DailyActivity(day=date(2026, 3, 1), invoiced=200),
        DailyActivity(day=date(2026, 3, 3), collections=300),
        DailyActivity(day=date(2026, 2, 28), invoiced=99_999),  # before start: ignored
    ]
    assert balances(1_000, activity, date(2026, 3, 1), date(2026, 3, 4)) == {
        date(2026, 3, 1): 1_200,  # 1_000 + 200
        date(2026, 3, 2): 1_200,  # no activity: carried forward
        date(2026, 3, 3): 1_400,  # 1_200 + 500 - 300
        date(2026, 3, 4): 1_400,  # carried forward
    }


def test_balances_refuse_a_reversed_range() -> None:
    with pytest.raises(ValueError):
        balances(0, [], date(2026, 3, 2), date(2026, 3, 1))


_DAYS = st.integers(min_value=-3, max_value=12).map(lambda n: date(2026, 3, 1) + timedelta(days=n))
_AMOUNTS = st.integers(min_value=0, max_value=1_000_000)
_ACTIVITY = st.builds(
    DailyActivity,
    day=_DAYS,
    invoiced=_AMOUNTS,
    fees=_AMOUNTS,
    credit_notes=_AMOUNTS,
    voids=_AMOUNTS,
    collections=st.integers(min_value=-1_000_000, max_value=1_000_000),
    discounts=st.integers(min_value=-1_000, max_value=1_000),
    write_offs=_AMOUNTS,
)


@given(
    opening=st.integers(min_value=-1_000_000, max_value=10_000_000),
    activity=st.lists(_ACTIVITY, max_size=30),
    span=st.integers(min_value=0, max_value=8),
)
def test_closing_balance_is_opening_plus_the_changes_in_range(
    opening: int, activity: list[DailyActivity], span: int
) -> None:
    start = date(2026, 3, 1)
    end = start + timedelta(days=span)
    result = balances(opening, activity, start, end)
    assert len(result) == span + 1
    in_range = sum(a.ar_change for a in activity if start <= a.day <= end)
    assert result[end] == opening + in_range
    assert result[end] == opening + summed(activity, start, end).ar_change


# --- standard DSO and the daily series -------------------------------------------------------


def test_standard_dso() -> None:
    assert standard_dso(30_000, 60_000, 90) == D("45.00")  # 30_000 / 60_000 * 90
    assert standard_dso(10_000, 30_000, 31) == D("10.33")  # 10_000 / 30_000 * 31 = 10.333...


def test_standard_dso_rounds_half_up() -> None:
    assert standard_dso(1, 8, 1) == D("0.13")  # 1 / 8 * 1 = 0.125 -> 0.13 (not 0.12)


def test_standard_dso_is_none_without_sales() -> None:
    assert standard_dso(30_000, 0, 90) is None
    assert standard_dso(30_000, -5_000, 90) is None  # more credited than sold


def test_dso_series_by_hand() -> None:
    # Window 2, days 03-02..03-04; opening is the end of 02-28 (= 03-02 - 2 days).
    activity = [
        DailyActivity(day=date(2026, 3, 4), invoiced=2_000, fees=100),  # net 2_100, change +2_100
        DailyActivity(day=date(2026, 3, 1), invoiced=1_000),  # net 1_000, change +1_000
        DailyActivity(day=date(2026, 3, 3), credit_notes=500),  # net -500, change -500
        DailyActivity(day=date(2026, 3, 2), invoiced=500, collections=800),  # net 500, change -300
        DailyActivity(day=date(2026, 2, 28), invoiced=99_999),  # before the window: ignored
    ]
    # Balances: 03-01 3_000 + 1_000 = 4_000; 03-02 3_700; 03-03 3_200; 03-04 5_300.
    assert dso_series(3_000, activity, date(2026, 3, 2), date(2026, 3, 4), 2) == [
        # sales 03-01..03-02 = 1_000 + 500 = 1_500; 3_700 / 1_500 * 2 = 4.933... -> 4.93
        DsoPoint(day=date(2026, 3, 2), receivables=3_700, credit_sales=1_500, dso=D("4.93")),
        # sales 03-02..03-03 = 500 - 500 = 0 -> undefined
        DsoPoint(day=date(2026, 3, 3), receivables=3_200, credit_sales=0, dso=None),
        # sales 03-03..03-04 = -500 + 2_100 = 1_600; 5_300 / 1_600 * 2 = 6.625 -> 6.63
        DsoPoint(day=date(2026, 3, 4), receivables=5_300, credit_sales=1_600, dso=D("6.63")),
    ]


def test_dso_series_single_day_window_one() -> None:
    # Opening is the end of 03-09; window 1 covers only 03-10: 2_000 / 1_000 * 1 = 2.00
    activity = [DailyActivity(day=date(2026, 3, 10), invoiced=1_000)]
    assert dso_series(1_000, activity, date(2026, 3, 10), date(2026, 3, 10), 1) == [
        DsoPoint(day=date(2026, 3, 10), receivables=2_000, credit_sales=1_000, dso=D("2.00"))
    ]


@pytest.mark.parametrize(
    ("start", "end", "window"),
    [
        (date(2026, 3, 1), date(2026, 3, 5), 0),
        (date(2026, 3, 5), date(2026, 3, 1), 30),
    ],
)
def test_dso_series_refuses_bad_arguments(start: date, end: date, window: int) -> None:
    with pytest.raises(ValueError):
        dso_series(0, [], start, end, window)


# --- countback DSO and its periods ------------------------------------------------------------


def test_countback_across_three_periods_with_a_partial_last_one() -> None:
    periods = [(31, 100_000), (28, 120_000), (31, 90_000)]  # newest first
    # 250_000 - 100_000 = 150_000 (31 days); - 120_000 = 30_000 (28 days);
    # 30_000 / 90_000 * 31 = 10.333... -> 31 + 28 + 10.33 = 69.33
    assert countback_dso(250_000, periods) == D("69.33")


def test_countback_runs_out_of_history() -> None:
    periods = [(31, 100_000), (28, 120_000), (31, 90_000)]
    # 400_000 - 100_000 - 120_000 - 90_000 = 90_000 left after the oldest period
    assert countback_dso(400_000, periods) is None
    assert countback_dso(1, []) is None


def test_countback_period_without_sales_adds_its_days() -> None:
    periods = [(30, 0), (31, 100_000), (30, 100_000)]
    # 30 days, nothing consumed; 150_000 - 100_000 = 50_000 (31 days); 50_000 / 100_000 * 30 = 15
    assert countback_dso(150_000, periods) == D("76.00")  # 30 + 31 + 15


def test_countback_exact_exhaustion_stops() -> None:
    # 100_000 - 100_000 = 0 after 31 days: done, the history is long enough.
    assert countback_dso(100_000, [(31, 100_000)]) == D("31.00")
    assert countback_dso(100_000, [(31, 100_000), (30, 0)]) == D("31.00")


def test_countback_without_receivables_is_zero() -> None:
    assert countback_dso(0, [(31, 100_000)]) == D("0.00")
    assert countback_dso(-500, []) == D("0.00")


def test_month_periods_mid_month() -> None:
    assert month_periods(date(2026, 3, 15), 3) == [
        (date(2026, 2, 16), date(2026, 3, 15)),
        (date(2026, 1, 16), date(2026, 2, 15)),
        (date(2025, 12, 16), date(2026, 1, 15)),
    ]


def test_month_periods_ending_march_31_are_calendar_months() -> None:
    # 03-31 minus 1 month = 02-28 (clamped) -> starts 03-01; minus 2 = 01-31; minus 3 = 12-31.
    assert month_periods(date(2026, 3, 31), 3) == [
        (date(2026, 3, 1), date(2026, 3, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 1, 1), date(2026, 1, 31)),
    ]


def test_month_periods_ending_feb_28_non_leap() -> None:
    # 2026-02-28 minus 1 month = 01-28 -> (01-29, 02-28); minus 2 = 12-28 -> (12-29, 01-28).
    assert month_periods(date(2026, 2, 28), 2) == [
        (date(2026, 1, 29), date(2026, 2, 28)),
        (date(2025, 12, 29), date(2026, 1, 28)),
    ]


def test_month_periods_leap_year() -> None:
    # 2028-02-29 minus 1 month = 01-29 -> (01-30, 02-29); minus 2 = 12-29 -> (12-30, 01-29).
    assert month_periods(date(2028, 2, 29), 2) == [
        (date(2028, 1, 30), date(2028, 2, 29)),
        (date(2027, 12, 30), date(2028, 1, 29)),
    ]
    # 2028-03-31 minus 1 month = 02-29 (clamped, leap) -> March; minus 2 = 01-31 -> February.
    assert month_periods(date(2028, 3, 31), 2) == [
        (date(2028, 3, 1), date(2028, 3, 31)),
        (date(2028, 2, 1), date(2028, 2, 29)),
    ]


def test_month_periods_count() -> None:
    assert month_periods(date(2026, 3, 31), 0) == []
    with pytest.raises(ValueError):
        month_periods(date(2026, 3, 31), -1)


# --- best possible DSO, CEI, turnover, bad debt -------------------------------------------------


def test_best_possible_dso() -> None:
    assert best_possible_dso(12_000, 60_000, 90) == D("18.00")  # 12_000 / 60_000 * 90
    assert best_possible_dso(12_000, 0, 90) is None


def test_collection_effectiveness() -> None:
    # (50_000 + 100_000 - 40_000) / (50_000 + 100_000 - 30_000) * 100
    # = 110_000 / 120_000 * 100 = 91.666... -> 91.67
    assert collection_effectiveness(50_000, 100_000, 40_000, 30_000) == D("91.67")
    # Everything collectible was collected: (0 + 1_000 - 0) / (0 + 1_000 - 0) * 100 = 100.00
    assert collection_effectiveness(0, 1_000, 0, 0) == D("100.00")


def test_collection_effectiveness_none_when_nothing_collectible() -> None:
    assert collection_effectiveness(0, 0, 0, 0) is None  # 0 + 0 - 0 = 0
    assert collection_effectiveness(10_000, 0, 10_000, 10_000) is None  # all still current


def test_ar_turnover() -> None:
    assert ar_turnover(120_000, 30_000, 50_000) == D("3.00")  # 120_000 / ((30_000 + 50_000) / 2)
    assert ar_turnover(100_000, 20_000, 40_000) == D("3.33")  # 100_000 / 30_000 = 3.333...
    assert ar_turnover(100_000, 0, 0) is None  # average 0
    assert ar_turnover(100_000, 5_000, -5_000) is None  # average 0 (credit balances)


def test_bad_debt_ratio() -> None:
    assert bad_debt_ratio(1_500, 200_000) == D("0.75")  # 1_500 / 200_000 * 100
    assert bad_debt_ratio(1_500, 0) is None


# --- weighted days, trends --------------------------------------------------------------------


def test_weighted_average_days() -> None:
    items = [(10_000, 10), (30_000, 40), (0, 500), (-5_000, 99)]  # the last two ignored
    # (10_000 * 10 + 30_000 * 40) / 40_000 = 1_300_000 / 40_000 = 32.50
    assert weighted_average_days(items) == D("32.50")


def test_weighted_average_days_late() -> None:
    # Average days late: one payment on time (0), one 9 days late, amounts 20_000 and 10_000.
    # (20_000 * 0 + 10_000 * 9) / 30_000 = 3.00
    assert weighted_average_days([(20_000, 0), (10_000, 9)]) == D("3.00")


def test_weighted_average_days_none_without_positive_amounts() -> None:
    assert weighted_average_days([]) is None
    assert weighted_average_days([(0, 5), (-100, 3)]) is None


def test_trend_slope() -> None:
    # x = 0, 1, 2; mean x 1, mean y 10/3; covariance (-1)(2 - 10/3) + (1)(5 - 10/3) = 3;
    # variance (-1)^2 + 1^2 = 2; slope 3 / 2 = 1.50
    assert trend_slope([D("2"), D("3"), D("5")]) == D("1.50")


def test_trend_slope_keeps_positions_of_missing_values() -> None:
    # Points (0, 4) and (2, 2): slope (2 - 4) / (2 - 0) = -1.00
    assert trend_slope([D("4"), None, D("2")]) == D("-1.00")


def test_trend_slope_rounds_half_up_away_from_zero() -> None:
    # Two points: slope = -0.125 - 0 = -0.125 -> -0.13
    assert trend_slope([D("0"), D("-0.125")]) == D("-0.13")


def test_trend_slope_needs_two_values() -> None:
    assert trend_slope([]) is None
    assert trend_slope([None, D("3"), None]) is None


@pytest.mark.parametrize(
    ("slope", "label"),
    [
        (None, "unknown"),
        (D("0.51"), "worsening"),
        (D("0.50"), "stable"),
        (D("0.00"), "stable"),
        (D("-0.50"), "stable"),
        (D("-0.51"), "improving"),
    ],
)
def test_trend_label(slope: Decimal | None, label: str) -> None:
    assert trend_label(slope) == label


def test_trend_label_of_a_slope_and_custom_tolerance() -> None:
    # Days late 0, 1, 1: mean x 1, mean y 2/3; covariance (-1)(-2/3) + (1)(1/3) = 1; slope 1/2
    assert trend_label(trend_slope([D("0"), D("1"), D("1")])) == "stable"  # 0.50 is not > 0.5
    assert trend_label(D("0.50"), tolerance=D("0.25")) == "worsening"


# --- forecast ---------------------------------------------------------------------------------


def test_forecast_collections() -> None:
    as_of = date(2026, 3, 11)  # a Wednesday: week 1 is Mon 03-09 .. Sun 03-15
    items = [
        # acme pays 10.5 days late -> 11 days (half up): 03-05 + 11 = 03-16 -> week 2
        OpenItem("acme", date(2026, 3, 5), 40_000),
        # overdue: 02-01 + 11 = 02-12, before as_of -> 03-11 -> week 1
        OpenItem("acme", date(2026, 2, 1), 7_000),
        # newco has no history: default 3.4 -> 3 days; 03-12 + 3 = 03-15 (Sunday) -> week 1
        OpenItem("newco", date(2026, 3, 12), 1_000),
        # 03-20 + 3 = 03-23 -> week 3
        OpenItem("newco", date(2026, 3, 20), 2_500),
        # slowco 40 days late: 03-20 + 40 = 04-29, after week 4 (ends 04-05) -> later
        OpenItem("slowco", date(2026, 3, 20), 9_000),
    ]
    history = {"acme": D("10.5"), "slowco": D("40")}
    assert forecast_collections(items, history, D("3.4"), as_of, 4) == Forecast(
        weeks=[
            ForecastWeek(
                date(2026, 3, 9), date(2026, 3, 15), expected=8_000, items=2
            ),  # 7_000 + 1_000
            ForecastWeek(date(2026, 3, 16), date(2026, 3, 22), expected=40_000, items=1),
            ForecastWeek(date(2026, 3, 23), date(2026, 3, 29), expected=2_500, items=1),
            ForecastWeek(date(2026, 3, 30), date(2026, 4, 5), expected=0, items=0),  # empty
        ],
        later=9_000,
    )


def test_forecast_as_of_a_monday_and_no_items() -> None:
    forecast = forecast_collections([], {}, D("0"), date(2026, 3, 9), 1)
    assert forecast == Forecast(
        weeks=[ForecastWeek(date(2026, 3, 9), date(2026, 3, 15), expected=0, items=0)], later=0
    )


@pytest.mark.parametrize("weeks", [0, 105])
def test_forecast_refuses_horizon_out_of_range(weeks: int) -> None:
    with pytest.raises(ValueError):
        forecast_collections([], {}, D("0"), date(2026, 3, 11), weeks)
