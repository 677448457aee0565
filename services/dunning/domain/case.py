"""The dunning case of one customer as pure decide/evolve functions.

The case remembers decisions only (which steps fired, pauses, promises, escalations); the
invoices' amounts are facts of the invoice service, passed in as `InvoiceFacts` on each run.
`run` is what the scheduler calls: given today, the invoices, the policy and the customer's
payment behaviour, it returns the events that record what happens now. Firing a step is
recording it, and a recorded step never fires again, so running twice (two scheduler
instances, a restart) can only append once: the second append loses on the stream version.

Rules, in order:
1. Promises: kept once the promised invoices' open amount fell by the promised amount; broken
   when the promised date plus grace passes first (dunning resumes). Timed pauses end.
2. An invoice is dunned when it is open, its undisputed amount is positive, and neither the
   customer nor the invoice is paused or under an open promise, and it is not escalated.
3. Late-fee steps fire on their own, once per invoice, when due (and approved, if they need it).
4. Message steps: for each invoice, the latest due step fires and earlier pending ones are
   superseded; all invoices with a firing step go into one message per channel, whose
   template is the most severe step's. E-mails wait while the last one is younger than the
   policy's minimum interval (fees and escalation do not).
5. Escalation: invoices whose escalation step is due are handed to collections together.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from services.dunning.domain.policy import (
    PaymentBehaviour,
    Policy,
    late_fee_amount,
    step_due_on,
    timing_for,
)
from shared.contracts.dunning import (
    AccountEscalated,
    DunningPaused,
    DunningResumed,
    DunningStep,
    InvoiceStep,
    LateFeeAssessed,
    PromiseToPayBroken,
    PromiseToPayKept,
    PromiseToPayRecorded,
    ReminderCancelled,
    ReminderFailed,
    ReminderScheduled,
    ReminderSent,
)
from shared.errors import NotFound, StateConflict, ValidationFailed
from shared.events.registry import EventPayload, build_event
from shared.money import Money, sum_money

IdFactory = Callable[[], uuid.UUID]

#: Template severity: a grouped message takes its most severe step's template.
SEVERITY = ("reminder", "overdue", "firm", "final_notice", "escalation")


@dataclasses.dataclass(frozen=True)
class InvoiceFacts:
    invoice_id: uuid.UUID
    number: str
    issue_date: date
    due_date: date
    open_amount: Money
    disputed: Money
    open: bool = True

    @property
    def collectible(self) -> Money:
        return max(self.open_amount - self.disputed, Money.zero(self.open_amount.currency))

    def days_overdue(self, on: date) -> int:
        return (on - self.due_date).days


@dataclasses.dataclass(frozen=True)
class Pause:
    invoice_id: uuid.UUID | None
    until: date | None
    reason: str


@dataclasses.dataclass(frozen=True)
class Promise:
    invoice_ids: tuple[uuid.UUID, ...]
    amount: Money
    promised_date: date
    grace_days: int
    open_at_promise: Money


@dataclasses.dataclass(frozen=True)
class CaseState:
    customer_id: str
    done: frozenset[tuple[uuid.UUID, str]] = frozenset()
    last_email_on: date | None = None
    pauses: Mapping[uuid.UUID, Pause] = dataclasses.field(default_factory=dict)
    promises: Mapping[uuid.UUID, Promise] = dataclasses.field(default_factory=dict)
    escalated: frozenset[uuid.UUID] = frozenset()
    messages: Mapping[uuid.UUID, str] = dataclasses.field(default_factory=dict)  # id -> status
    version: int = 0

    def paused(self, invoice_id: uuid.UUID) -> bool:
        if any(p.invoice_id in (None, invoice_id) for p in self.pauses.values()):
            return True
        return any(invoice_id in p.invoice_ids for p in self.promises.values())


@dataclasses.dataclass(frozen=True)
class RunResult:
    events: list[EventPayload]
    awaiting_approval: list[InvoiceStep]
    deferred_until: date | None  # e-mails held back by the minimum interval


def run(
    state: CaseState,
    invoices: Sequence[InvoiceFacts],
    policy: Policy,
    behaviour: PaymentBehaviour | None,
    today: date,
    *,
    approved: Collection[tuple[uuid.UUID, str]] = (),
    new_id: IdFactory = uuid.uuid4,
) -> RunResult:
    events = _settle_promises(state, invoices, today) + _expired_pauses(state, today)
    for event in events:
        state = evolve(state, event)
    due = _due_steps(state, invoices, policy, behaviour, today)
    waiting = [
        InvoiceStep(invoice_id=inv.invoice_id, step_id=step.step_id)
        for inv, step, _ in due
        if step.needs_approval and (inv.invoice_id, step.step_id) not in approved
    ]
    due = [d for d in due if not d[1].needs_approval or (d[0].invoice_id, d[1].step_id) in approved]
    events += _late_fees([d for d in due if _fee_pending(state, d[0], d[1])], today, new_id)
    deferred = None
    latest = _latest_per_invoice(
        [d for d in due if (d[0].invoice_id, d[1].step_id) not in state.done]
    )
    for channel in ("email", "phone"):
        firing = [d for d in latest if d[1].channel == channel]
        if not firing:
            continue
        interval_end = _interval_end(state, policy, channel)
        if interval_end is not None and today < interval_end:
            deferred = interval_end
            continue
        events.append(_message(firing, due, today, channel, new_id))
    events += _escalation(due, state, today)
    return RunResult(events, waiting, deferred)


def _settle_promises(
    state: CaseState, invoices: Sequence[InvoiceFacts], today: date
) -> list[EventPayload]:
    by_id = {i.invoice_id: i for i in invoices}
    events: list[EventPayload] = []
    for promise_id, promise in state.promises.items():
        currency = promise.amount.currency
        still_open = sum_money(
            (
                by_id[i].open_amount
                for i in promise.invoice_ids
                if i in by_id and by_id[i].open and by_id[i].open_amount.currency == currency
            ),
            currency,
        )
        paid = max(promise.open_at_promise - still_open, Money.zero(currency))
        if paid >= promise.amount or still_open.is_zero():
            events.append(build_event(PromiseToPayKept, promise_id=promise_id, kept_on=today))
        elif today > promise.promised_date + timedelta(days=promise.grace_days):
            events.append(
                build_event(PromiseToPayBroken, promise_id=promise_id, broken_on=today, paid=paid)
            )
    return events


def _expired_pauses(state: CaseState, today: date) -> list[EventPayload]:
    return [
        build_event(DunningResumed, pause_id=pid, reason="pause ended", resumed_on=today)
        for pid, pause in state.pauses.items()
        if pause.until is not None and pause.until < today
    ]


Due = tuple[InvoiceFacts, DunningStep, str | None]


def _due_steps(
    state: CaseState,
    invoices: Sequence[InvoiceFacts],
    policy: Policy,
    behaviour: PaymentBehaviour | None,
    today: date,
) -> list[Due]:
    """Every due step of every dunnable invoice, in policy order."""
    due: list[Due] = []
    for inv in sorted(invoices, key=lambda i: (i.due_date, i.number)):
        if not inv.open or not inv.collectible.is_positive() or state.paused(inv.invoice_id):
            continue
        if inv.invoice_id in state.escalated:
            continue
        for step in policy.steps:
            if (inv.invoice_id, step.step_id) in state.done and not _fee_pending(state, inv, step):
                continue
            timing = timing_for(behaviour if policy.adapt_to_behaviour else None, step)
            if step_due_on(inv.due_date, step, timing) <= today:
                due.append((inv, step, timing.note))
    return due


def fee_key(step_id: str) -> str:
    """A fee is recorded apart from its step's message: the fee may be charged while the
    message waits for the minimum interval, and the message must still go out."""
    return f"fee:{step_id}"


def _fee_pending(state: CaseState, inv: InvoiceFacts, step: DunningStep) -> bool:
    return step.late_fee is not None and (inv.invoice_id, fee_key(step.step_id)) not in state.done


def _latest_per_invoice(due: Sequence[Due]) -> list[Due]:
    """The message for an invoice is its most advanced due step; earlier ones are superseded
    (a customer reached late hears the current step, not every missed one at once)."""
    latest: dict[uuid.UUID, Due] = {}
    for d in due:  # policy order: later steps overwrite earlier ones
        latest[d[0].invoice_id] = d
    return list(latest.values())


def _late_fees(due: Sequence[Due], today: date, new_id: IdFactory) -> list[EventPayload]:
    events: list[EventPayload] = []
    for inv, step, _ in due:
        if step.late_fee is None:
            continue
        amount = late_fee_amount(step.late_fee, inv.collectible, inv.days_overdue(today))
        if amount.is_positive():
            events.append(
                build_event(
                    LateFeeAssessed,
                    fee_id=new_id(),
                    invoice_id=inv.invoice_id,
                    amount=amount,
                    reason=f"{step.step_id}: {inv.days_overdue(today)} days overdue",
                    assessed_on=today,
                    policy_step=step.step_id,
                )
            )
    return events


def _interval_end(state: CaseState, policy: Policy, channel: str) -> date | None:
    if channel != "email" or state.last_email_on is None:
        return None
    return state.last_email_on + timedelta(days=policy.min_interval_days)


def _message(
    firing: Sequence[Due], due: Sequence[Due], today: date, channel: str, new_id: IdFactory
) -> EventPayload:
    steps = [
        InvoiceStep(invoice_id=inv.invoice_id, step_id=step.step_id) for inv, step, _ in firing
    ]
    fired = {(s.invoice_id, s.step_id) for s in steps}
    invoices = {s.invoice_id for s in steps}
    superseded = [
        InvoiceStep(invoice_id=inv.invoice_id, step_id=step.step_id)
        for inv, step, _ in due
        if inv.invoice_id in invoices and (inv.invoice_id, step.step_id) not in fired
    ]
    template = max(
        (step.template for _, step, _ in firing),
        key=lambda t: SEVERITY.index(t) if t in SEVERITY else 0,
    )
    currencies = sorted({inv.open_amount.currency for inv, _, _ in firing})
    amounts = [
        sum_money((inv.collectible for inv, _, _ in firing if inv.open_amount.currency == c), c)
        for c in currencies
    ]
    notes = sorted({note for _, _, note in firing if note})
    return build_event(
        ReminderScheduled,
        message_id=new_id(),
        channel=channel,
        template=template,
        steps=steps,
        superseded=superseded,
        amount_due=amounts,
        scheduled_on=today,
        timing_notes=notes,
    )


def _escalation(due: Sequence[Due], state: CaseState, today: date) -> list[EventPayload]:
    escalating = [(inv, step) for inv, step, _ in due if step.escalate]
    if not escalating:
        return []
    currency = escalating[0][0].open_amount.currency
    same = [inv for inv, _ in escalating if inv.open_amount.currency == currency]
    return [
        build_event(
            AccountEscalated,
            customer_id=state.customer_id,
            invoice_ids=[inv.invoice_id for inv, _ in escalating],
            reason=f"dunning step {escalating[0][1].step_id}: handed to collections",
            escalated_on=today,
            policy_step=escalating[0][1].step_id,
            amount_due=sum_money((inv.collectible for inv in same), currency),
        )
    ]


@dataclasses.dataclass(frozen=True)
class PlannedStep:
    invoice_id: uuid.UUID
    number: str
    step_id: str
    due_on: date
    timing_note: str | None
    held: bool  # paused, promised or disputed in full: it waits


def planned(
    state: CaseState,
    invoices: Sequence[InvoiceFacts],
    policy: Policy,
    behaviour: PaymentBehaviour | None,
) -> list[PlannedStep]:
    """The schedule each open invoice is on: the steps still ahead, with their dates."""
    plan = []
    for inv in invoices:
        if not inv.open or inv.invoice_id in state.escalated:
            continue
        held = state.paused(inv.invoice_id) or not inv.collectible.is_positive()
        for step in policy.steps:
            if (inv.invoice_id, step.step_id) in state.done:
                continue
            timing = timing_for(behaviour if policy.adapt_to_behaviour else None, step)
            plan.append(
                PlannedStep(
                    inv.invoice_id,
                    inv.number,
                    step.step_id,
                    step_due_on(inv.due_date, step, timing),
                    timing.note,
                    held,
                )
            )
    return sorted(plan, key=lambda p: (p.due_on, p.number, p.step_id))


# ---- commands from people --------------------------------------------------------------------


def pause(
    state: CaseState,
    pause_id: uuid.UUID,
    reason: str,
    on: date,
    *,
    invoice_id: uuid.UUID | None = None,
    until: date | None = None,
) -> list[EventPayload]:
    if until is not None and until < on:
        raise ValidationFailed("a pause cannot end before it starts", {"field": "until"})
    return [
        build_event(
            DunningPaused,
            pause_id=pause_id,
            invoice_id=invoice_id,
            reason=reason,
            until=until,
            paused_on=on,
        )
    ]


def resume(state: CaseState, pause_id: uuid.UUID, reason: str, on: date) -> list[EventPayload]:
    if pause_id not in state.pauses:
        raise NotFound(f"no active pause {pause_id}", {"pause_id": str(pause_id)})
    return [build_event(DunningResumed, pause_id=pause_id, reason=reason, resumed_on=on)]


def promise_to_pay(
    state: CaseState,
    promise_id: uuid.UUID,
    invoices: Sequence[InvoiceFacts],
    amount: Money,
    promised_date: date,
    on: date,
    *,
    grace_days: int = 2,
    note: str | None = None,
) -> list[EventPayload]:
    if not invoices:
        raise ValidationFailed(
            "a promise names at least one open invoice", {"field": "invoice_ids"}
        )
    if any(not i.open for i in invoices):
        raise StateConflict("a promise can only cover open invoices", {"field": "invoice_ids"})
    if promised_date < on:
        raise ValidationFailed("the promised date is in the past", {"field": "promised_date"})
    currency = amount.currency
    if any(i.open_amount.currency != currency for i in invoices):
        raise ValidationFailed("promise and invoices must share a currency", {"field": "amount"})
    open_now = sum_money((i.open_amount for i in invoices), currency)
    if not amount.is_positive() or amount > open_now:
        raise ValidationFailed(
            f"a promise must be positive and at most the open {open_now}", {"field": "amount"}
        )
    return [
        build_event(
            PromiseToPayRecorded,
            promise_id=promise_id,
            invoice_ids=[i.invoice_id for i in invoices],
            amount=amount,
            promised_date=promised_date,
            grace_days=grace_days,
            recorded_on=on,
            open_at_promise=open_now,
            note=note,
        )
    ]


# ---- evolve ------------------------------------------------------------------------------------


def evolve(state: CaseState, event: EventPayload) -> CaseState:
    changes: dict[str, Any] = {"version": state.version + 1}
    match event:
        case ReminderScheduled():
            marks = {(s.invoice_id, s.step_id) for s in [*event.steps, *event.superseded]}
            changes["done"] = state.done | marks
            changes["messages"] = {**state.messages, event.message_id: "scheduled"}
            if event.channel == "email":
                changes["last_email_on"] = event.scheduled_on
        case ReminderSent():
            changes["messages"] = {**state.messages, event.message_id: "sent"}
        case ReminderFailed():
            changes["messages"] = {**state.messages, event.message_id: "failed"}
        case ReminderCancelled():
            changes["messages"] = {**state.messages, event.message_id: "cancelled"}
        case LateFeeAssessed():
            changes["done"] = state.done | {(event.invoice_id, fee_key(event.policy_step or ""))}
        case AccountEscalated():
            changes["escalated"] = state.escalated | set(event.invoice_ids)
            step = event.policy_step or "escalate"
            changes["done"] = state.done | {(i, step) for i in event.invoice_ids}
        case DunningPaused():
            changes["pauses"] = {
                **state.pauses,
                event.pause_id: Pause(event.invoice_id, event.until, event.reason),
            }
        case DunningResumed():
            changes["pauses"] = {k: v for k, v in state.pauses.items() if k != event.pause_id}
        case PromiseToPayRecorded():
            changes["promises"] = {
                **state.promises,
                event.promise_id: Promise(
                    tuple(event.invoice_ids),
                    event.amount,
                    event.promised_date,
                    event.grace_days,
                    event.open_at_promise,
                ),
            }
        case PromiseToPayKept() | PromiseToPayBroken():
            changes["promises"] = {k: v for k, v in state.promises.items() if k != event.promise_id}
        case _:
            raise ValueError(f"{event.event_type} does not belong to a dunning case")
    return dataclasses.replace(state, **changes)


def replay(customer_id: str, events: Iterable[EventPayload]) -> CaseState:
    state = CaseState(customer_id=customer_id)
    for event in events:
        state = evolve(state, event)
    return state
