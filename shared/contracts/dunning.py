"""Dunning-service events (streams `dunning_case-<tenant>:<customer_id>`, one per customer,
and `dunning_policy-<tenant>:<scope>`). Other services consume LateFeeAssessed (invoice charges
it) and AccountEscalated (credit places a hold); the rest is the audit trail of follow-ups.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.fields import ExactDecimal
from shared.events.registry import EventPayload, registry
from shared.money import Money

__all__ = [
    "AccountEscalated",
    "DunningPaused",
    "DunningPolicyDefined",
    "DunningPolicyRemoved",
    "DunningResumed",
    "DunningStep",
    "InvoiceStep",
    "LateFee",
    "LateFeeAssessed",
    "MessageKind",
    "PromiseToPayBroken",
    "PromiseToPayKept",
    "PromiseToPayRecorded",
    "ReminderCancelled",
    "ReminderFailed",
    "ReminderScheduled",
    "ReminderSent",
]

StepId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Channel = Literal["email", "phone"]
#: What an outbox message was: a reminder of a case, or a statement of account the customer
#: opted in to. Added later with a default, so events stored before read as reminders.
MessageKind = Literal["reminder", "statement"]


class LateFee(BaseModel):
    """A fee a step charges per overdue invoice: a flat amount, a percentage of the open amount,
    or daily interest at an annual rate on the open amount for the days overdue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["flat", "percent", "daily_interest"]
    flat: Money | None = None
    percent: Annotated[ExactDecimal, Field(gt=0, le=100)] | None = None
    annual_rate_percent: Annotated[ExactDecimal, Field(gt=0, le=100)] | None = None
    minimum: Money | None = None  # no fee below this (not worth a debit note)

    @model_validator(mode="after")
    def _one_amount(self) -> LateFee:
        given = {
            "flat": self.flat is not None,
            "percent": self.percent is not None,
            "daily_interest": self.annual_rate_percent is not None,
        }
        if not given[self.kind] or sum(given.values()) != 1:
            field = {"flat": "flat", "percent": "percent", "daily_interest": "annual_rate_percent"}
            raise ValueError(f"a {self.kind} late fee takes exactly `{field[self.kind]}`")
        return self


class DunningStep(BaseModel):
    """One step of a policy, relative to the invoice's due date (negative: before it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step_id: StepId
    offset_days: Annotated[int, Field(ge=-60, le=365)]
    channel: Channel = "email"
    template: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")] = "reminder"
    late_fee: LateFee | None = None
    escalate: bool = False
    needs_approval: bool = False


@registry.payload
class DunningPolicyDefined(EventPayload):
    """A tenant's policy for a scope: `tenant` (the default), `segment:<name>` or
    `customer:<id>`; the most specific one applies."""

    event_type = "DunningPolicyDefined"

    scope: Annotated[
        str,
        Field(pattern=r"^(tenant|segment:[A-Za-z0-9._-]{1,40}|customer:[A-Za-z0-9._:-]{1,64})$"),
    ]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    steps: Annotated[list[DunningStep], Field(min_length=1, max_length=20)]
    min_interval_days: Annotated[int, Field(ge=0, le=60)] = 3
    adapt_to_behaviour: bool = True


class InvoiceStep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice_id: uuid.UUID
    step_id: str


@registry.payload
class DunningPolicyRemoved(EventPayload):
    """The scope falls back to the next less specific policy."""

    event_type = "DunningPolicyRemoved"

    scope: str
    reason: str


@registry.payload
class ReminderScheduled(EventPayload):
    """Steps fell due and one message was queued for the customer, grouping their invoices (or
    one call task was made). Recording it is what makes each step happen once. Earlier steps
    that were still pending are `superseded`: a customer reached late gets the current step
    only, not every missed one at once."""

    event_type = "ReminderScheduled"

    message_id: uuid.UUID
    channel: Channel
    template: str
    steps: Annotated[list[InvoiceStep], Field(min_length=1)]
    superseded: list[InvoiceStep] = []
    amount_due: list[Money]
    scheduled_on: date
    timing_notes: list[str] = []  # why steps went earlier or later than the policy's offset


@registry.payload
class ReminderCancelled(EventPayload):
    """Nothing was due any more when the message's turn came (paid, credited or disputed in
    the meantime): it was not sent."""

    event_type = "ReminderCancelled"

    message_id: uuid.UUID
    reason: str
    cancelled_at: datetime
    kind: MessageKind = "reminder"


@registry.payload
class ReminderSent(EventPayload):
    """An e-mail was accepted by the SMTP relay: a reminder, or (``kind``) a statement."""

    event_type = "ReminderSent"

    message_id: uuid.UUID
    to: list[str]
    sent_at: datetime
    kind: MessageKind = "reminder"


@registry.payload
class ReminderFailed(EventPayload):
    """Not delivered: a permanent SMTP refusal, no address, retries exhausted, or an outcome
    unknown after a crash (never re-sent blindly: a person checks)."""

    event_type = "ReminderFailed"

    message_id: uuid.UUID
    reason: str
    failed_at: datetime
    outcome_unknown: bool = False
    kind: MessageKind = "reminder"


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
    amount_due: Money | None = None


@registry.payload
class PromiseToPayRecorded(EventPayload):
    """The customer promised to pay `amount` by `promised_date`: dunning of these invoices
    waits until then (plus the grace days)."""

    event_type = "PromiseToPayRecorded"

    promise_id: uuid.UUID
    invoice_ids: list[uuid.UUID]
    amount: Money
    promised_date: date
    grace_days: Annotated[int, Field(ge=0, le=30)] = 2
    recorded_on: date
    open_at_promise: Money  # the invoices' open amount when promised: kept once it fell by `amount`
    note: str | None = None


@registry.payload
class PromiseToPayKept(EventPayload):
    event_type = "PromiseToPayKept"

    promise_id: uuid.UUID
    kept_on: date


@registry.payload
class PromiseToPayBroken(EventPayload):
    """The promised date (plus grace) passed without the money: dunning resumes."""

    event_type = "PromiseToPayBroken"

    promise_id: uuid.UUID
    broken_on: date
    paid: Money


@registry.payload
class DunningPaused(EventPayload):
    """Follow-ups stop for the customer (`invoice_id` None) or one invoice, until resumed or
    until `until`."""

    event_type = "DunningPaused"

    pause_id: uuid.UUID
    invoice_id: uuid.UUID | None = None
    reason: str
    until: date | None = None
    paused_on: date


@registry.payload
class DunningResumed(EventPayload):
    event_type = "DunningResumed"

    pause_id: uuid.UUID
    reason: str
    resumed_on: date
