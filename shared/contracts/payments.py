"""Payments-service events that other services consume.

Streams: `payment-<uuid>` (one payment: receipt, allocations, refunds, reversals) and
`bank_statement-<uuid>` (one imported statement and how its lines were matched).

A payment's unapplied cash is what it received minus what is allocated (plus what was
unallocated again) minus what was refunded or reversed; credit keeps it per customer.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.invoice import PaymentMethod
from shared.events.registry import EventPayload, registry
from shared.money import Money

__all__ = [
    "BankStatementImported",
    "MethodDetails",
    "PaymentAllocated",
    "PaymentMethod",
    "PaymentReceived",
    "PaymentRefunded",
    "PaymentReversed",
    "PaymentUnallocated",
    "StatementLine",
    "StatementLineIgnored",
    "StatementLineMatched",
]

_Ref = Annotated[str, Field(min_length=1, max_length=200)]
Rate = Annotated[str, Field(pattern=r"^\d{1,12}(\.\d{1,12})?$")]
Confidence = Annotated[str, Field(pattern=r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$")]


class MethodDetails(BaseModel):
    """Method-specific references. Never a card number: a gateway token and the last four."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway: _Ref | None = None  # "stripe", ...
    gateway_ref: _Ref | None = None  # the gateway's id of the charge / payment intent (a token)
    card_brand: Annotated[str, Field(max_length=30)] | None = None
    last4: Annotated[str, Field(pattern=r"^\d{4}$")] | None = None  # card or bank account
    bank_reference: _Ref | None = None  # transfer / ACH trace / statement entry id
    mandate_id: _Ref | None = None  # direct debit
    wallet_provider: Annotated[str, Field(max_length=50)] | None = None
    cheque_number: Annotated[str, Field(max_length=50)] | None = None
    bank_name: Annotated[str, Field(max_length=100)] | None = None
    receipt_number: Annotated[str, Field(max_length=50)] | None = None  # cash
    payer_name: Annotated[str, Field(max_length=200)] | None = None


@registry.payload
class PaymentReceived(EventPayload):
    """Money received from a customer, before any of it is applied to invoices."""

    event_type = "PaymentReceived"

    payment_id: uuid.UUID
    customer_id: str
    amount: Money
    method: str  # a PaymentMethod value
    received_on: date
    reference: str | None = None
    details: MethodDetails | None = None
    source: Literal["api", "gateway", "statement"] = "api"
    statement_line_id: uuid.UUID | None = None  # the bank-statement line it was created from


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
    confidence: Confidence | None = None  # of the automatic match that made it
    allocated_by: str | None = None  # actor; the envelope has it too, kept for read models


@registry.payload
class PaymentUnallocated(EventPayload):
    """A previous allocation taken back (refund, reversal, re-allocation, invoice rejection)."""

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
class PaymentRefunded(EventPayload):
    """Unapplied cash paid back to the customer (allocations are taken back first)."""

    event_type = "PaymentRefunded"

    payment_id: uuid.UUID
    amount: Money
    refunded_on: date
    reason: str
    refund_id: uuid.UUID | None = None
    gateway_ref: str | None = None


@registry.payload
class PaymentReversed(EventPayload):
    """The money never arrived after all (chargeback, bounced cheque); allocations were taken
    back first with PaymentUnallocated."""

    event_type = "PaymentReversed"

    payment_id: uuid.UUID
    amount: Money
    reversed_on: date
    reason: str
    kind: Literal["chargeback", "bounced", "returned", "other"] = "other"


class StatementLine(BaseModel):
    """One entry of a bank statement; `amount` is signed (positive = money in)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line_id: uuid.UUID
    booking_date: date
    value_date: date | None = None
    amount: Money
    reference: Annotated[str, Field(max_length=1000)] = ""
    counterparty_name: Annotated[str, Field(max_length=200)] | None = None
    counterparty_account: Annotated[str, Field(max_length=100)] | None = None
    bank_reference: Annotated[str, Field(max_length=200)] | None = None
    fingerprint: Annotated[str, Field(min_length=16, max_length=128)]


@registry.payload
class BankStatementImported(EventPayload):
    """A statement file read in. Lines already imported before (same fingerprint) are left
    out and counted in `duplicates_skipped`."""

    event_type = "BankStatementImported"

    statement_id: uuid.UUID
    format: Literal["csv", "camt053", "ofx"]
    account: str | None = None
    statement_ref: str | None = None
    currency: str
    opening_balance: Money | None = None
    closing_balance: Money | None = None
    lines: list[StatementLine]
    duplicates_skipped: int = Field(ge=0)
    imported_on: date


@registry.payload
class StatementLineMatched(EventPayload):
    """A statement line accounted for by a payment: one recorded earlier that the bank now
    confirms (`rule="existing_payment"`), or one created from the line."""

    event_type = "StatementLineMatched"

    statement_id: uuid.UUID
    line_id: uuid.UUID
    payment_id: uuid.UUID
    customer_id: str
    rule: str  # existing_payment | invoice_number | exact_amount | ... | manual
    confidence: Confidence | None = None
    matched_by: Literal["auto", "manual"]


@registry.payload
class StatementLineIgnored(EventPayload):
    """A line that is not customer money (interest, fees, transfers): reviewed and set aside."""

    event_type = "StatementLineIgnored"

    statement_id: uuid.UUID
    line_id: uuid.UUID
    reason: str
