"""Dunning-service events that other services consume (stream `dunning_case-<id>`)."""

from __future__ import annotations

import uuid
from datetime import date

from shared.events.registry import EventPayload, registry
from shared.money import Money


@registry.payload
class LateFeeAssessed(EventPayload):
    """A late fee or interest the dunning policy decided on; the invoice service charges it."""

    event_type = "LateFeeAssessed"

    fee_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Money
    reason: str
    assessed_on: date
    policy_step: str | None = None


@registry.payload
class AccountEscalated(EventPayload):
    """The customer's overdue invoices were handed to collections (a dunning policy step)."""

    event_type = "AccountEscalated"

    customer_id: str
    invoice_ids: list[uuid.UUID]
    reason: str
    escalated_on: date
    policy_step: str | None = None
