"""Which statement of account is due for a customer who asked for them (pure, no I/O).

A statement covers a closed period only (the previous calendar month, or the previous Monday to
Sunday), so its figures cannot change after it is sent. The period, not the day the scheduler
happens to run, names the statement: its key is what makes queueing it idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

StatementFrequency = Literal["none", "weekly", "monthly"]
FREQUENCIES: Final[tuple[StatementFrequency, ...]] = ("none", "weekly", "monthly")


@dataclass(frozen=True)
class StatementPeriod:
    """A closed period, both ends inclusive."""

    frequency: Literal["weekly", "monthly"]
    start: date
    end: date

    @property
    def key(self) -> str:
        """Unique per customer: at most one statement per frequency and period."""
        return f"statement:{self.frequency}:{self.start.isoformat()}:{self.end.isoformat()}"


def due_period(today: date, frequency: StatementFrequency) -> StatementPeriod | None:
    """The period whose statement is due on ``today``: from the 1st of a month on, the previous
    calendar month; from a Monday on, the previous Monday to Sunday; ``none``: nothing."""
    if frequency == "monthly":
        end = today.replace(day=1) - timedelta(days=1)
        return StatementPeriod("monthly", end.replace(day=1), end)
    if frequency == "weekly":
        end = today - timedelta(days=today.weekday() + 1)  # the Sunday before this week
        return StatementPeriod("weekly", end - timedelta(days=6), end)
    return None
