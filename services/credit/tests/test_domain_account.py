"""The CreditAccount aggregate: limits (maker-checker), policy, holds and evolve.

Given events / when a command / then the events it decides. Credit checks are in
``test_domain_checks.py``; the builders below are shared with the other domain test files.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.credit.domain.account import (
    DEFAULT_MAX_DAYS_OVERDUE,
    CreditAccountState,
    Hold,
    InvalidEventSequence,
    PendingLimitChange,
    approve_limit_change,
    change_limit,
    evolve,
    place_hold,
    reject_limit_change,
    release_automatic_holds,
    release_hold,
    replay,
    update_policy,
)
from shared.contracts.credit import (
    CreditCheckPassed,
    CreditDocument,
    CreditHoldPlaced,
    CreditHoldReleased,
    CreditLimitChanged,
    CreditLimitChangeRejected,
    CreditLimitChangeRequested,
    CreditPolicyUpdated,
)
from shared.contracts.invoice import TermsKind
from shared.contracts.payments import PaymentUnallocated
from shared.errors import Forbidden, NotFound, StateConflict, ValidationFailed
from shared.events.registry import EventPayload
from shared.money import Money

# ============================================================================ builders

CUSTOMER = "cust-42"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=15)
ALICE = "user:alice"
BOB = "user:bob"
THRESHOLD = Money.from_decimal("5000.00", "EUR")


def eur(value: str) -> Money:
    return Money.from_decimal(value, "EUR")


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def given(*events: EventPayload) -> CreditAccountState:
    """The account after ``events`` (an empty account for none)."""
    return replay(events) or CreditAccountState(customer_id=CUSTOMER)


def then(state: CreditAccountState, events: list[EventPayload]) -> CreditAccountState:
    for event in events:
        state = evolve(state, event)
    return state


def limit_changed(value: str, previous: str | None = None) -> CreditLimitChanged:
    return CreditLimitChanged(
        customer_id=CUSTOMER,
        limit=eur(value),
        previous_limit=None if previous is None else eur(previous),
        reason="initial assessment",
        changed_by=ALICE,
    )


def change_requested(
    value: str, previous: str | None = None, request: int = 100, by: str = ALICE
) -> CreditLimitChangeRequested:
    return CreditLimitChangeRequested(
        customer_id=CUSTOMER,
        request_id=uid(request),
        limit=eur(value),
        previous_limit=None if previous is None else eur(previous),
        reason="bigger orders expected",
        requested_by=by,
    )


def hold_placed(
    hold: int, reason: str = "fraud review", rule: str | None = None
) -> CreditHoldPlaced:
    """A manual hold, or an automatic one when ``rule`` is given."""
    return CreditHoldPlaced(
        customer_id=CUSTOMER,
        hold_id=uid(hold),
        kind="manual" if rule is None else "automatic",
        rule=rule,
        reason=reason,
        placed_by=ALICE if rule is None else "system:credit",
    )


def check_passed(
    check: int,
    reference: str,
    amount: str,
    *,
    limit: str = "1000.00",
    exposure: str = "0.00",
    reserved: str = "0.00",
    until: datetime = NOW + TTL,
) -> CreditCheckPassed:
    return CreditCheckPassed(
        customer_id=CUSTOMER,
        check_id=uid(check),
        reference=reference,
        amount=eur(amount),
        reserved_until=until,
        limit=eur(limit),
        exposure=eur(exposure),
        reserved=eur(reserved),
        headroom_after=eur(limit) - eur(exposure) - eur(reserved) - eur(amount),
    )


def set_limit(
    state: CreditAccountState | None,
    value: Money,
    *,
    by: str = ALICE,
    request: int = 100,
    threshold: Money | None = THRESHOLD,
    reason: str = "bigger orders expected",
    review_date: date | None = None,
) -> list[EventPayload]:
    return change_limit(
        state,
        CUSTOMER,
        value,
        reason,
        by,
        request_id=uid(request),
        approval_threshold=threshold,
        review_date=review_date,
    )


# ============================================================================ limits


def test_the_first_limit_sets_the_currency() -> None:
    events = set_limit(None, eur("1000.00"), reason="initial assessment")

    assert events == [limit_changed("1000.00")]
    state = then(given(), events)
    assert state.currency == "EUR"
    assert state.limit == eur("1000.00")
    assert state.version == 1


def test_a_later_limit_must_be_in_the_accounts_currency() -> None:
    state = given(limit_changed("1000.00"))

    with pytest.raises(ValidationFailed, match="is in EUR, not USD"):
        set_limit(state, Money.from_decimal("1000.00", "USD"), threshold=None)


def test_a_limit_cannot_be_negative() -> None:
    with pytest.raises(ValidationFailed, match="cannot be negative"):
        set_limit(None, eur("-0.01"))


def test_a_zero_limit_is_allowed() -> None:
    assert set_limit(given(limit_changed("1000.00")), eur("0.00")) == [
        CreditLimitChanged(
            customer_id=CUSTOMER,
            limit=eur("0.00"),
            previous_limit=eur("1000.00"),
            reason="bigger orders expected",
            changed_by=ALICE,
        )
    ]


def test_the_command_must_name_the_accounts_customer() -> None:
    with pytest.raises(ValidationFailed, match="does not own"):
        change_limit(
            given(limit_changed("1000.00")),
            "someone-else",
            eur("900.00"),
            "r",
            ALICE,
            request_id=uid(1),
            approval_threshold=None,
        )


def test_the_approval_threshold_must_be_in_the_limits_currency() -> None:
    with pytest.raises(ValidationFailed, match="approval threshold is in USD"):
        set_limit(None, eur("10.00"), threshold=Money.from_decimal("10.00", "USD"))


def test_a_blank_reason_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed, match="reason"):
        set_limit(None, eur("10.00"), reason="   ")


def test_an_increase_above_the_threshold_waits_for_approval() -> None:
    state = given(limit_changed("1000.00"))

    events = set_limit(state, eur("6000.00"))

    assert events == [change_requested("6000.00", "1000.00")]
    after = then(state, events)
    assert after.limit == eur("1000.00")
    assert after.pending_change == PendingLimitChange(
        request_id=uid(100),
        limit=eur("6000.00"),
        previous_limit=eur("1000.00"),
        requested_by=ALICE,
        reason="bigger orders expected",
    )


def test_a_first_limit_above_the_threshold_also_waits_for_approval() -> None:
    assert set_limit(None, eur("5000.01")) == [change_requested("5000.01")]


@pytest.mark.parametrize(
    ("new_limit", "needs_approval"),
    [("4999.99", False), ("5000.00", False), ("5000.01", True)],
)
def test_threshold_boundary_a_limit_equal_to_the_threshold_needs_no_approval(
    new_limit: str, needs_approval: bool
) -> None:
    events = set_limit(given(limit_changed("1000.00")), eur(new_limit))

    assert len(events) == 1
    expected = CreditLimitChangeRequested if needs_approval else CreditLimitChanged
    assert type(events[0]) is expected


def test_a_decrease_never_needs_approval_even_above_the_threshold() -> None:
    state = given(limit_changed("9000.00"))

    events = set_limit(state, eur("8000.00"))

    assert [type(e) for e in events] == [CreditLimitChanged]
    assert then(state, events).limit == eur("8000.00")


def test_without_a_threshold_every_change_takes_effect_at_once() -> None:
    events = set_limit(given(limit_changed("1000.00")), eur("1000000.00"), threshold=None)

    assert [type(e) for e in events] == [CreditLimitChanged]


def test_setting_the_same_limit_again_changes_nothing() -> None:
    assert set_limit(given(limit_changed("1000.00")), eur("1000.00")) == []


def test_the_same_limit_with_a_new_review_date_is_recorded() -> None:
    state = given(limit_changed("1000.00"))

    events = set_limit(state, eur("1000.00"), review_date=date(2026, 9, 1))

    assert len(events) == 1
    assert isinstance(events[0], CreditLimitChanged)
    assert events[0].review_date == date(2026, 9, 1)
    assert then(state, events).review_date == date(2026, 9, 1)
    assert set_limit(then(state, events), eur("1000.00"), review_date=date(2026, 9, 1)) == []


def test_only_one_request_may_be_pending() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))

    with pytest.raises(StateConflict, match="is pending approval"):
        set_limit(state, eur("7000.00"), by=BOB, request=101)


def test_no_limit_changes_while_a_request_is_pending() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))

    with pytest.raises(StateConflict, match="approve or reject it first"):
        set_limit(state, eur("500.00"), by=BOB, request=101)


def test_repeating_the_pending_request_changes_nothing() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))

    assert set_limit(state, eur("6000.00"), request=999) == []


def test_a_second_person_approves_a_pending_change() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))

    events = approve_limit_change(state, uid(100), BOB)

    assert events == [
        CreditLimitChanged(
            customer_id=CUSTOMER,
            limit=eur("6000.00"),
            previous_limit=eur("1000.00"),
            reason="bigger orders expected",
            changed_by=ALICE,
            approved_by=BOB,
            request_id=uid(100),
        )
    ]
    after = then(state, events)
    assert after.limit == eur("6000.00")
    assert after.pending_change is None
    assert after.decided_requests == {uid(100): "approved"}


def test_maker_checker_the_requester_cannot_approve_their_own_change() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))

    with pytest.raises(Forbidden) as raised:
        approve_limit_change(state, uid(100), ALICE)

    assert raised.value.message == "maker-checker: the requester cannot approve their own change"
    assert raised.value.status_code == 403


def test_an_approved_first_limit_sets_the_currency() -> None:
    state = given(change_requested("6000.00"))
    assert state.currency is None

    after = then(state, approve_limit_change(state, uid(100), BOB))

    assert after.currency == "EUR"
    assert after.limit == eur("6000.00")


def test_approving_twice_changes_nothing() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))
    state = then(state, approve_limit_change(state, uid(100), BOB))

    assert approve_limit_change(state, uid(100), BOB) == []


def test_approving_an_unknown_request_is_not_found() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))

    with pytest.raises(NotFound):
        approve_limit_change(state, uid(555), BOB)
    with pytest.raises(NotFound):
        reject_limit_change(given(limit_changed("1000.00")), uid(555), BOB, "no")


def test_a_pending_change_can_be_rejected() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))

    events = reject_limit_change(state, uid(100), BOB, "payment history too short")

    assert events == [
        CreditLimitChangeRejected(
            customer_id=CUSTOMER,
            request_id=uid(100),
            rejected_by=BOB,
            reason="payment history too short",
        )
    ]
    after = then(state, events)
    assert after.limit == eur("1000.00")
    assert after.pending_change is None
    assert reject_limit_change(after, uid(100), BOB, "again") == []


def test_the_requester_may_withdraw_their_own_request() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))

    events = reject_limit_change(state, uid(100), ALICE, "withdrawn")

    assert [type(e) for e in events] == [CreditLimitChangeRejected]


def test_a_rejected_request_cannot_be_approved_and_vice_versa() -> None:
    requested = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))
    rejected = then(requested, reject_limit_change(requested, uid(100), BOB, "no"))
    approved = then(requested, approve_limit_change(requested, uid(100), BOB))

    with pytest.raises(StateConflict, match="was rejected"):
        approve_limit_change(rejected, uid(100), BOB)
    with pytest.raises(StateConflict, match="already approved"):
        reject_limit_change(approved, uid(100), BOB, "too late")


def test_after_a_decision_a_new_request_can_be_made_but_not_under_a_used_id() -> None:
    state = given(limit_changed("1000.00"), change_requested("6000.00", "1000.00"))
    state = then(state, reject_limit_change(state, uid(100), BOB, "no"))

    with pytest.raises(StateConflict, match="use a new request id"):
        set_limit(state, eur("5500.00"), request=100)
    assert set_limit(state, eur("5500.00"), request=101) == [
        CreditLimitChangeRequested(
            customer_id=CUSTOMER,
            request_id=uid(101),
            limit=eur("5500.00"),
            previous_limit=eur("1000.00"),
            reason="bigger orders expected",
            requested_by=ALICE,
        )
    ]


def test_the_review_date_of_a_request_takes_effect_on_approval() -> None:
    state = given(limit_changed("1000.00"))
    state = then(state, set_limit(state, eur("6000.00"), review_date=date(2026, 6, 30)))

    events = approve_limit_change(state, uid(100), BOB)

    assert isinstance(events[0], CreditLimitChanged)
    assert events[0].review_date == date(2026, 6, 30)
    assert then(state, events).review_date == date(2026, 6, 30)


# ============================================================================ policy


def test_a_new_account_has_the_default_policy() -> None:
    state = given()

    assert state.max_days_overdue == DEFAULT_MAX_DAYS_OVERDUE == 60
    assert state.allowed_terms == ()
    assert not state.on_hold


def test_update_policy_records_the_whole_policy() -> None:
    documents = [
        CreditDocument(
            name="2025 annual accounts",
            kind="financial_statement",
            received_on=date(2026, 2, 1),
            reference="dms-881",
        )
    ]
    state = given(limit_changed("1000.00"))

    events = update_policy(
        state,
        max_days_overdue=30,
        allowed_terms=["net", "due_on_receipt"],
        review_date=date(2026, 12, 1),
        documents=documents,
        segment="smb",
    )

    assert events == [
        CreditPolicyUpdated(
            customer_id=CUSTOMER,
            max_days_overdue=30,
            allowed_terms=[TermsKind.NET, TermsKind.DUE_ON_RECEIPT],
            review_date=date(2026, 12, 1),
            documents=documents,
            segment="smb",
        )
    ]
    after = then(state, events)
    assert after.max_days_overdue == 30
    assert after.allowed_terms == ("net", "due_on_receipt")
    assert after.documents == tuple(documents)
    assert after.segment == "smb"
    assert after.review_date == date(2026, 12, 1)


def test_an_identical_policy_changes_nothing() -> None:
    state = given()
    assert update_policy(state, max_days_overdue=60) == []

    state = then(state, update_policy(state, max_days_overdue=10, allowed_terms=["net"]))
    assert update_policy(state, max_days_overdue=10, allowed_terms=["net"]) == []


@pytest.mark.parametrize(
    ("max_days_overdue", "allowed_terms"),
    [
        (3651, []),
        (-1, []),
        (True, []),
        (30.0, []),
        (30, ["net30"]),
        (30, ["net", "net"]),
    ],
)
def test_an_invalid_policy_is_a_validation_error(
    max_days_overdue: int, allowed_terms: list[str]
) -> None:
    with pytest.raises(ValidationFailed):
        update_policy(given(), max_days_overdue=max_days_overdue, allowed_terms=allowed_terms)


# ============================================================================ holds


def test_placing_a_manual_hold() -> None:
    events = place_hold(given(), uid(1), "manual", "fraud review", ALICE)

    assert events == [hold_placed(1)]
    state = then(given(), events)
    assert state.on_hold
    assert state.holds == {uid(1): Hold("manual", None, "fraud review", ALICE)}


def test_placing_the_same_hold_again_changes_nothing() -> None:
    state = given(hold_placed(1))

    assert place_hold(state, uid(1), "manual", "fraud review", ALICE) == []
    with pytest.raises(ValidationFailed, match="already placed"):
        place_hold(state, uid(1), "manual", "another reason", ALICE)


def test_an_automatic_hold_for_a_rule_already_held_is_not_placed_twice() -> None:
    state = given(hold_placed(1, "61 days overdue", rule="overdue"))

    assert (
        place_hold(state, uid(2), "automatic", "62 days overdue", "system:credit", "overdue") == []
    )
    assert [
        type(e)
        for e in place_hold(state, uid(3), "automatic", "bounced", "system:credit", "bounced")
    ] == [CreditHoldPlaced]


def test_a_manual_hold_is_placed_even_if_another_is_active() -> None:
    state = given(hold_placed(1))

    assert place_hold(state, uid(2), "manual", "legal", BOB) != []


@pytest.mark.parametrize(
    ("kind", "rule"),
    [("automatic", None), ("manual", "overdue"), ("sometimes", None), ("automatic", "Bad Rule")],
)
def test_an_invalid_hold_is_a_validation_error(kind: str, rule: str | None) -> None:
    with pytest.raises(ValidationFailed):
        place_hold(given(), uid(1), kind, "why", ALICE, rule)


def test_releasing_a_hold() -> None:
    state = given(hold_placed(1))

    events = release_hold(state, uid(1), "review done", BOB)

    assert events == [
        CreditHoldReleased(
            customer_id=CUSTOMER, hold_id=uid(1), reason="review done", released_by=BOB
        )
    ]
    after = then(state, events)
    assert not after.on_hold
    assert release_hold(after, uid(1), "again", BOB) == []


def test_releasing_an_unknown_hold_is_not_found() -> None:
    with pytest.raises(NotFound):
        release_hold(given(), uid(9), "?", BOB)


def test_a_released_hold_id_cannot_be_placed_again() -> None:
    state = given(
        hold_placed(1),
        CreditHoldReleased(customer_id=CUSTOMER, hold_id=uid(1), reason="ok", released_by=BOB),
    )

    with pytest.raises(StateConflict, match="already released"):
        place_hold(state, uid(1), "manual", "fraud review", ALICE)


def test_release_automatic_holds_releases_every_hold_of_that_rule_only() -> None:
    state = given(
        hold_placed(1, "overdue", rule="overdue"),
        hold_placed(2, "legal"),
        hold_placed(3, "bounced", rule="bounced"),
        # a second automatic hold of one rule can only come from an older stream; release both
        hold_placed(4, "overdue again", rule="overdue"),
    )

    events = release_automatic_holds(state, "overdue", "paid up")

    assert events == [
        CreditHoldReleased(
            customer_id=CUSTOMER, hold_id=uid(n), reason="paid up", released_by="system:credit"
        )
        for n in (1, 4)
    ]
    assert list(then(state, events).holds) == [uid(2), uid(3)]
    assert release_automatic_holds(then(state, events), "overdue", "paid up") == []


# ============================================================================ evolve


def test_replay_of_no_events_is_none() -> None:
    assert replay([]) is None


def test_any_credit_event_can_open_the_stream() -> None:
    state = replay([hold_placed(1)])

    assert state is not None
    assert state.customer_id == CUSTOMER
    assert state.currency is None
    assert state.version == 1


def test_evolve_refuses_another_customers_event() -> None:
    other = CreditHoldPlaced(
        customer_id="other",
        hold_id=uid(1),
        kind="manual",
        reason="x",
        placed_by=ALICE,
    )
    with pytest.raises(InvalidEventSequence, match="customer other"):
        evolve(given(limit_changed("1.00")), other)


def test_evolve_refuses_an_event_of_another_aggregate() -> None:
    foreign = PaymentUnallocated(
        payment_id=uid(1),
        allocation_id=uid(2),
        invoice_id=uid(3),
        amount=eur("1.00"),
        reason="refund",
        unallocated_on=date(2026, 3, 1),
    )
    with pytest.raises(InvalidEventSequence, match="not a credit"):
        evolve(given(), foreign)


def test_evolve_refuses_a_limit_in_another_currency() -> None:
    usd = CreditLimitChanged(
        customer_id=CUSTOMER,
        limit=Money.from_decimal("1.00", "USD"),
        previous_limit=None,
        reason="x",
        changed_by=ALICE,
    )
    with pytest.raises(InvalidEventSequence, match="USD"):
        evolve(given(limit_changed("1.00")), usd)


def test_the_version_counts_the_events() -> None:
    events: list[EventPayload] = [
        limit_changed("1000.00"),
        hold_placed(1),
        change_requested("6000.00", "1000.00"),
    ]
    state = given(*events)

    assert state.version == 3
