"""Request bodies of the invoice API. Every model forbids unknown fields."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.fields import LAST_DAY
from shared.contracts.invoice import Address, LineItem, PaymentMethod, PaymentTerms

CustomerIdField = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]
MinorUnits = Annotated[
    int, Field(gt=0, le=10**15, description="amount in minor units of the invoice currency")
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerBody(Body):
    name: str
    email: str
    currency: str
    billing_address: Address
    tax_id: str | None = None
    default_terms: PaymentTerms | None = None
    terms_template_id: uuid.UUID | None = None


class CustomerCreate(CustomerBody):
    customer_id: CustomerIdField


class TermsTemplateCreate(Body):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]
    terms: PaymentTerms


class InvoiceCreate(Body):
    customer_id: CustomerIdField
    lines: Annotated[list[LineItem], Field(min_length=1, max_length=500)]
    currency: str | None = Field(None, description="defaults to the customer's currency")
    terms: PaymentTerms | None = Field(None, description="defaults to the customer's terms")
    terms_template_id: uuid.UUID | None = None
    series: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,9}$")] = "INV"
    description: Annotated[str, Field(max_length=2000)] | None = None
    po_reference: Annotated[str, Field(max_length=100)] | None = None
    notes: Annotated[str, Field(max_length=4000)] | None = None
    accepted_payment_methods: list[PaymentMethod] | None = None


class InvoicePatch(Body):
    """Only for drafts; any field given replaces the draft's."""

    lines: Annotated[list[LineItem], Field(min_length=1, max_length=500)] | None = None
    terms: PaymentTerms | None = None
    series: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,9}$")] | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    po_reference: Annotated[str, Field(max_length=100)] | None = None
    notes: Annotated[str, Field(max_length=4000)] | None = None
    accepted_payment_methods: list[PaymentMethod] | None = None


class IssueBody(Body):
    # bounded so the due date (issue date + terms) stays inside Python's dates
    issue_date: date | None = Field(
        None, le=LAST_DAY, description=f"defaults to today (UTC); at the latest {LAST_DAY}"
    )
    override_credit_check: bool = Field(False, description="needs the credit:override scope")
    override_reason: Reason | None = None


class ReasonBody(Body):
    reason: Reason
    on: date | None = Field(None, description="business date; defaults to today (UTC)")


class CreditNoteCreate(Body):
    amount: MinorUnits
    reason: Reason
    on: date | None = None


class DisputeCreate(Body):
    amount: MinorUnits
    reason: Reason
    on: date | None = None


class DisputeResolve(Body):
    outcome: Literal["accepted", "rejected"]
    note: Annotated[str, Field(max_length=2000)] | None = None
    on: date | None = None


class DueDateChange(Body):
    due_date: date
    reason: Reason
