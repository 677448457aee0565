"""Dunning policy: the default policy, step validation, resolution, late fees, timing that adapts
to payment behaviour, and quiet hours (DST-aware)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.dunning.domain.policy import (
    DEFAULT_POLICY,
    PaymentBehaviour,
    Policy,
    Timing,
    TimingRules,
    in_quiet_hours,
    late_fee_amount,
    next_send_time,
    resolve_policy,
    step_due_on,
    timing_for,
    validate_steps,
)
from shared.contracts.dunning import DunningPolicyDefined, DunningStep, LateFee
from shared.errors import ValidationFailed
from shared.money import Money

# ============================================================================ builders


def step(step_id: str, offset: int, **fields: Any) -> DunningStep:
    return DunningStep(step_id=step_id, offset_days=offset, **fields)


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def policy(scope: str, name: str = "p") -> Policy:
    return Policy(scope=scope, name=name, steps=(step("overdue", 1),))


def errors_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = exc.value.details["errors"]
    return errors


INTEREST_8 = LateFee(kind="daily_interest", annual_rate_percent=Decimal(8))
FEE_STEP = step("fee", 45, late_fee=LateFee(kind="percent", percent=Decimal("1.5")))
ESCALATION_STEP = step("escalation", 60, template="escalation", escalate=True)
LATE = PaymentBehaviour(
    invoices_paid=8, average_days_late=Decimal("12.5"), on_time_rate=Decimal("0.25")
)
RELIABLE = PaymentBehaviour(
    invoices_paid=10, average_days_late=Decimal(-2), on_time_rate=Decimal("0.95")
)

# ======================================================================== default policy


def test_default_policy_shape() -> None:
    assert DEFAULT_POLICY.scope == "builtin"
    assert [(s.step_id, s.offset_days, s.template) for s in DEFAULT_POLICY.steps] == [
        ("pre_due_reminder", -3, "reminder"),
        ("overdue", 1, "overdue"),
        ("firm", 7, "firm"),
        ("final_notice", 30, "final_notice"),
        ("late_fee", 45, "overdue"),
        ("escalation", 60, "escalation"),
    ]
    fee_steps = [s for s in DEFAULT_POLICY.steps if s.late_fee is not None]
    assert [s.step_id for s in fee_steps] == ["late_fee"]
    assert fee_steps[0].late_fee == LateFee(kind="percent", percent=Decimal("1.5"))
    assert [s.escalate for s in DEFAULT_POLICY.steps] == [False] * 5 + [True]
    assert all(s.channel == "email" for s in DEFAULT_POLICY.steps)
    assert DEFAULT_POLICY.min_interval_days == 3
    assert DEFAULT_POLICY.adapt_to_behaviour


def test_policy_from_event_sorts_steps() -> None:
    event = DunningPolicyDefined(
        scope="segment:smb",
        name="SMB",
        steps=[step("firm", 7), step("overdue", 1)],
        min_interval_days=5,
        adapt_to_behaviour=False,
    )
    built = Policy.from_event(event)
    assert built.scope == "segment:smb"
    assert built.name == "SMB"
    assert [s.step_id for s in built.steps] == ["overdue", "firm"]
    assert built.min_interval_days == 5
    assert not built.adapt_to_behaviour


# ============================================================================ validation


def test_validate_steps_sorts_by_offset_with_escalation_last_on_a_tie() -> None:
    escalate = step("escalate", 30, escalate=True)
    result = validate_steps([escalate, step("b", 30), step("a", -3)])
    assert [s.step_id for s in result] == ["a", "b", "escalate"]


def test_duplicate_step_ids_are_rejected_with_details() -> None:
    with pytest.raises(ValidationFailed) as exc:
        validate_steps([step("overdue", 1), step("firm", 7), step("overdue", 14)])
    assert errors_of(exc) == [
        {"field": "steps[2].step_id", "message": "duplicate step_id 'overdue'"}
    ]
    assert exc.value.code == "validation_failed"


def test_escalation_must_be_last() -> None:
    with pytest.raises(ValidationFailed) as exc:
        validate_steps([step("escalate", 30, escalate=True), step("later", 40)])
    assert errors_of(exc) == [
        {"field": "steps[0].escalate", "message": "the escalation step must be last"}
    ]


def test_only_one_escalation() -> None:
    with pytest.raises(ValidationFailed) as exc:
        validate_steps([step("e1", 30, escalate=True), step("e2", 60, escalate=True)])
    assert [e["field"] for e in errors_of(exc)] == ["steps[0].escalate", "steps[1].escalate"]


def test_every_problem_is_reported_at_once() -> None:
    bad_fee = LateFee(kind="flat", flat=eur(0))
    with pytest.raises(ValidationFailed) as exc:
        validate_steps([step("a", 0, late_fee=bad_fee), step("a", -1, escalate=True)])
    assert {e["field"] for e in errors_of(exc)} == {
        "steps[1].step_id",
        "steps[0].late_fee",
        "steps[0].late_fee.flat",
        "steps[1].escalate",
    }


def test_flat_fee_and_minimum_in_different_currencies_is_rejected() -> None:
    fee = LateFee(kind="flat", flat=eur(500), minimum=Money.of_minor(100, "USD"))
    with pytest.raises(ValidationFailed) as exc:
        validate_steps([step("fee", 10, late_fee=fee)])
    assert errors_of(exc)[0]["field"] == "steps[0].late_fee.minimum"


def test_empty_policy_and_bad_scope_are_rejected() -> None:
    with pytest.raises(ValidationFailed):
        validate_steps([])
    with pytest.raises(ValidationFailed) as exc:
        Policy(scope="planet:mars", name="x", steps=(step("a", 1),))
    assert errors_of(exc)[0]["field"] == "scope"


# ============================================================================ resolution

POLICIES = {
    "tenant": policy("tenant", "tenant"),
    "segment:smb": policy("segment:smb", "smb"),
    "customer:c-1": policy("customer:c-1", "c-1"),
}


@pytest.mark.parametrize(
    ("policies", "customer", "segment", "expected"),
    [
        (POLICIES, "c-1", "smb", "c-1"),
        (POLICIES, "c-2", "smb", "smb"),
        (POLICIES, "c-2", "enterprise", "tenant"),
        (POLICIES, "c-2", None, "tenant"),
        ({"segment:smb": POLICIES["segment:smb"]}, "c-2", "other", "Ledgerline default"),
        ({}, "c-1", "smb", "Ledgerline default"),
    ],
)
def test_most_specific_policy_wins(
    policies: dict[str, Policy], customer: str, segment: str | None, expected: str
) -> None:
    assert resolve_policy(policies, customer, segment).name == expected


def test_no_policies_gives_the_builtin_one() -> None:
    assert resolve_policy({}, "c-1", None) is DEFAULT_POLICY


# ============================================================================= late fees


def test_flat_fee() -> None:
    fee = LateFee(kind="flat", flat=eur(4000))
    assert late_fee_amount(fee, eur(10), days_overdue=3) == eur(4000)


def test_flat_fee_in_another_currency_is_rejected() -> None:
    fee = LateFee(kind="flat", flat=Money.of_minor(4000, "USD"))
    with pytest.raises(ValidationFailed) as exc:
        late_fee_amount(fee, eur(100_000), days_overdue=3)
    assert errors_of(exc)[0]["field"] == "late_fee.flat"


def test_minimum_in_another_currency_is_rejected() -> None:
    fee = LateFee(kind="percent", percent=Decimal(2), minimum=Money.of_minor(5, "USD"))
    with pytest.raises(ValidationFailed):
        late_fee_amount(fee, eur(100_000), days_overdue=3)


def test_percent_fee_rounds_half_up() -> None:
    fee = LateFee(kind="percent", percent=Decimal("1.5"))
    assert late_fee_amount(fee, eur(100_000), 10) == eur(1500)
    assert late_fee_amount(fee, eur(1_00), 10) == eur(2)  # 1.5 cents -> 2


@pytest.mark.parametrize(
    ("open_minor", "currency", "days", "expected_minor"),
    [
        (100_000, "EUR", 30, 658),  # 1,000.00 EUR * 8% * 30/365 = 6.5753 -> 6.58 EUR
        (100_000, "JPY", 30, 658),  # 100,000 JPY -> 657.53 -> 658 JPY
        (1_000_000, "KWD", 30, 6575),  # 1,000.000 KWD -> 6.57534 -> 6.575 KWD
        (100_000, "EUR", 365, 8000),  # a full (ACT/365) year is exactly the annual rate
        (100_000, "EUR", 366, 8022),  # a leap year's extra day counts too
        (100_000, "EUR", 1, 22),  # 0.2192 EUR -> 0.22
    ],
)
def test_daily_interest_is_simple_act_365(
    open_minor: int, currency: str, days: int, expected_minor: int
) -> None:
    open_amount = Money.of_minor(open_minor, currency)
    assert late_fee_amount(INTEREST_8, open_amount, days) == Money.of_minor(
        expected_minor, currency
    )


def test_daily_interest_rounds_an_exact_half_up() -> None:
    fee = LateFee(kind="daily_interest", annual_rate_percent=Decimal("36.5"))
    assert late_fee_amount(fee, eur(500), 1) == eur(1)  # 500 * 0.365 / 365 = exactly 0.5 cents
    assert late_fee_amount(fee, eur(499), 1) == eur(0)  # 0.499 cents


def test_no_daily_interest_on_or_before_the_due_date() -> None:
    assert late_fee_amount(INTEREST_8, eur(100_000), 0) == eur(0)
    assert late_fee_amount(INTEREST_8, eur(100_000), -5) == eur(0)


def test_below_the_minimum_no_fee() -> None:
    fee = LateFee(kind="daily_interest", annual_rate_percent=Decimal(8), minimum=eur(500))
    assert late_fee_amount(fee, eur(100_000), 30) == eur(658)
    assert late_fee_amount(fee, eur(100_000), 20) == eur(0)  # 4.38 EUR < 5.00 EUR
    exactly = LateFee(kind="percent", percent=Decimal(5), minimum=eur(500))
    assert late_fee_amount(exactly, eur(10_000), 1) == eur(500)  # at the minimum: charged


def test_nothing_open_no_fee() -> None:
    flat = LateFee(kind="flat", flat=eur(4000))
    assert late_fee_amount(flat, eur(0), 10) == eur(0)
    assert late_fee_amount(flat, eur(-500), 10) == eur(0)  # a credit balance


CURRENCIES = st.sampled_from(["EUR", "JPY", "KWD"])
RATES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2)


@st.composite
def fees(draw: st.DrawFn, currency: str) -> LateFee:
    kind = draw(st.sampled_from(["flat", "percent", "daily_interest"]))
    minimum = draw(st.none() | st.integers(0, 10_000).map(lambda m: Money.of_minor(m, currency)))
    if kind == "flat":
        flat = Money.of_minor(draw(st.integers(1, 10**6)), currency)
        return LateFee(kind="flat", flat=flat, minimum=minimum)
    if kind == "percent":
        return LateFee(kind="percent", percent=draw(RATES), minimum=minimum)
    return LateFee(kind="daily_interest", annual_rate_percent=draw(RATES), minimum=minimum)


@given(st.data(), CURRENCIES, st.integers(-(10**9), 10**12), st.integers(-400, 4000))
def test_fees_are_never_negative(
    data: st.DataObject, currency: str, open_minor: int, days: int
) -> None:
    fee = data.draw(fees(currency))
    amount = late_fee_amount(fee, Money.of_minor(open_minor, currency), days)
    assert amount.currency == currency
    assert amount.amount >= 0


@given(
    CURRENCIES,
    RATES,
    st.integers(0, 10**12),
    st.integers(-30, 4000),
    st.integers(0, 400),
    st.none() | st.integers(0, 10**4),
)
def test_daily_interest_grows_with_days_overdue(
    currency: str, rate: Decimal, open_minor: int, days: int, more: int, minimum: int | None
) -> None:
    fee = LateFee(
        kind="daily_interest",
        annual_rate_percent=rate,
        minimum=None if minimum is None else Money.of_minor(minimum, currency),
    )
    open_amount = Money.of_minor(open_minor, currency)
    assert late_fee_amount(fee, open_amount, days) <= late_fee_amount(fee, open_amount, days + more)


# ================================================================================ timing


def test_late_payer_gets_reminders_earlier_with_a_note() -> None:
    timing = timing_for(LATE, step("firm", 7))
    # round_half_up(12.5 / 2 = 6.25) = 6, capped at 5
    assert timing == Timing(-5, "5 days earlier: pays on average 12.5 days late over 8 invoices")
    pre_due = timing_for(LATE, step("pre_due", -3))
    assert pre_due.shift_days == -5


def test_late_payer_shift_is_half_the_average_rounded_half_up() -> None:
    behaviour = PaymentBehaviour(5, Decimal(5), Decimal("0.4"))
    timing = timing_for(behaviour, step("firm", 7))
    assert timing.shift_days == -3  # 2.5 -> 3
    assert timing.note == "3 days earlier: pays on average 5 days late over 5 invoices"


def test_late_payer_overdue_notice_never_before_it_is_overdue() -> None:
    assert timing_for(LATE, step("overdue", 1)) == Timing(0, None)
    assert timing_for(LATE, step("overdue", 3)).shift_days == -2  # lands on due + 1


def test_late_payer_fee_and_escalation_steps_never_move() -> None:
    assert timing_for(LATE, FEE_STEP) == Timing(0, None)
    assert timing_for(LATE, ESCALATION_STEP) == Timing(0, None)


def test_below_the_late_threshold_nothing_moves() -> None:
    behaviour = PaymentBehaviour(8, Decimal("4.99"), Decimal("0.5"))
    assert timing_for(behaviour, step("firm", 7)) == Timing(0, None)


def test_reliable_payer_gets_pre_due_reminders_later_but_not_past_due() -> None:
    timing = timing_for(RELIABLE, step("pre_due", -3))
    assert timing == Timing(2, "2 days later: paid 95% of 10 invoices on time")
    assert timing_for(RELIABLE, step("pre_due", -1)).shift_days == 1  # to the due date, no later
    assert timing_for(RELIABLE, step("at_due", 0)) == Timing(0, None)


def test_reliable_payer_overdue_steps_unchanged() -> None:
    for overdue in (step("overdue", 1), FEE_STEP, ESCALATION_STEP):
        assert timing_for(RELIABLE, overdue) == Timing(0, None)


def test_reliable_needs_both_the_rate_and_no_lateness() -> None:
    on_time_but_late_on_average = PaymentBehaviour(10, Decimal("0.5"), Decimal("0.95"))
    assert timing_for(on_time_but_late_on_average, step("pre_due", -3)) == Timing(0, None)
    early_but_often_late = PaymentBehaviour(10, Decimal(-1), Decimal("0.8"))
    assert timing_for(early_but_often_late, step("pre_due", -3)) == Timing(0, None)


def test_too_little_history_no_shift() -> None:
    two_late = PaymentBehaviour(2, Decimal(30), Decimal(0))
    assert timing_for(two_late, step("firm", 7)) == Timing(0, None)
    assert timing_for(None, step("firm", 7)) == Timing(0, None)


def test_timing_rules_are_configurable() -> None:
    rules = TimingRules(min_history=1, late_threshold_days=Decimal(2), max_shift_days=1)
    behaviour = PaymentBehaviour(1, Decimal(3), Decimal(0))
    assert timing_for(behaviour, step("firm", 7), rules) == Timing(
        -1, "1 day earlier: pays on average 3 days late over 1 invoice"
    )
    with pytest.raises(ValidationFailed):
        TimingRules(reliable_on_time_rate=Decimal("1.5"))


def test_step_due_on_adds_offset_and_shift() -> None:
    due = date(2026, 2, 27)
    assert step_due_on(due, step("firm", 7), Timing(-5, "x")) == date(2026, 3, 1)
    assert step_due_on(due, step("pre_due", -3), Timing(0, None)) == date(2026, 2, 24)


behaviours = st.builds(
    PaymentBehaviour,
    invoices_paid=st.integers(0, 50),
    average_days_late=st.decimals(min_value=-30, max_value=120, places=2),
    on_time_rate=st.decimals(min_value=0, max_value=1, places=2),
)
steps = st.builds(
    DunningStep,
    step_id=st.just("s"),
    offset_days=st.integers(-60, 365),
    late_fee=st.none() | st.just(LateFee(kind="percent", percent=Decimal(1))),
    escalate=st.booleans(),
)


@given(st.none() | behaviours, steps, st.dates(date(2000, 1, 1), date(2100, 1, 1)))
def test_timing_and_due_day_are_consistent(
    behaviour: PaymentBehaviour | None, s: DunningStep, due: date
) -> None:
    timing = timing_for(behaviour, s)
    day = step_due_on(due, s, timing)
    assert day - due == timedelta(days=s.offset_days + timing.shift_days)
    assert step_due_on(due, s, Timing(0, None)) == due + timedelta(days=s.offset_days)
    assert (timing.note is None) == (timing.shift_days == 0)
    assert -5 <= timing.shift_days <= 2
    if s.escalate or s.late_fee is not None:
        assert timing.shift_days >= 0
    if s.offset_days > 0:
        assert day > due  # an overdue step stays after the due date
    else:
        assert day <= due  # a pre-due reminder never goes past it


# =========================================================================== quiet hours

EVENING, MORNING = time(20, 0), time(8, 0)
BERLIN = "Europe/Berlin"


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(BERLIN))


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        (berlin(2026, 1, 14, 19, 59), False),
        (berlin(2026, 1, 14, 20, 0), True),
        (berlin(2026, 1, 14, 23, 30), True),
        (berlin(2026, 1, 15, 0, 0), True),
        (berlin(2026, 1, 15, 7, 59), True),
        (berlin(2026, 1, 15, 8, 0), False),
        (berlin(2026, 1, 15, 12, 0), False),
    ],
)
def test_quiet_hours_across_midnight(local: datetime, quiet: bool) -> None:
    assert in_quiet_hours(local.astimezone(UTC), BERLIN, EVENING, MORNING) is quiet


def test_quiet_hours_within_a_day() -> None:
    lunch = (time(12, 0), time(13, 0))
    assert in_quiet_hours(berlin(2026, 1, 14, 12, 30), BERLIN, *lunch)
    assert not in_quiet_hours(berlin(2026, 1, 14, 13, 0), BERLIN, *lunch)
    assert next_send_time(berlin(2026, 1, 14, 12, 30), BERLIN, *lunch) == datetime(
        2026, 1, 14, 12, 0, tzinfo=UTC
    )


def test_start_equal_to_end_means_no_quiet_hours() -> None:
    now = datetime(2026, 1, 14, 22, 0, tzinfo=UTC)
    assert not in_quiet_hours(now, BERLIN, EVENING, EVENING)
    assert next_send_time(now, BERLIN, EVENING, EVENING) == now


def test_outside_quiet_hours_send_now_in_utc() -> None:
    now = berlin(2026, 1, 14, 10, 0)
    sent = next_send_time(now, BERLIN, EVENING, MORNING)
    assert sent == now
    assert sent.tzinfo is UTC


def test_quiet_evening_sends_next_morning() -> None:
    now = berlin(2026, 1, 14, 21, 0)  # CET, UTC+1
    assert next_send_time(now, BERLIN, EVENING, MORNING) == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)


def test_quiet_small_hours_send_the_same_morning() -> None:
    now = berlin(2026, 1, 15, 3, 0)
    assert next_send_time(now, BERLIN, EVENING, MORNING) == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)


def test_quiet_hours_over_the_march_dst_change() -> None:
    # Clocks go from 02:00 CET to 03:00 CEST on 29 March 2026: the night is an hour shorter.
    evening = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)  # 22:00 CET
    assert in_quiet_hours(evening, BERLIN, EVENING, MORNING)
    assert next_send_time(evening, BERLIN, EVENING, MORNING) == datetime(
        2026,
        3,
        29,
        6,
        0,
        tzinfo=UTC,  # 08:00 CEST, not 07:00 UTC
    )
    # 07:30 UTC is 08:30 CEST (no longer quiet), though it would be 08:30 - 1h in CET terms.
    assert not in_quiet_hours(datetime(2026, 3, 29, 6, 30, tzinfo=UTC), BERLIN, EVENING, MORNING)
    assert in_quiet_hours(datetime(2026, 3, 29, 5, 30, tzinfo=UTC), BERLIN, EVENING, MORNING)


def test_quiet_window_ending_in_the_dst_gap_ends_at_the_transition() -> None:
    # 02:30 does not exist on 29 March 2026 in Berlin; the first instant after it is 03:00 CEST.
    now = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET
    assert next_send_time(now, BERLIN, time(22, 0), time(2, 30)) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )


def test_quiet_window_whose_open_time_the_dst_gap_skips_ends_the_next_night() -> None:
    # Open only 02:00-02:15, which 29 March 2026 skips: 03:00 CEST is already quiet again.
    now = datetime(2026, 3, 28, 19, 0, tzinfo=UTC)
    assert next_send_time(now, BERLIN, time(2, 15), time(2, 0)) == datetime(
        2026,
        3,
        30,
        0,
        0,
        tzinfo=UTC,  # 02:00 CEST the next night
    )


def test_quiet_window_ending_in_the_autumn_overlap_ends_at_its_first_occurrence() -> None:
    # 02:30 happens twice on 25 October 2026; the window is over the first time (CEST, UTC+2).
    now = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # 00:00 CEST
    assert next_send_time(now, BERLIN, time(22, 0), time(2, 30)) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


def test_quiet_in_the_repeated_hour_ends_at_the_second_occurrence() -> None:
    now = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, the second 02:10 of the night
    assert next_send_time(now, BERLIN, time(22, 0), time(2, 30)) == datetime(
        2026, 10, 25, 1, 30, tzinfo=UTC
    )


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        in_quiet_hours(datetime(2026, 1, 14, 22, 0), BERLIN, EVENING, MORNING)


@given(
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([BERLIN, "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"]),
    st.times(),
    st.times(),
)
def test_next_send_time_is_never_quiet_and_never_early(
    now: datetime, tz: str, start: time, end: time
) -> None:
    sent = next_send_time(now, tz, start, end)
    assert sent.tzinfo is UTC
    assert now <= sent <= now + timedelta(hours=25)
    assert not in_quiet_hours(sent, tz, start, end)
    assert (sent == now) == (not in_quiet_hours(now, tz, start, end))
