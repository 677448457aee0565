"""The dunning case, pure: given facts and recorded decisions, when the scheduler runs on a
day, then exactly these events."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.dunning.domain import case as c
from services.dunning.domain.policy import DEFAULT_POLICY, PaymentBehaviour, Policy
from shared.contracts.dunning import (
    AccountEscalated,
    DunningStep,
    LateFee,
    LateFeeAssessed,
    PromiseToPayBroken,
    PromiseToPayKept,
    ReminderScheduled,
)
from shared.errors import ValidationFailed
from shared.events.registry import EventPayload
from shared.money import Money

DUE = date(2026, 10, 1)


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def facts(
    n: int, open_minor: int = 10_000, *, due: date = DUE, disputed: int = 0
) -> c.InvoiceFacts:
    return c.InvoiceFacts(
        invoice_id=uuid.UUID(int=n),
        number=f"INV-{n:03d}",
        issue_date=due - timedelta(days=30),
        due_date=due,
        open_amount=eur(open_minor),
        disputed=eur(disputed),
    )


def ids() -> itertools.count[int]:
    return itertools.count(1000)


def run(
    state: c.CaseState,
    invoices: list[c.InvoiceFacts],
    on: date,
    policy: Policy = DEFAULT_POLICY,
    behaviour: PaymentBehaviour | None = None,
    **kw: object,
) -> tuple[c.CaseState, c.RunResult]:
    counter = ids()
    result = c.run(
        state,
        invoices,
        policy,
        behaviour,
        on,
        new_id=lambda: uuid.UUID(int=next(counter)),
        **kw,  # type: ignore[arg-type]
    )
    for event in result.events:
        state = c.evolve(state, event)
    return state, result


def scheduled(events: list[EventPayload]) -> list[ReminderScheduled]:
    return [e for e in events if isinstance(e, ReminderScheduled)]


def test_each_step_fires_once_on_its_day_and_never_again() -> None:
    state = c.CaseState("c1")
    inv = facts(1)
    state, before = run(state, [inv], DUE - timedelta(days=4))
    assert before.events == []
    state, first = run(state, [inv], DUE - timedelta(days=3))
    [msg] = scheduled(first.events)
    assert (msg.template, [s.step_id for s in msg.steps]) == ("reminder", ["pre_due_reminder"])
    assert msg.amount_due == [eur(10_000)]
    state, again = run(state, [inv], DUE - timedelta(days=3))
    assert again.events == []  # a second run (another instance, a restart) records nothing


def test_one_message_groups_the_customers_invoices_at_the_most_severe_step() -> None:
    state = c.CaseState("c1")
    old, newer = facts(1, 5_000, due=DUE - timedelta(days=20)), facts(2, 7_000)
    state, result = run(state, [old, newer], DUE + timedelta(days=1))
    [msg] = scheduled(result.events)
    assert {(s.invoice_id.int, s.step_id) for s in msg.steps} == {(1, "firm"), (2, "overdue")}
    assert msg.template == "firm" and msg.amount_due == [eur(12_000)]
    # Earlier steps never sent are superseded, not sent late.
    assert {(s.invoice_id.int, s.step_id) for s in msg.superseded} == {
        (1, "pre_due_reminder"),
        (1, "overdue"),
        (2, "pre_due_reminder"),
    }


def test_minimum_interval_holds_emails_back_but_not_fees() -> None:
    policy = Policy(
        scope="tenant",
        name="t",
        steps=(
            DunningStep(step_id="a", offset_days=1),
            DunningStep(
                step_id="fee",
                offset_days=2,
                template="overdue",
                late_fee=LateFee(kind="flat", flat=eur(500)),
            ),
        ),
        min_interval_days=3,
    )
    state = c.CaseState("c1")
    inv = facts(1)
    state, first = run(state, [inv], DUE + timedelta(days=1), policy)
    assert len(scheduled(first.events)) == 1
    state, second = run(state, [inv], DUE + timedelta(days=2), policy)
    assert scheduled(second.events) == []
    assert second.deferred_until == DUE + timedelta(days=4)
    [fee] = [e for e in second.events if isinstance(e, LateFeeAssessed)]
    assert fee.amount == eur(500) and fee.policy_step == "fee"
    state, third = run(state, [inv], DUE + timedelta(days=4), policy)
    [msg] = scheduled(third.events)
    assert [s.step_id for s in msg.steps] == ["fee"]
    assert not [e for e in third.events if isinstance(e, LateFeeAssessed)]  # charged once


def test_disputed_amounts_are_not_dunned_and_fully_disputed_invoices_pause() -> None:
    state = c.CaseState("c1")
    partly, fully = facts(1, 10_000, disputed=4_000), facts(2, 3_000, disputed=3_000)
    state, result = run(state, [partly, fully], DUE + timedelta(days=1))
    [msg] = scheduled(result.events)
    assert [s.invoice_id.int for s in msg.steps] == [1] and msg.amount_due == [eur(6_000)]


def test_pauses_stop_one_invoice_or_the_customer_until_they_end() -> None:
    state = c.CaseState("c1")
    a, b = facts(1), facts(2)
    on = DUE + timedelta(days=1)
    for event in c.pause(state, uuid.UUID(int=7), "call", on, invoice_id=a.invoice_id):
        state = c.evolve(state, event)
    state, result = run(state, [a, b], on)
    [msg] = scheduled(result.events)
    assert [s.invoice_id.int for s in msg.steps] == [2]
    whole = c.CaseState("c2")
    for event in c.pause(whole, uuid.UUID(int=8), "holiday", on, until=on + timedelta(days=5)):
        whole = c.evolve(whole, event)
    whole, held = run(whole, [a], on + timedelta(days=5))
    assert held.events == []
    whole, after = run(whole, [a], on + timedelta(days=6))
    assert [e.event_type for e in after.events][:1] == ["DunningResumed"]
    assert len(scheduled(after.events)) == 1


def test_promises_pause_until_the_date_and_are_kept_or_broken() -> None:
    inv = facts(1, 10_000)
    on = DUE + timedelta(days=1)
    state = c.CaseState("c1")
    for event in c.promise_to_pay(
        state, uuid.UUID(int=9), [inv], eur(10_000), on + timedelta(days=10), on
    ):
        state = c.evolve(state, event)
    _quiet, r = run(state, [inv], on + timedelta(days=12))
    assert r.events == []  # promised date + 2 grace days
    _broken, r = run(state, [inv], on + timedelta(days=13))
    assert isinstance(r.events[0], PromiseToPayBroken) and r.events[0].paid == eur(0)
    assert len(scheduled(r.events)) == 1  # dunning resumes at once
    _kept, r = run(state, [facts(1, 0)], on + timedelta(days=5))
    assert [type(e) for e in r.events] == [PromiseToPayKept]
    with pytest.raises(ValidationFailed):
        c.promise_to_pay(state, uuid.uuid4(), [inv], eur(20_000), on + timedelta(days=3), on)


def test_late_fee_and_escalation_of_the_default_policy() -> None:
    state = c.CaseState("c1")
    inv = facts(1, 100_000)
    state, r = run(state, [inv], DUE + timedelta(days=45))
    [fee] = [e for e in r.events if isinstance(e, LateFeeAssessed)]
    assert fee.amount == eur(1_500)  # 1.5 % of 1,000.00
    state, r = run(state, [inv], DUE + timedelta(days=60))
    [esc] = [e for e in r.events if isinstance(e, AccountEscalated)]
    assert esc.invoice_ids == [inv.invoice_id] and esc.amount_due == eur(100_000)
    assert scheduled(r.events)[0].template == "escalation"
    state, r = run(state, [inv], DUE + timedelta(days=90))
    assert r.events == []  # escalated: collections has it now


def test_steps_needing_approval_wait_for_it() -> None:
    policy = Policy(
        scope="tenant",
        name="t",
        steps=(
            DunningStep(
                step_id="final", offset_days=5, template="final_notice", needs_approval=True
            ),
        ),
    )
    inv = facts(1)
    state, r = run(c.CaseState("c1"), [inv], DUE + timedelta(days=5), policy)
    assert r.events == [] and [(w.invoice_id.int, w.step_id) for w in r.awaiting_approval] == [
        (1, "final")
    ]
    state, r = run(
        state, [inv], DUE + timedelta(days=5), policy, approved={(inv.invoice_id, "final")}
    )
    assert scheduled(r.events)[0].template == "final_notice"


def test_late_payers_are_reminded_earlier_with_an_explanation() -> None:
    late = PaymentBehaviour(
        invoices_paid=8, average_days_late=Decimal(12), on_time_rate=Decimal("0.1")
    )
    _state, r = run(c.CaseState("c1"), [facts(1)], DUE - timedelta(days=8), behaviour=late)
    [msg] = scheduled(r.events)
    assert msg.template == "reminder" and msg.timing_notes and "earlier" in msg.timing_notes[0]


def test_closed_invoices_are_never_dunned() -> None:
    closed = c.InvoiceFacts(uuid.UUID(int=1), "INV-1", DUE, DUE, eur(0), eur(0), open=False)
    _, r = run(c.CaseState("c1"), [closed], DUE + timedelta(days=100))
    assert r.events == []


@settings(max_examples=150, deadline=None)
@given(
    days=st.lists(st.integers(min_value=-10, max_value=120), min_size=1, max_size=12),
    opens=st.lists(st.integers(min_value=0, max_value=50_000), min_size=1, max_size=4),
)
def test_no_step_of_an_invoice_ever_fires_twice(days: list[int], opens: list[int]) -> None:
    """Whatever days the scheduler happens to run on, each (invoice, step) is recorded once."""
    invoices = [facts(n + 1, o, due=DUE + timedelta(days=n)) for n, o in enumerate(opens)]
    state = c.CaseState("c1")
    fired: list[tuple[uuid.UUID, str]] = []
    for offset in sorted(days):
        state, r = run(state, invoices, DUE + timedelta(days=offset))
        for e in r.events:
            if isinstance(e, ReminderScheduled):
                fired += [(s.invoice_id, s.step_id) for s in e.steps]
            elif isinstance(e, LateFeeAssessed):
                fired.append((e.invoice_id, f"fee:{e.policy_step}"))
    assert len(fired) == len(set(fired))
    # Messages of one invoice only ever move forward through the policy.
    order = {step.step_id: i for i, step in enumerate(DEFAULT_POLICY.steps)}
    for invoice in invoices:
        sent = [order[s] for i, s in fired if i == invoice.invoice_id and not s.startswith("fee:")]
        assert sent == sorted(sent)


def test_the_schedule_lists_the_steps_ahead_with_their_dates() -> None:
    state, _ = run(c.CaseState("c1"), [facts(1)], DUE + timedelta(days=1))
    plan = c.planned(state, [facts(1)], DEFAULT_POLICY, None)
    assert [(p.step_id, p.due_on - DUE) for p in plan] == [
        ("firm", timedelta(days=7)),
        ("final_notice", timedelta(days=30)),
        ("late_fee", timedelta(days=45)),
        ("escalation", timedelta(days=60)),
    ]
    assert not any(p.held for p in plan)
    disputed = c.planned(state, [facts(1, disputed=10_000)], DEFAULT_POLICY, None)
    assert all(p.held for p in disputed)
