"""The Payment aggregate as pure decide/evolve functions.

A payment's cash is split three ways and always balances to the minor unit:
``amount = applied + unapplied + refunded + reversed``, where ``applied`` is the sum of its
live allocations in the payment's currency. Decide functions never let ``unapplied`` go below
zero and never allocate more to an invoice than the open amount they are given; the caller
(the application layer) supplies open amounts under a row lock so that two payments cannot both
fill the same invoice.

Refunds and reversals take cash back from ``unapplied`` first, then from allocations, newest
first; an allocation only partly needed is taken back whole and its remainder allocated again
under a new id, so the invoice side only ever sees whole applications and un-applications.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.payments.domain.cards import has_card_number
from shared.contracts.invoice import PaymentMethod
from shared.contracts.payments import (
    MethodDetails,
    PaymentAllocated,
    PaymentReceived,
    PaymentRefunded,
    PaymentReversed,
    PaymentUnallocated,
)
from shared.errors import NotFound, StateConflict, ValidationFailed
from shared.events.registry import EventPayload, build_event
from shared.money import Money, Rounding, sum_money

IdFactory = Callable[[], uuid.UUID]

#: What each method must carry so the money can be traced back to its source.
REQUIRED_DETAILS: dict[PaymentMethod, tuple[tuple[str, ...], ...]] = {
    PaymentMethod.CARD: (("gateway_ref",), ("last4",)),
    PaymentMethod.ACH: (("bank_reference",),),
    PaymentMethod.DIRECT_DEBIT: (("mandate_id", "bank_reference"),),
    PaymentMethod.BANK_TRANSFER: (),
    PaymentMethod.WALLET: (("wallet_provider",), ("gateway_ref", "bank_reference")),
    PaymentMethod.CHEQUE: (("cheque_number",),),
    PaymentMethod.CASH: (),
}


class PaymentStatus(StrEnum):
    UNAPPLIED = "unapplied"
    PARTIALLY_APPLIED = "partially_applied"
    APPLIED = "applied"
    REFUNDED = "refunded"
    REVERSED = "reversed"


@dataclasses.dataclass(frozen=True)
class Allocation:
    allocation_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Money  # invoice currency
    payment_amount: Money  # payment currency
    rate: str
    rule: str
    allocated_on: date


@dataclasses.dataclass(frozen=True)
class AllocationRequest:
    """One part of a payment to apply. `amount` is in the invoice's currency; `rate` converts
    the payment's currency into it (1 for the same currency)."""

    invoice_id: uuid.UUID
    amount: Money
    rate: Decimal = Decimal(1)
    allocation_id: uuid.UUID | None = None
    rule: str = "manual"
    confidence: Decimal | None = None


@dataclasses.dataclass(frozen=True)
class InvoiceOpen:
    """What the payments service knows of an invoice when it allocates."""

    invoice_id: uuid.UUID
    customer_id: str
    open_amount: Money
    receivable: bool = True
    issue_date: date | None = None


def effective_date(received_on: date, invoices: Iterable[InvoiceOpen]) -> date:
    """Cash counts from the day it was received, whenever it is applied: applying it later must
    not make the customer late or cost an early-payment discount. Never before an invoice was
    issued, though: cash received earlier (unapplied, a prepayment) pays it on its issue date."""
    return max([received_on, *(i.issue_date for i in invoices if i.issue_date is not None)])


@dataclasses.dataclass(frozen=True)
class PaymentState:
    payment_id: uuid.UUID
    customer_id: str
    amount: Money
    method: str
    received_on: date
    reference: str | None
    details: MethodDetails | None
    source: str
    allocations: Mapping[uuid.UUID, Allocation]  # live ones
    released: frozenset[uuid.UUID]  # allocation ids taken back (never reused)
    refunded: Money
    reversed: Money
    refund_ids: frozenset[uuid.UUID]
    version: int

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def applied(self) -> Money:
        return sum_money((a.payment_amount for a in self.allocations.values()), self.currency)

    @property
    def unapplied(self) -> Money:
        return self.amount - self.applied - self.refunded - self.reversed

    @property
    def held(self) -> Money:
        """Cash still with us (applied or not): what a refund or reversal can take back."""
        return self.amount - self.refunded - self.reversed

    @property
    def status(self) -> PaymentStatus:
        if not self.reversed.is_zero() and self.held.is_zero():
            return PaymentStatus.REVERSED
        if not self.refunded.is_zero() and self.held.is_zero():
            return PaymentStatus.REFUNDED
        if self.unapplied.is_zero() and not self.applied.is_zero():
            return PaymentStatus.APPLIED
        if not self.applied.is_zero():
            return PaymentStatus.PARTIALLY_APPLIED
        return PaymentStatus.UNAPPLIED


# ---- receiving ---------------------------------------------------------------------------------


def receive_payment(
    *,
    payment_id: uuid.UUID,
    customer_id: str,
    amount: Money,
    method: str,
    received_on: date,
    reference: str | None = None,
    details: MethodDetails | None = None,
    source: str = "api",
    statement_line_id: uuid.UUID | None = None,
) -> list[EventPayload]:
    if not amount.is_positive():
        raise ValidationFailed("a payment amount must be positive", {"field": "amount"})
    try:
        kind = PaymentMethod(method)
    except ValueError:
        raise ValidationFailed(
            f"unknown payment method {method!r}",
            {"field": "method", "allowed": [m.value for m in PaymentMethod]},
        ) from None
    _require_method_details(kind, details)
    _refuse_card_numbers(reference, details)
    return [
        build_event(
            PaymentReceived,
            payment_id=payment_id,
            customer_id=customer_id,
            amount=amount,
            method=kind.value,
            received_on=received_on,
            reference=reference,
            details=details,
            source=source,
            statement_line_id=statement_line_id,
        )
    ]


def _require_method_details(method: PaymentMethod, details: MethodDetails | None) -> None:
    given = details.model_dump(exclude_none=True) if details else {}
    for alternatives in REQUIRED_DETAILS[method]:
        if not any(field in given for field in alternatives):
            raise ValidationFailed(
                f"a {method.value} payment needs details.{' or details.'.join(alternatives)}",
                {"field": "details", "method": method.value, "required": list(alternatives)},
            )


def _refuse_card_numbers(reference: str | None, details: MethodDetails | None) -> None:
    """Card numbers must never be stored: refuse any field that carries one (Luhn-valid)."""
    texts = [reference or ""] + [
        v for v in (details.model_dump().values() if details else ()) if isinstance(v, str)
    ]
    if any(has_card_number(text) for text in texts):
        raise ValidationFailed(
            "a card number must not be sent: use the gateway token and last4",
            {"field": "reference/details"},
        )


# ---- allocating ----------------------------------------------------------------------------------


def allocate(
    state: PaymentState,
    requests: Sequence[AllocationRequest],
    invoices: Mapping[uuid.UUID, InvoiceOpen],
    *,
    on: date,
    actor: str | None = None,
    new_id: IdFactory = uuid.uuid4,
) -> list[EventPayload]:
    """Apply parts of the unapplied cash to invoices. All or nothing; repeats of an allocation
    id already recorded with the same invoice and amount are skipped (idempotent)."""
    if not requests:
        raise ValidationFailed("nothing to allocate", {"field": "allocations"})
    _require_held(state, "allocate")
    if on < state.received_on:
        raise ValidationFailed(
            f"cannot allocate on {on}, before the payment was received ({state.received_on})",
            {"field": "allocated_on"},
        )
    events: list[EventPayload] = []
    spend = Money.zero(state.currency)
    per_invoice: dict[uuid.UUID, Money] = {}
    for request in requests:
        if request.allocation_id is not None and _already_recorded(state, request):
            continue
        invoice = invoices.get(request.invoice_id)
        if invoice is None or not invoice.receivable:
            raise StateConflict(
                f"invoice {request.invoice_id} is not open for payments",
                {"invoice_id": str(request.invoice_id)},
            )
        _require_same_customer(state, invoice)
        payment_amount = _payment_side(state, request)
        target = per_invoice.get(invoice.invoice_id, Money.zero(invoice.open_amount.currency))
        target = target + request.amount
        if target > invoice.open_amount:
            raise ValidationFailed(
                f"allocating {target} exceeds the open amount {invoice.open_amount} "
                f"of invoice {invoice.invoice_id}",
                {
                    "invoice_id": str(invoice.invoice_id),
                    "open_amount": invoice.open_amount.model_dump(mode="json"),
                    "requested": target.model_dump(mode="json"),
                },
            )
        per_invoice[invoice.invoice_id] = target
        spend = spend + payment_amount
        events.append(
            build_event(
                PaymentAllocated,
                payment_id=state.payment_id,
                allocation_id=request.allocation_id or new_id(),
                invoice_id=request.invoice_id,
                amount=request.amount,
                payment_amount=payment_amount,
                rate=_rate_text(request.rate),
                allocated_on=on,
                rule=request.rule,
                confidence=None if request.confidence is None else _rate_text(request.confidence),
                allocated_by=actor,
            )
        )
    if spend > state.unapplied:
        raise ValidationFailed(
            f"allocating {spend} exceeds the payment's unapplied {state.unapplied}",
            {
                "payment_id": str(state.payment_id),
                "unapplied": state.unapplied.model_dump(mode="json"),
                "requested": spend.model_dump(mode="json"),
            },
        )
    return events


def _already_recorded(state: PaymentState, request: AllocationRequest) -> bool:
    assert request.allocation_id is not None
    if request.allocation_id in state.released:
        return True
    recorded = state.allocations.get(request.allocation_id)
    if recorded is None:
        return False
    if recorded.invoice_id != request.invoice_id or recorded.amount != request.amount:
        raise ValidationFailed(
            f"allocation {request.allocation_id} was already recorded with another invoice "
            "or amount",
            {"allocation_id": str(request.allocation_id)},
        )
    return True


def _require_same_customer(state: PaymentState, invoice: InvoiceOpen) -> None:
    if invoice.customer_id != state.customer_id:
        raise ValidationFailed(
            f"invoice {invoice.invoice_id} belongs to another customer",
            {"invoice_id": str(invoice.invoice_id), "payment_customer_id": state.customer_id},
        )


def _payment_side(state: PaymentState, request: AllocationRequest) -> Money:
    """The allocation's amount in the payment's currency: amount / rate, rounded half up."""
    if not request.amount.is_positive():
        raise ValidationFailed("an allocation amount must be positive", {"field": "amount"})
    if request.rate <= 0:
        raise ValidationFailed("a rate must be positive", {"field": "rate"})
    if request.amount.currency == state.currency:
        if request.rate != 1:
            raise ValidationFailed("same-currency allocations take rate 1", {"field": "rate"})
        return request.amount
    if request.rate == 1:
        raise ValidationFailed(
            f"allocating {state.currency} cash to a {request.amount.currency} invoice needs a rate",
            {"field": "rate"},
        )
    return request.amount.convert(state.currency, 1 / request.rate, Rounding.HALF_UP)


def _rate_text(rate: Decimal) -> str:
    text = format(rate.normalize(), "f")
    return text


# ---- taking allocations back ------------------------------------------------------------------


def unallocate(
    state: PaymentState, allocation_id: uuid.UUID, reason: str, on: date
) -> list[EventPayload]:
    """Take one allocation back whole; a repeat is a no-op."""
    if allocation_id in state.released:
        return []
    allocation = state.allocations.get(allocation_id)
    if allocation is None:
        raise NotFound(
            f"payment {state.payment_id} has no allocation {allocation_id}",
            {"allocation_id": str(allocation_id)},
        )
    return [_unallocated(state, allocation, reason, on)]


def _unallocated(
    state: PaymentState, allocation: Allocation, reason: str, on: date
) -> EventPayload:
    return build_event(
        PaymentUnallocated,
        payment_id=state.payment_id,
        allocation_id=allocation.allocation_id,
        invoice_id=allocation.invoice_id,
        amount=allocation.amount,
        payment_amount=allocation.payment_amount,
        reason=reason,
        unallocated_on=max(on, allocation.allocated_on),
    )


def refund(
    state: PaymentState,
    amount: Money,
    reason: str,
    on: date,
    *,
    refund_id: uuid.UUID,
    gateway_ref: str | None = None,
    new_id: IdFactory = uuid.uuid4,
) -> list[EventPayload]:
    """Pay cash back to the customer; idempotent on `refund_id`."""
    if refund_id in state.refund_ids:
        return []
    events = _release_for(state, amount, "refund", reason, on, new_id)
    events.append(
        build_event(
            PaymentRefunded,
            payment_id=state.payment_id,
            amount=amount,
            refunded_on=on,
            reason=reason,
            refund_id=refund_id,
            gateway_ref=gateway_ref,
        )
    )
    return events


def reverse(
    state: PaymentState,
    amount: Money | None,
    reason: str,
    on: date,
    *,
    kind: str = "other",
    new_id: IdFactory = uuid.uuid4,
) -> list[EventPayload]:
    """The money did not arrive after all (chargeback, bounced cheque): by default all of it."""
    amount = amount if amount is not None else state.held
    events = _release_for(state, amount, "reversal", reason, on, new_id)
    events.append(
        build_event(
            PaymentReversed,
            payment_id=state.payment_id,
            amount=amount,
            reversed_on=on,
            reason=reason,
            kind=kind,
        )
    )
    return events


def _release_for(
    state: PaymentState, amount: Money, what: str, reason: str, on: date, new_id: IdFactory
) -> list[EventPayload]:
    """Unallocate (newest first) until `amount` is unapplied; re-allocate what was not needed."""
    _require_held(state, what)
    if amount.currency != state.currency:
        raise ValidationFailed(
            f"a {what} is in the payment's currency {state.currency}", {"field": "amount"}
        )
    if not amount.is_positive():
        raise ValidationFailed(f"a {what} amount must be positive", {"field": "amount"})
    if amount > state.held:
        raise ValidationFailed(
            f"a {what} of {amount} exceeds the {state.held} still held of this payment",
            {"field": "amount", "held": state.held.model_dump(mode="json")},
        )
    if on < state.received_on:
        raise ValidationFailed(f"a {what} cannot predate the payment", {"field": "on"})
    needed = amount - state.unapplied
    events: list[EventPayload] = []
    newest_first = sorted(
        state.allocations.values(), key=lambda a: (a.allocated_on, str(a.allocation_id))
    )[::-1]
    note = f"{what}: {reason}"
    for allocation in newest_first:
        if not needed.is_positive():
            break
        events.append(_unallocated(state, allocation, note, on))
        remainder = allocation.payment_amount - needed
        needed = needed - allocation.payment_amount
        if remainder.is_positive():
            events.append(_reallocated_remainder(state, allocation, remainder, on, new_id))
    return events


def _reallocated_remainder(
    state: PaymentState, allocation: Allocation, remainder: Money, on: date, new_id: IdFactory
) -> EventPayload:
    rate = Decimal(allocation.rate)
    invoice_side = (
        remainder
        if allocation.amount.currency == state.currency
        else remainder.convert(allocation.amount.currency, rate, Rounding.HALF_UP)
    )
    invoice_side = min(invoice_side, allocation.amount)
    return build_event(
        PaymentAllocated,
        payment_id=state.payment_id,
        allocation_id=new_id(),
        invoice_id=allocation.invoice_id,
        amount=invoice_side,
        payment_amount=remainder,
        rate=allocation.rate,
        allocated_on=max(on, allocation.allocated_on),
        rule=allocation.rule,
    )


def _require_held(state: PaymentState, what: str) -> None:
    if state.held.is_zero():
        raise StateConflict(
            f"cannot {what}: payment {state.payment_id} is {state.status.value}",
            {"payment_id": str(state.payment_id), "status": state.status.value},
        )


# ---- evolve ------------------------------------------------------------------------------------


class InvalidEventSequence(ValueError):
    """An event that cannot follow the stream so far: a bug or a corrupted stream."""


def evolve(state: PaymentState | None, event: EventPayload) -> PaymentState:
    if isinstance(event, PaymentReceived):
        if state is not None:
            raise InvalidEventSequence("PaymentReceived on an existing payment")
        zero = Money.zero(event.amount.currency)
        return PaymentState(
            payment_id=event.payment_id,
            customer_id=event.customer_id,
            amount=event.amount,
            method=event.method,
            received_on=event.received_on,
            reference=event.reference,
            details=event.details,
            source=event.source,
            allocations={},
            released=frozenset(),
            refunded=zero,
            reversed=zero,
            refund_ids=frozenset(),
            version=1,
        )
    if state is None:
        raise InvalidEventSequence(f"{event.event_type} before PaymentReceived")
    changes: dict[str, Any] = {"version": state.version + 1}
    match event:
        case PaymentAllocated():
            changes["allocations"] = {
                **state.allocations,
                event.allocation_id: Allocation(
                    allocation_id=event.allocation_id,
                    invoice_id=event.invoice_id,
                    amount=event.amount,
                    payment_amount=event.payment_amount,
                    rate=event.rate,
                    rule=event.rule,
                    allocated_on=event.allocated_on,
                ),
            }
        case PaymentUnallocated():
            changes["allocations"] = {
                k: v for k, v in state.allocations.items() if k != event.allocation_id
            }
            changes["released"] = state.released | {event.allocation_id}
        case PaymentRefunded():
            changes["refunded"] = state.refunded + event.amount
            if event.refund_id is not None:
                changes["refund_ids"] = state.refund_ids | {event.refund_id}
        case PaymentReversed():
            changes["reversed"] = state.reversed + event.amount
        case _:
            raise InvalidEventSequence(f"{event.event_type} does not belong to a payment")
    return dataclasses.replace(state, **changes)


def replay(events: Iterable[EventPayload]) -> PaymentState | None:
    state: PaymentState | None = None
    for event in events:
        state = evolve(state, event)
    return state
