"""Event payloads of the invoice service (invoice, customer and payment-terms-template aggregates).

Each payload registers itself on the process-wide registry on import. Money is ``Money``
(integer minor units), dates are ``date``, and decimals are ``Decimal`` serialized as strings,
so ``model_validate(model_dump(mode="json"))`` gives back an equal payload.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.invoice.domain._types import Text
from services.invoice.domain.lines import LineItem
from services.invoice.domain.terms import Installment, PaymentMethod, PaymentTerms
from shared.events.registry import EventPayload, registry
from shared.money import Money, currency_exponent

__all__ = [
    "COUNTRY_CODES",
    "Address",
    "CreditCheckRecord",
    "CreditNoteIssued",
    "CustomerRegistered",
    "CustomerUpdated",
    "DisputeOpened",
    "DisputeResolved",
    "InvoiceDraftUpdated",
    "InvoiceDrafted",
    "InvoiceDueDateChanged",
    "InvoiceIssued",
    "InvoicePaid",
    "InvoiceReopened",
    "InvoiceVoided",
    "InvoiceWrittenOff",
    "LateFeeCharged",
    "PaymentApplied",
    "PaymentTermsTemplateDefined",
    "PaymentUnapplied",
]

CustomerId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S+$")]
Series = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
DocumentNumber = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
OptionalText = Annotated[str, Field(max_length=2000)] | None


class _WithCurrency(EventPayload):
    currency: str

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        currency_exponent(value)
        return value


# ------------------------------------------------------------------------- invoice


class _DraftFields(_WithCurrency):
    """The editable content of a draft; every draft event carries all of it (full replacement)."""

    invoice_id: uuid.UUID
    customer_id: CustomerId
    lines: Annotated[list[LineItem], Field(min_length=1, max_length=500)]
    terms: PaymentTerms
    description: OptionalText = None
    po_reference: Annotated[str, Field(max_length=100)] | None = None
    notes: OptionalText = None
    accepted_payment_methods: Annotated[list[PaymentMethod], Field(min_length=1)]
    series: Series

    @field_validator("accepted_payment_methods")
    @classmethod
    def _unique_methods(cls, value: list[PaymentMethod]) -> list[PaymentMethod]:
        if len(set(value)) != len(value):
            raise ValueError("accepted_payment_methods must not repeat a method")
        return value


@registry.payload
class InvoiceDrafted(_DraftFields):
    event_type: ClassVar[str] = "InvoiceDrafted"
    schema_version: ClassVar[int] = 1


@registry.payload
class InvoiceDraftUpdated(_DraftFields):
    """A draft's content replaced as a whole. ``invoice_id``, ``customer_id`` and ``currency``
    repeat the draft's own (they cannot change: the customer is the Kafka key)."""

    event_type: ClassVar[str] = "InvoiceDraftUpdated"
    schema_version: ClassVar[int] = 1


class CreditCheckRecord(BaseModel):
    """How credit policy let this invoice through: a passed check, a named override, or the
    credit service being unavailable while policy allows issuing anyway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Literal["passed", "overridden", "unavailable_allowed"]
    check_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    reason: OptionalText = None
    overridden_by: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _override_is_attributed(self) -> CreditCheckRecord:
        if self.outcome == "overridden" and (self.overridden_by is None or not self.reason):
            raise ValueError("an overridden credit check needs overridden_by and a reason")
        if self.outcome != "overridden" and self.overridden_by is not None:
            raise ValueError("overridden_by only goes with an overridden credit check")
        return self


@registry.payload
class InvoiceIssued(_WithCurrency):
    event_type: ClassVar[str] = "InvoiceIssued"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    customer_id: CustomerId
    number: DocumentNumber
    issue_date: date
    due_date: date
    total: Money
    subtotal: Money
    tax_total: Money
    installments: Annotated[list[Installment], Field(min_length=1)]
    credit_check: CreditCheckRecord


@registry.payload
class InvoiceVoided(EventPayload):
    event_type: ClassVar[str] = "InvoiceVoided"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    reason: Text
    voided_on: date


@registry.payload
class CreditNoteIssued(EventPayload):
    event_type: ClassVar[str] = "CreditNoteIssued"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    credit_note_id: uuid.UUID
    number: DocumentNumber | None = None
    amount: Money
    reason: Text
    issued_on: date
    dispute_id: uuid.UUID | None = None


@registry.payload
class PaymentApplied(EventPayload):
    """``amount`` of payment ``payment_id`` applied; ``discount_taken`` is the early-payment
    discount granted with it (zero if none). Both reduce the open amount."""

    event_type: ClassVar[str] = "PaymentApplied"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    allocation_id: uuid.UUID
    payment_id: uuid.UUID
    amount: Money
    applied_on: date
    discount_taken: Money


@registry.payload
class PaymentUnapplied(EventPayload):
    """A previous application reversed (refund, chargeback, re-allocation). ``discount_reversed``
    is the early-payment discount granted with that application, which is withdrawn with it."""

    event_type: ClassVar[str] = "PaymentUnapplied"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    allocation_id: uuid.UUID
    amount: Money
    reason: Text
    unapplied_on: date
    discount_reversed: Money | None = None


@registry.payload
class InvoicePaid(EventPayload):
    event_type: ClassVar[str] = "InvoicePaid"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    paid_on: date


@registry.payload
class InvoiceReopened(EventPayload):
    """A paid invoice is open again because a payment was unapplied."""

    event_type: ClassVar[str] = "InvoiceReopened"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    reason: Text


@registry.payload
class InvoiceWrittenOff(EventPayload):
    event_type: ClassVar[str] = "InvoiceWrittenOff"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    amount: Money
    reason: Text
    written_off_on: date


@registry.payload
class DisputeOpened(EventPayload):
    event_type: ClassVar[str] = "DisputeOpened"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    dispute_id: uuid.UUID
    amount: Money
    reason: Text
    opened_on: date


@registry.payload
class DisputeResolved(EventPayload):
    event_type: ClassVar[str] = "DisputeResolved"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    dispute_id: uuid.UUID
    outcome: Literal["accepted", "rejected"]
    resolution_note: OptionalText = None
    credit_note_id: uuid.UUID | None = None
    resolved_on: date

    @model_validator(mode="after")
    def _credit_note_only_when_accepted(self) -> DisputeResolved:
        if (self.outcome == "accepted") != (self.credit_note_id is not None):
            raise ValueError("an accepted dispute names its credit note; a rejected one none")
        return self


@registry.payload
class LateFeeCharged(EventPayload):
    """A late fee charged as a debit note: it raises the open amount, the issued lines stay."""

    event_type: ClassVar[str] = "LateFeeCharged"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    fee_id: uuid.UUID
    amount: Money
    reason: Text
    charged_on: date
    debit_note_number: DocumentNumber | None = None


@registry.payload
class InvoiceDueDateChanged(EventPayload):
    event_type: ClassVar[str] = "InvoiceDueDateChanged"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    previous_due_date: date
    new_due_date: date
    reason: Text


# ---------------------------------------------------------------- customer, templates

#: ISO 3166-1 alpha-2 country codes (officially assigned).
COUNTRY_CODES: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """.split()
)

_AddressLine = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class Address(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    line1: _AddressLine
    line2: Annotated[str, Field(max_length=200)] | None = None
    city: _AddressLine
    postal_code: Annotated[str, Field(min_length=1, max_length=20, pattern=r"\S")]
    region: Annotated[str, Field(max_length=100)] | None = None
    country: str

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        if value not in COUNTRY_CODES:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (uppercase)")
        return value


class _CustomerFields(_WithCurrency):
    customer_id: CustomerId
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    billing_address: Address
    tax_id: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    default_terms: PaymentTerms | None = None
    terms_template_id: uuid.UUID | None = None


@registry.payload
class CustomerRegistered(_CustomerFields):
    event_type: ClassVar[str] = "CustomerRegistered"
    schema_version: ClassVar[int] = 1


@registry.payload
class CustomerUpdated(_CustomerFields):
    """The customer's master data replaced as a whole."""

    event_type: ClassVar[str] = "CustomerUpdated"
    schema_version: ClassVar[int] = 1


@registry.payload
class PaymentTermsTemplateDefined(EventPayload):
    event_type: ClassVar[str] = "PaymentTermsTemplateDefined"
    schema_version: ClassVar[int] = 1

    template_id: uuid.UUID
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]
    terms: PaymentTerms
