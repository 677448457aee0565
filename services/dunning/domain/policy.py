"""Dunning policy: which steps a customer's overdue invoices go through, what a late fee comes to,
how a step's day adapts to how the customer pays, and when a message may go out.

Pure: no I/O, no clock. Days and instants are passed in; amounts are integer minor units
(``Money``), rates are ``Decimal`` and every rounding is half up, worked out exactly.

Decisions worth knowing:

* A policy is validated when built (``validate_steps``): unique step ids, at most one escalation
  and it comes last, late fees and escalation only after the due date (``offset_days > 0``:
  charging or escalating an invoice that is not overdue is never right), flat fees positive.
* The most specific policy wins: ``customer:<id>``, ``segment:<name>``, ``tenant``, then the
  built-in ``DEFAULT_POLICY``.
* Daily interest is simple interest, ACT/365: ``open * annual_rate / 100 * days / 365``, every
  calendar day counting and a year always 365 days (leap years too), rounded half up once.
* Timing adapts to behaviour, but escalation and late-fee steps never move earlier (they follow
  the policy exactly, which is what the customer agreed to), an overdue notice never goes out
  before the invoice is overdue, and a pre-due reminder never goes out after the due date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Final
from zoneinfo import ZoneInfo

from shared.contracts.dunning import DunningPolicyDefined, DunningStep, LateFee
from shared.contracts.fields import format_decimal
from shared.errors import ValidationFailed
from shared.money import Money, Rounding

__all__ = [
    "DAYS_PER_YEAR",
    "DEFAULT_POLICY",
    "DEFAULT_TIMING_RULES",
    "PaymentBehaviour",
    "Policy",
    "Timing",
    "TimingRules",
    "in_quiet_hours",
    "late_fee_amount",
    "next_send_time",
    "resolve_policy",
    "step_due_on",
    "timing_for",
    "validate_steps",
]

DAYS_PER_YEAR: Final = 365
"""ACT/365: daily interest divides the annual rate by 365 in every year, leap years too."""

_SCOPE_RE: Final = re.compile(
    r"tenant|builtin|segment:[A-Za-z0-9._-]{1,40}|customer:[A-Za-z0-9._:-]{1,64}"
)

# ============================================================================ validation

Problem = dict[str, Any]


def _problem(field: str, message: str) -> Problem:
    """One entry of ``details["errors"]``, shaped like ``build_event``'s so clients see one format."""
    return {"field": field, "message": message}


def _fail(what: str, problems: list[Problem]) -> ValidationFailed:
    first = problems[0]
    return ValidationFailed(
        f"invalid {what}: {first['field']}: {first['message']}", {"errors": problems}
    )


def _fee_problems(fee: LateFee, field: str) -> list[Problem]:
    """A fee that could charge nothing sensible (or in two currencies at once) is a policy bug."""
    problems: list[Problem] = []
    if fee.flat is not None and not fee.flat.is_positive():
        problems.append(_problem(f"{field}.flat", "a flat late fee must be positive"))
    if fee.minimum is not None and fee.minimum.is_negative():
        problems.append(_problem(f"{field}.minimum", "the minimum cannot be negative"))
    if fee.flat is not None and fee.minimum is not None:
        if fee.flat.currency != fee.minimum.currency:
            problems.append(_problem(f"{field}.minimum", "must be in the flat fee's currency"))
    return problems


def _step_problems(index: int, step: DunningStep) -> list[Problem]:
    """Per-step rules: fees and escalation only once the invoice is overdue."""
    field = f"steps[{index}]"
    problems: list[Problem] = []
    if step.late_fee is not None:
        if step.offset_days <= 0:
            problems.append(_problem(f"{field}.late_fee", "a late fee needs offset_days > 0"))
        problems.extend(_fee_problems(step.late_fee, f"{field}.late_fee"))
    if step.escalate and step.offset_days <= 0:
        problems.append(_problem(f"{field}.escalate", "escalation needs offset_days > 0"))
    return problems


def _duplicate_problems(steps: Sequence[DunningStep]) -> list[Problem]:
    """Step ids name what happened in events (``policy_step``), so each must be unambiguous."""
    seen: set[str] = set()
    problems: list[Problem] = []
    for index, step in enumerate(steps):
        if step.step_id in seen:
            problems.append(
                _problem(f"steps[{index}].step_id", f"duplicate step_id {step.step_id!r}")
            )
        seen.add(step.step_id)
    return problems


def _escalation_problems(steps: Sequence[DunningStep]) -> list[Problem]:
    """Escalation hands the account to collections: nothing may follow it, and it happens once."""
    escalations = [i for i, step in enumerate(steps) if step.escalate]
    if len(escalations) > 1:
        return [_problem(f"steps[{i}].escalate", "only one step may escalate") for i in escalations]
    if escalations and any(
        step.offset_days > steps[escalations[0]].offset_days
        for i, step in enumerate(steps)
        if i != escalations[0]
    ):
        return [_problem(f"steps[{escalations[0]}].escalate", "the escalation step must be last")]
    return []


def validate_steps(steps: Sequence[DunningStep]) -> tuple[DunningStep, ...]:
    """Check a policy's steps and return them in the order they happen.

    Sorted by ``offset_days`` (stable; on a tie the escalation step goes last). Every problem is
    reported at once in ``details["errors"]`` (fields index the steps as given), so a person
    fixing a policy sees them all. Raises ``ValidationFailed``.
    """
    problems: list[Problem] = []
    if not steps:
        problems.append(_problem("steps", "a policy needs at least one step"))
    problems.extend(_duplicate_problems(steps))
    problems.extend(_escalation_problems(steps))
    for index, step in enumerate(steps):
        problems.extend(_step_problems(index, step))
    if problems:
        raise _fail("dunning policy", problems)
    return tuple(sorted(steps, key=lambda step: (step.offset_days, step.escalate)))


# ================================================================================ policy


@dataclass(frozen=True)
class Policy:
    """A tenant's dunning policy for one scope; ``steps`` are kept validated and in order."""

    scope: str
    """``tenant``, ``segment:<name>``, ``customer:<id>`` or ``builtin`` (``DEFAULT_POLICY``)."""
    name: str
    steps: tuple[DunningStep, ...]
    min_interval_days: int = 3
    """At least this many days between two messages to the same customer (the scheduler's job)."""
    adapt_to_behaviour: bool = True
    """Whether ``timing_for`` may move steps for this policy (the caller checks it)."""

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        if _SCOPE_RE.fullmatch(self.scope) is None:
            problems.append(_problem("scope", f"unknown scope {self.scope!r}"))
        if not self.name.strip():
            problems.append(_problem("name", "a policy needs a name"))
        if self.min_interval_days < 0:
            problems.append(_problem("min_interval_days", "cannot be negative"))
        if problems:
            raise _fail("dunning policy", problems)
        object.__setattr__(self, "steps", validate_steps(self.steps))

    @classmethod
    def from_event(cls, event: DunningPolicyDefined) -> Policy:
        """The policy an event defines (validated again: an event is only as good as its writer)."""
        return cls(
            scope=event.scope,
            name=event.name,
            steps=tuple(event.steps),
            min_interval_days=event.min_interval_days,
            adapt_to_behaviour=event.adapt_to_behaviour,
        )


DEFAULT_POLICY: Final = Policy(
    scope="builtin",
    name="Ledgerline default",
    steps=(
        # A friendly heads-up before the due date: most late payments are forgotten invoices.
        DunningStep(step_id="pre_due_reminder", offset_days=-3, template="reminder"),
        # The day after the due date: the invoice is now overdue.
        DunningStep(step_id="overdue", offset_days=1, template="overdue"),
        # A week late: a firmer tone.
        DunningStep(step_id="firm", offset_days=7, template="firm"),
        # A month late: the last notice before fees and collections.
        DunningStep(step_id="final_notice", offset_days=30, template="final_notice"),
        # Six weeks late: 1.5% of the open amount, announced with the overdue template. No
        # minimum: a built-in policy cannot know a sensible one for every currency.
        DunningStep(
            step_id="late_fee",
            offset_days=45,
            template="overdue",
            late_fee=LateFee(kind="percent", percent=Decimal("1.5")),
        ),
        # Two months late: hand over to collections (credit places a hold).
        DunningStep(step_id="escalation", offset_days=60, template="escalation", escalate=True),
    ),
)
"""Used when a tenant defined no policy for the customer, its segment or itself."""


def resolve_policy(policies: Mapping[str, Policy], customer_id: str, segment: str | None) -> Policy:
    """The most specific policy for a customer, keyed by scope: ``customer:<id>``, then
    ``segment:<segment>``, then ``tenant``, else ``DEFAULT_POLICY``."""
    scopes = [f"customer:{customer_id}"]
    if segment:
        scopes.append(f"segment:{segment}")
    scopes.append("tenant")
    for scope in scopes:
        if scope in policies:
            return policies[scope]
    return DEFAULT_POLICY


# ============================================================================= late fees


def _check_currencies(fee: LateFee, currency: str) -> None:
    """A fee in another currency than the invoice cannot be charged without a rate."""
    problems = _fee_problems(fee, "late_fee")
    for name, amount in (("flat", fee.flat), ("minimum", fee.minimum)):
        if amount is not None and amount.currency != currency:
            problems.append(
                _problem(
                    f"late_fee.{name}",
                    f"in {amount.currency}, but the open amount is in {currency}",
                )
            )
    if problems:
        raise _fail("late fee", problems)


def _simple_interest(open_amount: Money, annual_rate_percent: Decimal, days: int) -> Money:
    """``open * rate / 100 * days / 365`` worked out exactly as a fraction, rounded half up once
    (never per day, which would drift)."""
    exact = Fraction(open_amount.amount) * Fraction(annual_rate_percent) * days
    exact /= 100 * DAYS_PER_YEAR
    half_up = (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)  # exact >= 0
    return Money.of_minor(half_up, open_amount.currency)


def _raw_fee(fee: LateFee, open_amount: Money, days_overdue: int) -> Money:
    if fee.kind == "flat":
        assert fee.flat is not None  # LateFee guarantees the amount of its kind
        return fee.flat
    if fee.kind == "percent":
        assert fee.percent is not None
        return open_amount.percentage(fee.percent, Rounding.HALF_UP)
    assert fee.annual_rate_percent is not None
    if days_overdue <= 0:
        return Money.zero(open_amount.currency)
    return _simple_interest(open_amount, fee.annual_rate_percent, days_overdue)


def late_fee_amount(fee: LateFee, open_amount: Money, days_overdue: int) -> Money:
    """What ``fee`` comes to on ``open_amount`` after ``days_overdue`` days, in its currency.

    ``flat``: the flat amount; ``percent``: ``open * percent / 100``; ``daily_interest``: simple
    interest ACT/365 for the days overdue (none on or before the due date). All half up. Below
    ``minimum`` the fee is zero (not worth a debit note), and nothing open means no fee, so the
    result is never negative. A flat fee or minimum in another currency raises
    ``ValidationFailed``.
    """
    _check_currencies(fee, open_amount.currency)
    zero = Money.zero(open_amount.currency)
    if not open_amount.is_positive():
        return zero
    amount = _raw_fee(fee, open_amount, days_overdue)
    if fee.minimum is not None and amount < fee.minimum:
        return zero
    return max(amount, zero)


# ================================================================================ timing


@dataclass(frozen=True)
class PaymentBehaviour:
    """How a customer has paid so far (from its paid invoices)."""

    invoices_paid: int
    """How many invoices the customer paid (the history the averages come from)."""
    average_days_late: Decimal
    """Mean of ``paid_on - due_date`` in days; negative means early."""
    on_time_rate: Decimal
    """Share (0..1) paid on or before the due date."""


@dataclass(frozen=True)
class Timing:
    """How far a step moves from its policy offset for this customer, and why."""

    shift_days: int
    """Negative: earlier than the policy's offset."""
    note: str | None
    """For people (``ReminderScheduled.timing_note``); ``None`` exactly when nothing moved."""


ON_SCHEDULE: Final = Timing(shift_days=0, note=None)


@dataclass(frozen=True)
class TimingRules:
    """When ``timing_for`` moves a step, and how far; a tenant may tune them."""

    min_history: int = 3
    """With fewer paid invoices nothing moves: too little to judge."""
    late_threshold_days: Decimal = Decimal(5)
    """At or beyond this average lateness, steps go earlier."""
    reliable_on_time_rate: Decimal = Decimal("0.9")
    """At or above this on-time share (and never late on average), pre-due reminders go later."""
    max_shift_days: int = 5
    """The most days a late payer's steps go earlier."""
    reliable_delay_days: int = 2
    """The most days a reliable payer's pre-due reminders go later."""

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        for name in ("min_history", "max_shift_days", "reliable_delay_days"):
            if getattr(self, name) < 0:
                problems.append(_problem(name, "cannot be negative"))
        if not Decimal(0) <= self.reliable_on_time_rate <= Decimal(1):
            problems.append(_problem("reliable_on_time_rate", "must be between 0 and 1"))
        if problems:
            raise _fail("timing rules", problems)


DEFAULT_TIMING_RULES: Final = TimingRules()


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _invoices(n: int) -> str:
    return f"{n} invoice" if n == 1 else f"{n} invoices"


def _late_payer_timing(
    behaviour: PaymentBehaviour, step: DunningStep, rules: TimingRules
) -> Timing:
    """Remind a habitually late payer earlier, by half its average lateness (capped), so the
    reminder lands when it would otherwise start thinking about paying."""
    if step.escalate or step.late_fee is not None:
        return ON_SCHEDULE  # fairness: fees and escalation follow the policy exactly
    half = (behaviour.average_days_late / 2).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    shift = -min(rules.max_shift_days, int(half))
    if step.offset_days > 0:
        shift = max(shift, 1 - step.offset_days)  # an overdue notice waits until it is overdue
    if shift == 0:
        return ON_SCHEDULE
    note = (
        f"{_days(-shift)} earlier: pays on average "
        f"{format_decimal(behaviour.average_days_late)} days late over "
        f"{_invoices(behaviour.invoices_paid)}"
    )
    return Timing(shift_days=shift, note=note)


def _reliable_payer_timing(
    behaviour: PaymentBehaviour, step: DunningStep, rules: TimingRules
) -> Timing:
    """Nudge a reliable payer a little later before the due date (fewer needless reminders), but
    never past it: a pre-due reminder sent after the due date would be an overdue notice."""
    if step.offset_days > 0 or step.escalate or step.late_fee is not None:
        return ON_SCHEDULE
    shift = min(rules.reliable_delay_days, -step.offset_days)
    if shift == 0:
        return ON_SCHEDULE
    percent = (behaviour.on_time_rate * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    note = (
        f"{_days(shift)} later: paid {format_decimal(percent)}% of "
        f"{_invoices(behaviour.invoices_paid)} on time"
    )
    return Timing(shift_days=shift, note=note)


def timing_for(
    behaviour: PaymentBehaviour | None,
    step: DunningStep,
    rules: TimingRules = DEFAULT_TIMING_RULES,
) -> Timing:
    """How far ``step`` moves for a customer who pays like ``behaviour`` (``None``: unknown).

    Late payers (average lateness at or beyond the threshold): every step goes earlier by
    ``min(max_shift_days, round_half_up(average_days_late / 2))``, except escalation and late-fee
    steps, and a step after the due date never moves to or before it. Reliable payers (on-time
    share at or above the threshold and not late on average): steps at or before the due date
    go later by up to ``reliable_delay_days``, but not past the due date. Otherwise, or with
    fewer than ``min_history`` paid invoices, nothing moves.
    """
    if behaviour is None or behaviour.invoices_paid < rules.min_history:
        return ON_SCHEDULE
    if behaviour.average_days_late >= rules.late_threshold_days:
        return _late_payer_timing(behaviour, step, rules)
    if behaviour.on_time_rate >= rules.reliable_on_time_rate and behaviour.average_days_late <= 0:
        return _reliable_payer_timing(behaviour, step, rules)
    return ON_SCHEDULE


def step_due_on(due_date: date, step: DunningStep, timing: Timing) -> date:
    """The day ``step`` falls due for an invoice due on ``due_date``: offset plus shift."""
    return due_date + timedelta(days=step.offset_days + timing.shift_days)


# ========================================================================== quiet hours


def _local(now: datetime, tz: str) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware: a naive instant has no local time")
    return now.astimezone(ZoneInfo(tz))


def _is_quiet(wall: time, start: time, end: time) -> bool:
    """``start`` inclusive, ``end`` exclusive; ``start > end`` wraps midnight."""
    if start == end:
        return False
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def in_quiet_hours(now: datetime, tz: str, start: time, end: time) -> bool:
    """Whether ``now`` falls in the customer's quiet hours ``[start, end)`` local time in ``tz``
    (e.g. 20:00-08:00, wrapping midnight); ``start == end`` means there are none."""
    return _is_quiet(_local(now, tz).time().replace(tzinfo=None), start, end)


def _first_instant_at(day: date, wall: time, zone: ZoneInfo, not_before: datetime) -> datetime:
    """The first instant from ``not_before`` on whose local wall time on ``day`` is ``wall`` or
    later, in UTC.

    An ambiguous wall time (autumn) gives its first occurrence, or its second when ``not_before``
    is already past the first. A wall time in a spring-forward gap does not exist; the first
    instant after it is the transition itself, found by bisecting between the two readings of the
    wall time (at most the gap's length apart).
    """
    naive = datetime.combine(day, wall.replace(tzinfo=None))
    early = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early.astimezone(zone).replace(tzinfo=None) != naive:
        return _transition(late, early, naive, zone)
    return early if early >= not_before else late


def _transition(low: datetime, high: datetime, naive: datetime, zone: ZoneInfo) -> datetime:
    """The instant clocks jump past ``naive`` (in a gap): ``low`` reads before it, ``high`` after."""
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)  # transitions fall on whole seconds


def _window_end(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """The end of the quiet window ``now`` (quiet) is in: today's ``end``, or tomorrow's when the
    window wraps midnight and began this evening."""
    local = now.astimezone(zone)
    day = local.date()
    if start > end and local.time().replace(tzinfo=None) >= start:
        day += timedelta(days=1)
    return _first_instant_at(day, end, zone, now)


def next_send_time(now: datetime, tz: str, start: time, end: time) -> datetime:
    """When a message may go out: ``now`` outside quiet hours, else the first instant the quiet
    window is over (its ``end``, local time in ``tz``, on the right day and DST-aware). UTC.

    Should a window's end fall in a spring-forward gap that also skips the time it is open (say
    02:15-02:00 on the night clocks jump from 02:00 to 03:00), the next window's end is taken. A
    window that starts inside an autumn repeated hour runs to its end even though the clock falls
    back to before its start once: later than strictly needed, never during quiet hours.
    """
    zone = ZoneInfo(tz)
    instant = _local(now, tz).astimezone(UTC)
    for _ in range(3):  # one window, or a few more only when a DST gap swallows the open time
        if not _is_quiet(instant.astimezone(zone).time().replace(tzinfo=None), start, end):
            return instant
        instant = _window_end(instant, zone, start, end)
    raise AssertionError(f"no time outside quiet hours {start}-{end} in {tz}")  # pragma: no cover
