"""Payments-service events that other services consume (stream `payment-<uuid>`)."""

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
