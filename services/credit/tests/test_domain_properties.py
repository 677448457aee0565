"""Properties of the CreditAccount aggregate under arbitrary command sequences (hypothesis)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from hypothesis import event as note_event
from hypothesis import given, settings
from hypothesis import strategies as st

from services.credit.domain.account import (
    CreditAccountState,
    approve_limit_change,
    change_limit,
    check_credit,
    evolve,
    expire_reservations,
    live_reservations,
    place_hold,
    reject_limit_change,
    release_automatic_holds,
    release_hold,
    release_reservation,
    replay,
    reserved,
    update_policy,
)
from services.credit.tests.test_domain_account import ALICE, BOB, CUSTOMER, NOW, TTL, uid
from shared.errors import LedgerlineError
from shared.events.registry import EventPayload, registry
from shared.money import Money


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def limit_of(minor: int) -> CreditAccountState:
    events = change_limit(
        None, CUSTOMER, eur(minor), "initial", ALICE, request_id=uid(0), approval_threshold=None
    )
    state = replay(events)
    assert state is not None
    return state


def apply(state: CreditAccountState, events: list[EventPayload]) -> CreditAccountState:
    after = state
    for event in events:
        after = evolve(after, event)
    return after


checks_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),  # reference (repeats are re-checks)
        st.integers(min_value=1, max_value=400_000),  # amount in cents
        st.integers(min_value=0, max_value=10),  # minutes since the previous check
    ),
    max_size=40,
)


@settings(deadline=None)
@given(
    limit=st.integers(min_value=0, max_value=1_000_000),
    exposure=st.integers(min_value=-100_000, max_value=1_500_000),
    checks=checks_strategy,
    same_instant=st.booleans(),
)
def test_passed_checks_never_reserve_more_than_the_limit_minus_exposure(
    limit: int, exposure: int, checks: list[tuple[int, int, int]], same_instant: bool
) -> None:
    state = limit_of(limit)
    now = NOW
    for n, (reference, amount, minutes) in enumerate(checks, start=1):
        if not same_instant:
            now += timedelta(minutes=minutes)
        events = check_credit(
            state,
            check_id=uid(n),
            reference=f"invoice-{reference}",
            amount=eur(amount),
            exposure=eur(exposure),
            days_overdue=0,
            now=now,
            reservation_ttl=TTL,
        )
        state = apply(state, events)
        held = reserved(state, now)
        assert held is not None
        assert held.is_zero() or eur(exposure) + held <= eur(limit)
        live = live_reservations(state, now).values()
        per_reference = Counter(r.reference for r in live)
        assert all(count == 1 for count in per_reference.values()), "reserved twice"


@settings(deadline=None, max_examples=200)
@given(data=st.data())
def test_replay_equals_the_state_built_step_by_step(data: st.DataObject) -> None:
    state = CreditAccountState(customer_id=CUSTOMER)
    recorded: list[EventPayload] = []
    now = NOW
    people = st.sampled_from([ALICE, BOB])
    for step in range(data.draw(st.integers(min_value=0, max_value=40), label="steps")):
        op = data.draw(
            st.sampled_from(
                [
                    "limit",
                    "approve",
                    "reject",
                    "policy",
                    "hold",
                    "release_hold",
                    "release_hold",
                    "release_rule",
                    *["check"] * 5,
                    "invoice",
                    "tick",
                ]
            ),
            label="op",
        )
        request = state.pending_change.request_id if state.pending_change else uid(999)
        try:
            if op == "limit":
                events = change_limit(
                    state,
                    CUSTOMER,
                    eur(data.draw(st.integers(min_value=0, max_value=1_000_000))),
                    "review",
                    data.draw(people),
                    request_id=uid(10_000 + step),
                    approval_threshold=eur(500_000),
                )
            elif op == "approve":
                events = approve_limit_change(state, request, data.draw(people))
            elif op == "reject":
                events = reject_limit_change(state, request, data.draw(people), "no")
            elif op == "policy":
                events = update_policy(
                    state,
                    max_days_overdue=data.draw(st.integers(min_value=0, max_value=90)),
                    allowed_terms=data.draw(
                        st.sampled_from([[], ["net"], ["net", "installments"]])
                    ),
                )
            elif op == "hold":
                automatic = data.draw(st.booleans())
                events = place_hold(
                    state,
                    uid(20_000 + data.draw(st.integers(min_value=0, max_value=3))),
                    "automatic" if automatic else "manual",
                    "risk",
                    "system:credit" if automatic else data.draw(people),
                    "overdue" if automatic else None,
                )
            elif op == "release_hold":
                hold = uid(20_000 + data.draw(st.integers(min_value=0, max_value=3)))
                events = release_hold(state, hold, "cleared", data.draw(people))
            elif op == "release_rule":
                events = release_automatic_holds(state, "overdue", "cleared")
            elif op == "check":
                events = check_credit(
                    state,
                    check_id=uid(30_000 + step),
                    reference=f"invoice-{data.draw(st.integers(min_value=0, max_value=4))}",
                    amount=eur(data.draw(st.integers(min_value=1, max_value=200_000))),
                    exposure=eur(data.draw(st.integers(min_value=0, max_value=300_000))),
                    days_overdue=data.draw(st.sampled_from([0, 0, 0, 10, 61])),
                    now=now,
                    reservation_ttl=TTL,
                    terms_kind=data.draw(st.sampled_from([None, "net", "end_of_month"])),
                )
            elif op == "invoice":
                reference = f"invoice-{data.draw(st.integers(min_value=0, max_value=4))}"
                events = release_reservation(state, reference, "invoiced")
            else:
                now += timedelta(minutes=data.draw(st.integers(min_value=0, max_value=30)))
                events = expire_reservations(state, now)
        except LedgerlineError:
            continue
        state = apply(state, events)
        recorded += events
        for e in events:
            note_event(e.event_type)

    assert state.version == len(recorded)
    assert (replay(recorded) or CreditAccountState(customer_id=CUSTOMER)) == state
    # the same holds for the events as stored: JSON and back
    stored = [
        registry.spec(e.event_type).payload_model.model_validate(e.model_dump(mode="json"))
        for e in recorded
    ]
    assert (replay(stored) or CreditAccountState(customer_id=CUSTOMER)) == state
