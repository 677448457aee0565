"""The Payment aggregate, pure: given events, when a command, then events; and the balance
invariants under random sequences of commands (hypothesis)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.payments.domain import payment as p
from services.payments.domain.payment import AllocationRequest, InvoiceOpen, PaymentStatus
from shared.contracts.payments import (
    MethodDetails,
    PaymentAllocated,
    PaymentRefunded,
    PaymentReversed,
    PaymentUnallocated,
)
from shared.errors import NotFound, StateConflict, ValidationFailed
from shared.events.registry import EventPayload
from shared.money import Money

DAY = date(2026, 11, 2)
PID = uuid.UUID(int=1)


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def received(minor: int = 10_000, currency: str = "EUR") -> p.PaymentState:
    events = p.receive_payment(
        payment_id=PID,
        customer_id="c1",
        amount=Money.of_minor(minor, currency),
        method="bank_transfer",
        received_on=DAY,
    )
    state = p.replay(events)
    assert state is not None
    return state


def invoice(n: int, open_minor: int, customer: str = "c1", currency: str = "EUR") -> InvoiceOpen:
    return InvoiceOpen(uuid.UUID(int=100 + n), customer, Money.of_minor(open_minor, currency))


def then(state: p.PaymentState, events: list[EventPayload]) -> p.PaymentState:
    for event in events:
        state = p.evolve(state, event)
    return state


def alloc(n: int, minor: int, allocation: int | None = None) -> AllocationRequest:
    return AllocationRequest(
        invoice_id=uuid.UUID(int=100 + n),
        amount=eur(minor),
        allocation_id=uuid.UUID(int=allocation) if allocation else None,
    )


def test_receiving_validates_amount_method_and_details() -> None:
    base = dict(payment_id=PID, customer_id="c1", received_on=DAY)
    with pytest.raises(ValidationFailed):
        p.receive_payment(**base, amount=eur(0), method="cash")  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed, match="unknown payment method"):
        p.receive_payment(**base, amount=eur(1), method="barter")  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed, match=r"details\.last4"):
        p.receive_payment(
            **base,  # type: ignore[arg-type]
            amount=eur(1),
            method="card",
            details=MethodDetails(gateway_ref="pi_1"),
        )
    with pytest.raises(ValidationFailed, match="card number"):
        p.receive_payment(
            **base,  # type: ignore[arg-type]
            amount=eur(1),
            method="bank_transfer",
            reference="pay with 4111-1111-1111-1111 please",
        )
    # An order number that is not a card number (fails Luhn) is fine.
    assert p.receive_payment(
        **base,  # type: ignore[arg-type]
        amount=eur(1),
        method="bank_transfer",
        reference="order 4111111111111112",
    )


def test_allocations_split_one_payment_over_invoices() -> None:
    state = received(10_000)
    invoices = {i.invoice_id: i for i in (invoice(1, 6_000), invoice(2, 9_000))}
    events = p.allocate(state, [alloc(1, 6_000), alloc(2, 3_000)], invoices, on=DAY)
    assert [type(e) for e in events] == [PaymentAllocated, PaymentAllocated]
    state = then(state, events)
    assert state.applied == eur(9_000) and state.unapplied == eur(1_000)
    assert state.status is PaymentStatus.PARTIALLY_APPLIED


@pytest.mark.parametrize(
    ("requests", "error"),
    [
        ([alloc(1, 6_001)], "open amount"),
        ([alloc(1, 4_000), alloc(1, 2_001)], "open amount"),  # the same invoice twice
        ([alloc(1, 6_000), alloc(2, 4_001)], "unapplied"),
        ([alloc(1, 0)], "positive"),
        ([], "nothing"),
    ],
)
def test_allocations_never_exceed_open_or_unapplied(
    requests: list[AllocationRequest], error: str
) -> None:
    invoices = {i.invoice_id: i for i in (invoice(1, 6_000), invoice(2, 9_000))}
    with pytest.raises(ValidationFailed, match=error):
        p.allocate(received(10_000), requests, invoices, on=DAY)


def test_allocation_refusals_for_state_customer_currency_and_dates() -> None:
    state = received()
    with pytest.raises(StateConflict):
        p.allocate(state, [alloc(1, 1)], {}, on=DAY)
    closed = invoice(1, 100)
    closed = InvoiceOpen(closed.invoice_id, "c1", closed.open_amount, receivable=False)
    with pytest.raises(StateConflict):
        p.allocate(state, [alloc(1, 1)], {closed.invoice_id: closed}, on=DAY)
    theirs = invoice(1, 100, customer="c2")
    with pytest.raises(ValidationFailed, match="another customer"):
        p.allocate(state, [alloc(1, 1)], {theirs.invoice_id: theirs}, on=DAY)
    mine = invoice(1, 100)
    with pytest.raises(ValidationFailed, match="before the payment"):
        p.allocate(state, [alloc(1, 1)], {mine.invoice_id: mine}, on=DAY - timedelta(days=1))


def test_cross_currency_needs_a_rate_and_converts_half_up() -> None:
    state = received(10_000, "EUR")
    usd = invoice(1, 50_000, currency="USD")
    request = AllocationRequest(usd.invoice_id, Money.of_minor(10_001, "USD"))
    with pytest.raises(ValidationFailed, match="needs a rate"):
        p.allocate(state, [request], {usd.invoice_id: usd}, on=DAY)
    with_rate = AllocationRequest(usd.invoice_id, Money.of_minor(10_001, "USD"), Decimal("1.1"))
    [event] = p.allocate(state, [with_rate], {usd.invoice_id: usd}, on=DAY)
    assert isinstance(event, PaymentAllocated)
    # 100.01 USD / 1.1 = 90.9181... EUR -> 90.92 EUR
    assert event.payment_amount == eur(9_092) and event.rate == "1.1"


def test_a_repeated_allocation_id_is_skipped_a_changed_one_refused() -> None:
    state = received()
    invoices = {invoice(1, 6_000).invoice_id: invoice(1, 6_000)}
    state = then(state, p.allocate(state, [alloc(1, 1_000, allocation=7)], invoices, on=DAY))
    assert p.allocate(state, [alloc(1, 1_000, allocation=7)], invoices, on=DAY) == []
    with pytest.raises(ValidationFailed, match="already recorded"):
        p.allocate(state, [alloc(1, 2_000, allocation=7)], invoices, on=DAY)


def test_unallocate_returns_cash_once() -> None:
    state = received()
    invoices = {invoice(1, 6_000).invoice_id: invoice(1, 6_000)}
    state = then(state, p.allocate(state, [alloc(1, 4_000, allocation=7)], invoices, on=DAY))
    events = p.unallocate(state, uuid.UUID(int=7), "wrong invoice", DAY)
    state = then(state, events)
    assert state.unapplied == eur(10_000)
    assert p.unallocate(state, uuid.UUID(int=7), "again", DAY) == []
    with pytest.raises(NotFound):
        p.unallocate(state, uuid.UUID(int=8), "unknown", DAY)


def test_refund_takes_unapplied_first_then_newest_allocation_and_reallocates_the_rest() -> None:
    state = received(10_000)
    invoices = {i.invoice_id: i for i in (invoice(1, 5_000), invoice(2, 5_000))}
    state = then(state, p.allocate(state, [alloc(1, 4_000, allocation=7)], invoices, on=DAY))
    later = DAY + timedelta(days=1)
    state = then(state, p.allocate(state, [alloc(2, 5_000, allocation=8)], invoices, on=later))
    ids = iter(uuid.UUID(int=n) for n in range(900, 910))
    events = p.refund(
        state, eur(3_000), "asked", later, refund_id=uuid.UUID(int=50), new_id=lambda: next(ids)
    )
    assert [type(e).__name__ for e in events] == [
        "PaymentUnallocated",
        "PaymentAllocated",
        "PaymentRefunded",
    ]
    taken_back, reallocated = events[0], events[1]
    assert isinstance(taken_back, PaymentUnallocated) and isinstance(reallocated, PaymentAllocated)
    assert taken_back.allocation_id == uuid.UUID(int=8)  # the newest
    assert reallocated.invoice_id == uuid.UUID(int=102) and reallocated.amount == eur(3_000)
    state = then(state, events)
    assert (state.applied, state.unapplied, state.refunded) == (eur(7_000), eur(0), eur(3_000))
    # The same refund id again changes nothing; more than is held is refused.
    assert p.refund(state, eur(1), "x", later, refund_id=uuid.UUID(int=50)) == []
    with pytest.raises(ValidationFailed, match="exceeds"):
        p.refund(state, eur(7_001), "x", later, refund_id=uuid.UUID(int=51))


def test_reversal_takes_everything_back_and_closes_the_payment() -> None:
    state = received(10_000)
    invoices = {invoice(1, 10_000).invoice_id: invoice(1, 10_000)}
    state = then(state, p.allocate(state, [alloc(1, 10_000)], invoices, on=DAY))
    events = p.reverse(state, None, "cheque bounced", DAY, kind="bounced")
    assert [type(e) for e in events] == [PaymentUnallocated, PaymentReversed]
    state = then(state, events)
    assert state.status is PaymentStatus.REVERSED and state.held.is_zero()
    with pytest.raises(StateConflict):
        p.reverse(state, None, "again", DAY)
    with pytest.raises(StateConflict):
        p.refund(state, eur(1), "x", DAY, refund_id=uuid.uuid4())


def test_evolve_refuses_foreign_sequences() -> None:
    with pytest.raises(p.InvalidEventSequence):
        p.evolve(None, PaymentRefunded(payment_id=PID, amount=eur(1), refunded_on=DAY, reason="x"))
    state = received()
    with pytest.raises(p.InvalidEventSequence):
        p.evolve(
            state,
            p.receive_payment(
                payment_id=PID, customer_id="c1", amount=eur(1), method="cash", received_on=DAY
            )[0],
        )


# ---- invariants under random command sequences ---------------------------------------------------

commands = st.lists(
    st.tuples(
        st.sampled_from(["allocate", "unallocate", "refund", "reverse"]),
        st.integers(min_value=0, max_value=3),  # which invoice / allocation
        st.integers(min_value=1, max_value=12_000),  # amount
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=20_000),
    opens=st.lists(st.integers(min_value=1, max_value=8_000), min_size=4, max_size=4),
    steps=commands,
)
def test_the_payment_always_balances_and_never_overfills(
    amount: int, opens: list[int], steps: list[tuple[str, int, int]]
) -> None:
    """amount = applied + unapplied + refunded + reversed, unapplied >= 0, and no invoice ever
    gets more than its open amount, whatever sequence of commands is tried."""
    state = received(amount)
    history: list[EventPayload] = p.receive_payment(
        payment_id=PID,
        customer_id="c1",
        amount=eur(amount),
        method="bank_transfer",
        received_on=DAY,
    )
    open_left = {uuid.UUID(int=100 + n): eur(o) for n, o in enumerate(opens)}
    for kind, which, minor in steps:
        try:
            if kind == "allocate":
                invoice_id = uuid.UUID(int=100 + which)
                invoices = {invoice_id: InvoiceOpen(invoice_id, "c1", open_left[invoice_id])}
                events = p.allocate(
                    state, [AllocationRequest(invoice_id, eur(minor))], invoices, on=DAY
                )
            elif kind == "unallocate":
                live = sorted(state.allocations, key=str)
                if not live:
                    continue
                events = p.unallocate(state, live[which % len(live)], "test", DAY)
            elif kind == "refund":
                events = p.refund(state, eur(minor), "test", DAY, refund_id=uuid.uuid4())
            else:
                events = p.reverse(state, eur(minor), "test", DAY)
        except (ValidationFailed, StateConflict):
            continue
        for event in events:
            if isinstance(event, PaymentAllocated):
                open_left[event.invoice_id] = open_left[event.invoice_id] - event.amount
            elif isinstance(event, PaymentUnallocated):
                open_left[event.invoice_id] = open_left[event.invoice_id] + event.amount
        state = then(state, events)
        history += events
        assert state.applied + state.unapplied + state.refunded + state.reversed == state.amount
        assert not state.unapplied.is_negative()
        assert all(not left.is_negative() for left in open_left.values())
    # Replaying the recorded facts gives the same state (what a fresh load would see).
    assert p.replay(history) == state


def test_cash_takes_effect_when_received_but_not_before_the_invoice_was_issued() -> None:
    def issued_on(day: date | None) -> InvoiceOpen:
        return InvoiceOpen(uuid.uuid4(), "c1", eur(100), issue_date=day)

    received_on = date(2026, 3, 10)
    # keyed in weeks later: still the 10th, the day the money arrived
    assert p.effective_date(received_on, [issued_on(date(2026, 3, 1))]) == received_on
    # a prepayment applied to a later invoice pays it on that invoice's issue date
    assert p.effective_date(
        received_on, [issued_on(date(2026, 3, 1)), issued_on(date(2026, 3, 20))]
    ) == date(2026, 3, 20)
    assert p.effective_date(received_on, [issued_on(None)]) == received_on  # a draft's parked cash
