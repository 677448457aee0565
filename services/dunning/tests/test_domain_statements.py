"""Which statement period is due: pure, so every calendar edge is cheap to pin down."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.dunning.domain.statements import StatementPeriod, due_period


def test_none_is_never_due() -> None:
    assert due_period(date(2026, 3, 1), "none") is None


@pytest.mark.parametrize(
    ("today", "start", "end"),
    [
        (date(2026, 3, 1), date(2026, 2, 1), date(2026, 2, 28)),  # on the 1st
        (date(2026, 3, 31), date(2026, 2, 1), date(2026, 2, 28)),  # any later day, same month
        (date(2024, 3, 15), date(2024, 2, 1), date(2024, 2, 29)),  # leap year
        (date(2026, 1, 1), date(2025, 12, 1), date(2025, 12, 31)),  # across the year
        (date(2026, 12, 31), date(2026, 11, 1), date(2026, 11, 30)),
    ],
)
def test_monthly_covers_the_previous_calendar_month(today: date, start: date, end: date) -> None:
    assert due_period(today, "monthly") == StatementPeriod("monthly", start, end)


@pytest.mark.parametrize(
    ("today", "start", "end"),
    [
        (date(2026, 11, 23), date(2026, 11, 16), date(2026, 11, 22)),  # a Monday
        (date(2026, 11, 29), date(2026, 11, 16), date(2026, 11, 22)),  # the Sunday after
        (date(2026, 1, 1), date(2025, 12, 22), date(2025, 12, 28)),  # a Thursday, across years
        (date(2027, 1, 4), date(2026, 12, 28), date(2027, 1, 3)),  # a week spanning new year
    ],
)
def test_weekly_covers_the_previous_monday_to_sunday(today: date, start: date, end: date) -> None:
    period = due_period(today, "weekly")
    assert period == StatementPeriod("weekly", start, end)
    assert start.weekday() == 0 and end.weekday() == 6


def test_the_period_stays_the_same_all_period_long_and_moves_on_at_its_end() -> None:
    """One key per period: every day of a month (week) yields the same, the next its own."""
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(400)]
    for frequency in ("weekly", "monthly"):
        keys = [p.key for day in days if (p := due_period(day, frequency)) is not None]
        changes = [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
        for i in changes:  # a new period begins exactly on a Monday / on the 1st
            assert (days[i].weekday() == 0) if frequency == "weekly" else (days[i].day == 1)
        periods = [due_period(day, frequency) for day in days]
        for day, period in zip(days, periods, strict=True):
            assert period is not None and period.end < day  # closed before it is sent
            assert (day - period.end).days <= 31


def test_keys_differ_by_frequency_and_period() -> None:
    weekly = due_period(date(2026, 3, 2), "weekly")
    monthly = due_period(date(2026, 3, 2), "monthly")
    assert weekly is not None and monthly is not None
    assert weekly.key == "statement:weekly:2026-02-23:2026-03-01"
    assert monthly.key == "statement:monthly:2026-02-01:2026-02-28"
