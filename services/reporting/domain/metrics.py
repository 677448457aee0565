"""Receivables metrics: DSO (standard, daily series, countback, best possible), CEI, AR turnover,
bad-debt ratio, amount-weighted days, payment trends and the weekly cash-flow forecast.

Pure: no I/O, no clock, no database. Money is integer minor units of one currency (the caller
converts beforehand); ratios and days are ``Decimal``. Every ratio is worked out exactly with
``Fraction`` and rounded once, half up to 2 decimals, at the end of the public function, so a
result never depends on the order of operations or on float error. A metric whose denominator
would be zero (or is not meaningful, e.g. negative sales) is ``None``: undefined, not zero.

``docs/metrics.md`` describes every metric for finance users, with worked examples that are the
tests in ``services/reporting/tests/test_metrics.py``.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Final

__all__ = [
    "DailyActivity",
    "DsoPoint",
    "Forecast",
    "ForecastWeek",
    "OpenItem",
    "ar_turnover",
    "bad_debt_ratio",
    "balances",
    "best_possible_dso",
    "collection_effectiveness",
    "countback_dso",
    "dso_series",
    "forecast_collections",
    "month_periods",
    "standard_dso",
    "summed",
    "trend_label",
    "trend_slope",
    "weighted_average_days",
]

_ZERO: Final = Decimal("0.00")
_MAX_FORECAST_WEEKS: Final = 104
"""Two years of weeks: further out, a per-customer days-late average says nothing useful."""


@dataclass(frozen=True)
class DailyActivity:
    """What changed the receivables on one day (one currency, minor units, all >= 0 except noted)."""

    day: date
    invoiced: int = 0
    """Invoice totals issued that day (obligations arising)."""
    fees: int = 0
    """Late fees charged that day."""
    credit_notes: int = 0
    """Credit notes issued that day."""
    voids: int = 0
    """Open amounts removed by voiding invoices that day."""
    collections: int = 0
    """Cash applied to invoices that day, net of un-applications (may be negative)."""
    discounts: int = 0
    """Early-payment discounts taken, net of reversals (may be negative)."""
    write_offs: int = 0
    """Amounts written off that day."""

    @property
    def net_sales(self) -> int:
        """Credit sales net of what never was owed: credit notes and voids reduce them."""
        return self.invoiced + self.fees - self.credit_notes - self.voids

    @property
    def ar_change(self) -> int:
        """How much the receivables moved: what arose minus what was settled or given up."""
        return self.net_sales - self.collections - self.discounts - self.write_offs


def _days(start: date, end: date) -> list[date]:
    """Every calendar day in [start, end] (empty when start > end)."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _round(value: Fraction) -> Decimal:
    """The exact value rounded once to 2 decimals, half up (away from zero on a tie, as
    ``ROUND_HALF_UP``). Done on the fraction, since a ratio like 1/3 has no exact Decimal."""
    cents, remainder = divmod(abs(value.numerator) * 100, value.denominator)
    if 2 * remainder >= value.denominator:
        cents += 1
    sign = "-" if value < 0 and cents else ""
    return Decimal(f"{sign}{cents}E-2")


def summed(activity: Iterable[DailyActivity], start: date, end: date) -> DailyActivity:
    """The activity of the days in [start, end] added up, dated ``end``: one period's totals."""
    totals = DailyActivity(day=end)
    for entry in activity:
        if start <= entry.day <= end:
            totals = DailyActivity(
                day=end,
                invoiced=totals.invoiced + entry.invoiced,
                fees=totals.fees + entry.fees,
                credit_notes=totals.credit_notes + entry.credit_notes,
                voids=totals.voids + entry.voids,
                collections=totals.collections + entry.collections,
                discounts=totals.discounts + entry.discounts,
                write_offs=totals.write_offs + entry.write_offs,
            )
    return totals


def balances(
    opening: int, activity: Sequence[DailyActivity], start: date, end: date
) -> dict[date, int]:
    """Receivables at the end of every day in [start, end], ``opening`` being the end of the day
    before ``start``. Every day is present (quiet days carry the balance forward) so a chart or a
    trailing window never has gaps; entries outside the range are ignored, several entries for one
    day are added, and the order does not matter. Raises ``ValueError`` if start > end."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    change: defaultdict[date, int] = defaultdict(int)
    for entry in activity:
        if start <= entry.day <= end:
            change[entry.day] += entry.ar_change
    result: dict[date, int] = {}
    balance = opening
    for day in _days(start, end):
        balance += change[day]
        result[day] = balance
    return result


def standard_dso(receivables: int, credit_sales: int, days: int) -> Decimal | None:
    """Days sales outstanding: how many days of the period's credit sales are still owed.
    ``None`` when there were no (net positive) credit sales, since the ratio means nothing."""
    if credit_sales <= 0:
        return None
    return _round(Fraction(receivables * days, credit_sales))


@dataclass(frozen=True)
class DsoPoint:
    """Standard DSO at the end of one day, over the trailing window ending on that day."""

    day: date
    receivables: int
    credit_sales: int
    """Net sales over the trailing window ending on ``day``."""
    dso: Decimal | None


def dso_series(
    opening: int,
    activity: Sequence[DailyActivity],
    start: date,
    end: date,
    window_days: int,
) -> list[DsoPoint]:
    """Daily standard DSO for [start, end], each day over the ``window_days`` days ending on it.

    ``opening`` is the receivables at the end of day ``start - window_days`` and ``activity``
    covers (start - window_days, end], so the first day's window is complete too. Raises
    ``ValueError`` if window_days < 1 or start > end.
    """
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    first = start - timedelta(days=window_days - 1)
    balance_on = balances(opening, activity, first, end)
    sales: defaultdict[date, int] = defaultdict(int)
    for entry in activity:
        if first <= entry.day <= end:
            sales[entry.day] += entry.net_sales
    # Running sums: cumulative[i] = net sales of the first i days from `first`.
    days = _days(first, end)
    cumulative = [0]
    for day in days:
        cumulative.append(cumulative[-1] + sales[day])
    points: list[DsoPoint] = []
    for index in range(window_days - 1, len(days)):
        day = days[index]
        credit_sales = cumulative[index + 1] - cumulative[index + 1 - window_days]
        receivables = balance_on[day]
        points.append(
            DsoPoint(
                day=day,
                receivables=receivables,
                credit_sales=credit_sales,
                dso=standard_dso(receivables, credit_sales, window_days),
            )
        )
    return points


def countback_dso(receivables: int, period_sales: Sequence[tuple[int, int]]) -> Decimal | None:
    """DSO by the countback (exhaustion) method: how many days of the most recent sales the
    receivables amount to, walking back period by period. Unlike the standard ratio it does not
    smooth a sales spike over the whole window.

    ``period_sales`` is (days_in_period, net_sales), newest first. A period's sales, when the
    remaining receivables cover them, are consumed with all its days; otherwise the remainder
    counts as that fraction of the period and the walk stops. A period without positive sales adds
    its days and consumes nothing. The walk stops as soon as the receivables are exhausted.
    ``None`` when the periods run out with receivables left (the history given is too short);
    ``0.00`` when there are no receivables.
    """
    if receivables <= 0:
        return _ZERO
    remaining = receivables
    days = Fraction(0)
    for period_days, sales in period_sales:
        if sales <= 0:
            days += period_days
        elif remaining >= sales:
            remaining -= sales
            days += period_days
            if remaining == 0:
                return _round(days)
        else:
            return _round(days + Fraction(remaining * period_days, sales))
    return None


def _minus_months(day: date, months: int) -> date:
    """``day`` moved back ``months`` calendar months, the day of month clamped to the shorter
    month's last day (03-31 minus one month is 02-28 in 2026, 02-29 in 2028)."""
    month_index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def month_periods(end: date, count: int) -> list[tuple[date, date]]:
    """``count`` consecutive month-long periods ending on ``end``, newest first, as inclusive
    (start, end) pairs: the periods of ``countback_dso``. Each boundary is ``end`` minus whole
    months (clamped), always counted from ``end`` itself, so periods ending on a month's last day
    stay calendar months (03-31 gives March, February, January) instead of drifting."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    return [
        (_minus_months(end, k + 1) + timedelta(days=1), _minus_months(end, k)) for k in range(count)
    ]


def best_possible_dso(current_receivables: int, credit_sales: int, days: int) -> Decimal | None:
    """The DSO if every customer paid exactly on time: only not-yet-due receivables count. The gap
    to standard DSO is the part collections can still win back."""
    return standard_dso(current_receivables, credit_sales, days)


def collection_effectiveness(
    opening: int, credit_sales: int, closing: int, closing_current: int
) -> Decimal | None:
    """Collection effectiveness index, percent: what was collected out of what was collectible
    (everything except what is still not due). ``None`` when nothing was collectible."""
    collectible = opening + credit_sales - closing_current
    if collectible <= 0:
        return None
    return _round(Fraction((opening + credit_sales - closing) * 100, collectible))


def ar_turnover(credit_sales: int, opening: int, closing: int) -> Decimal | None:
    """How many times the average receivables were collected over the period. ``None`` when the
    average receivables are not positive."""
    total = opening + closing  # average = total / 2
    if total <= 0:
        return None
    return _round(Fraction(credit_sales * 2, total))


def bad_debt_ratio(write_offs: int, credit_sales: int) -> Decimal | None:
    """Written-off amounts as a percent of net credit sales. ``None`` without positive sales."""
    if credit_sales <= 0:
        return None
    return _round(Fraction(write_offs * 100, credit_sales))


def weighted_average_days(items: Iterable[tuple[int, int]]) -> Decimal | None:
    """Mean days weighted by amount, so a large late invoice weighs more than a small one (average
    days to pay, average days late). Items without a positive amount are ignored; ``None`` when
    none is left."""
    total_amount = 0
    total_weighted = 0
    for amount, days in items:
        if amount > 0:
            total_amount += amount
            total_weighted += amount * days
    if total_amount == 0:
        return None
    return _round(Fraction(total_weighted, total_amount))


def trend_slope(values: Sequence[Decimal | None]) -> Decimal | None:
    """Least-squares slope of the values against their position (0, 1, 2, ... oldest first), in
    units per step (e.g. days late per month). A ``None`` value (a month without payments) is left
    out but keeps its position, so the gap still counts as time passing. ``None`` with fewer than
    two values, since one point has no slope."""
    points = [(Fraction(x), Fraction(y)) for x, y in enumerate(values) if y is not None]
    n = len(points)
    if n < 2:
        return None
    mean_x = sum((x for x, _ in points), Fraction(0)) / n
    mean_y = sum((y for _, y in points), Fraction(0)) / n
    covariance = sum(((x - mean_x) * (y - mean_y) for x, y in points), Fraction(0))
    variance = sum(((x - mean_x) ** 2 for x, _ in points), Fraction(0))
    return _round(covariance / variance)


def trend_label(slope: Decimal | None, tolerance: Decimal = Decimal("0.5")) -> str:
    """Words for a days-late slope: growing lateness is "worsening"; within ``tolerance`` either
    way is "stable" so noise does not flip the label; "unknown" without a slope."""
    if slope is None:
        return "unknown"
    if slope > tolerance:
        return "worsening"
    if slope < -tolerance:
        return "improving"
    return "stable"


@dataclass(frozen=True)
class OpenItem:
    """One open, undisputed amount expected to be collected."""

    customer_id: str
    due_date: date
    amount: int
    """Minor units, > 0."""


@dataclass(frozen=True)
class ForecastWeek:
    """Collections expected in one Monday-to-Sunday week."""

    week_start: date
    week_end: date
    expected: int
    items: int


@dataclass(frozen=True)
class Forecast:
    """Expected collections per week from the week of ``as_of``, and what falls after them."""

    weeks: list[ForecastWeek]
    later: int


def forecast_collections(
    items: Iterable[OpenItem],
    days_late_by_customer: Mapping[str, Decimal],
    default_days_late: Decimal,
    as_of: date,
    weeks: int,
) -> Forecast:
    """Weekly cash-flow forecast: each item is expected on its due date plus its customer's usual
    days late (rounded half up to whole days; ``default_days_late`` for a customer without
    history), but never before ``as_of``, since overdue money can only come in from now on.

    Weeks run Monday to Sunday, the first being the one containing ``as_of``; every week is listed,
    even empty ones, so the result is a fixed grid. Amounts expected after the last week go to
    ``later``. Raises ``ValueError`` unless 1 <= weeks <= 104.
    """
    if not 1 <= weeks <= _MAX_FORECAST_WEEKS:
        raise ValueError(f"weeks must be between 1 and {_MAX_FORECAST_WEEKS}, got {weeks}")
    first_monday = as_of - timedelta(days=as_of.weekday())
    expected = [0] * weeks
    counts = [0] * weeks
    later = 0
    for item in items:
        days_late = days_late_by_customer.get(item.customer_id, default_days_late)
        shift = int(days_late.quantize(Decimal(1), rounding=ROUND_HALF_UP))
        on = max(item.due_date + timedelta(days=shift), as_of)
        week = (on - first_monday).days // 7
        if week < weeks:
            expected[week] += item.amount
            counts[week] += 1
        else:
            later += item.amount
    return Forecast(
        weeks=[
            ForecastWeek(
                week_start=first_monday + timedelta(weeks=w),
                week_end=first_monday + timedelta(weeks=w, days=6),
                expected=expected[w],
                items=counts[w],
            )
            for w in range(weeks)
        ],
        later=later,
    )
