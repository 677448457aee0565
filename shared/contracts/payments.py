"""Payments-service events that other services consume (stream `payment-<uuid>`).

A payment's unapplied cash is what it received minus what is allocated (plus what was
unallocated again) minus what was refunded or reversed; credit keeps it per customer.
"""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import Field

from shared.events.registry import EventPayload, registry
from shared.money import Money


@registry.payload
class PaymentAllocated(EventPayload):
    """Part of a payment applied to one invoice. `amount` is in the invoice's currency;
    `payment_amount` is the same part in the payment's currency, converted at `rate`."""

    event_type = "PaymentAllocated"

    payment_id: uuid.UUID
    allocation_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Money
    payment_amount: Money
    rate: str = Field(default="1", pattern=r"^\d+(\.\d+)?$")
    allocated_on: date
    rule: str = "manual"  # manual | invoice_number | exact_amount | tolerance | combination | alias


@registry.payload
class PaymentUnallocated(EventPayload):
    """A previous allocation taken back (refund, reversal, re-allocation)."""

    event_type = "PaymentUnallocated"

    payment_id: uuid.UUID
    allocation_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Money
    reason: str
    unallocated_on: date
    # The same part in the payment's currency; absent means the payment's currency is the
    # invoice's and it equals `amount`.
    payment_amount: Money | None = None


@registry.payload
class PaymentReceived(EventPayload):
    """Money received from a customer, before any of it is applied to invoices."""

    event_type = "PaymentReceived"

    payment_id: uuid.UUID
    customer_id: str
    amount: Money
    method: str  # card | ach | direct_debit | bank_transfer | wallet | cheque | cash
    received_on: date
    reference: str | None = None


@registry.payload
class PaymentRefunded(EventPayload):
    """Unapplied cash paid back to the customer (allocations are taken back first)."""

    event_type = "PaymentRefunded"

    payment_id: uuid.UUID
    amount: Money
    refunded_on: date
    reason: str


@registry.payload
class PaymentReversed(EventPayload):
    """The money never arrived after all (chargeback, bounced cheque); allocations were taken
    back first with PaymentUnallocated."""

    event_type = "PaymentReversed"

    payment_id: uuid.UUID
    amount: Money
    reversed_on: date
    reason: str
