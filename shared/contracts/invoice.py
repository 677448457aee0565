"""The invoice service's published events and the value types inside them.

Other services consume these payloads from here, never from ``services.invoice``. Each payload
registers itself on the process-wide registry on import. Money is ``Money`` (integer minor
units), dates are ``date``, and decimals are ``Decimal`` serialized as strings, so
``model_validate(model_dump(mode="json"))`` gives back an equal payload.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from shared.contracts.fields import (
    Days,
    ExactDecimal,
    Percent,
    Text,
    format_decimal,
    fractional_places,
)
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
    "EarlyPaymentDiscount",
    "Installment",
    "InstallmentSpec",
    "InvoiceDraftUpdated",
    "InvoiceDrafted",
    "InvoiceDueDateChanged",
    "InvoiceIssued",
    "InvoicePaid",
    "InvoiceReopened",
    "InvoiceVoided",
    "InvoiceWrittenOff",
    "LateFeeCharged",
    "LineItem",
    "PaymentApplicationRejected",
    "PaymentApplied",
    "PaymentMethod",
    "PaymentTerms",
    "PaymentTermsTemplateDefined",
    "PaymentUnapplied",
    "TaxRate",
    "TermsKind",
]

# ------------------------------------------------------------------- payment terms


class PaymentMethod(StrEnum):
    CARD = "card"
    ACH = "ach"
    DIRECT_DEBIT = "direct_debit"
    BANK_TRANSFER = "bank_transfer"
    WALLET = "wallet"
    CHEQUE = "cheque"
    CASH = "cash"


class TermsKind(StrEnum):
    NET = "net"
    DUE_ON_RECEIPT = "due_on_receipt"
    END_OF_MONTH = "end_of_month"
    INSTALLMENTS = "installments"


class InstallmentSpec(BaseModel):
    """One instalment of an instalment plan: ``percent`` of the total, due N days after issue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days_after_issue: Days
    percent: Annotated[ExactDecimal, Field(gt=0, le=100)]


class EarlyPaymentDiscount(BaseModel):
    """``percent`` off when the invoice is settled within ``within_days`` of issue ("2/10")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    percent: Annotated[ExactDecimal, Field(gt=0, lt=100)]
    within_days: Annotated[StrictInt, Field(ge=0, le=365)]


class PaymentTerms(BaseModel):
    """When an invoice is due. Only the fields of ``kind`` may be set:

    * ``net``: ``net_days`` (due = issue date + N days)
    * ``due_on_receipt``: nothing (due on the issue date)
    * ``end_of_month``: ``eom_plus_days`` (due = last day of the issue month + N days)
    * ``installments``: ``installments`` (>= 2, percents summing to exactly 100, days strictly
      increasing; the final due date is the last instalment's)

    ``early_payment_discount`` and ``late_fee_policy`` (a reference to a dunning policy) may go
    with any kind.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TermsKind
    net_days: Days | None = None
    eom_plus_days: Days | None = None
    installments: list[InstallmentSpec] | None = None
    early_payment_discount: EarlyPaymentDiscount | None = None
    late_fee_policy: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @model_validator(mode="after")
    def _fields_match_kind(self) -> PaymentTerms:
        required = {
            TermsKind.NET: "net_days",
            TermsKind.DUE_ON_RECEIPT: None,
            TermsKind.END_OF_MONTH: "eom_plus_days",
            TermsKind.INSTALLMENTS: "installments",
        }[self.kind]
        for name in ("net_days", "eom_plus_days", "installments"):
            present = getattr(self, name) is not None
            if name == required and not present:
                raise ValueError(f"{name} is required for {self.kind.value} terms")
            if name != required and present:
                raise ValueError(f"{name} does not belong to {self.kind.value} terms")
        if self.installments is not None:
            _check_installments(self.installments)
        return self

    def describe(self) -> str:
        """Human wording: "Net 30", "Due on receipt", "EOM + 15", "3 installments", "2% 10, Net 30"."""
        if self.kind is TermsKind.NET:
            base = f"Net {self.net_days}"
        elif self.kind is TermsKind.DUE_ON_RECEIPT:
            base = "Due on receipt"
        elif self.kind is TermsKind.END_OF_MONTH:
            base = f"EOM + {self.eom_plus_days}"
        else:
            base = f"{len(self.installments or [])} installments"
        discount = self.early_payment_discount
        if discount is None:
            return base
        return f"{format_decimal(discount.percent)}% {discount.within_days}, {base}"


def _check_installments(specs: list[InstallmentSpec]) -> None:
    if len(specs) < 2:
        raise ValueError("installment terms need at least 2 installments")
    if len(specs) > 120:
        raise ValueError("installment terms allow at most 120 installments")
    total = sum((spec.percent for spec in specs), Decimal(0))
    if total != 100:
        raise ValueError(f"installment percents must sum to exactly 100, got {total}")
    days = [spec.days_after_issue for spec in specs]
    if any(later <= earlier for earlier, later in pairwise(days)):
        raise ValueError(f"installment days must be strictly increasing, got {days}")


class Installment(BaseModel):
    """One scheduled amount of an issued invoice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    due_date: date
    amount: Money


# ---------------------------------------------------------------------- line items

MAX_QUANTITY = Decimal(10) ** 9
QUANTITY_PLACES = 6


class TaxRate(BaseModel):
    """A tax applied to a line's net amount, e.g. ``TaxRate(code="VAT20", percent="20")``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=20, pattern=r"^\S(.*\S)?$")]
    percent: Percent


class LineItem(BaseModel):
    """One invoice line. ``unit_price`` is in minor units of the invoice's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Annotated[str, Field(min_length=1, max_length=500, pattern=r"\S")]
    quantity: Annotated[ExactDecimal, Field(gt=0, le=MAX_QUANTITY)]
    unit_price: Annotated[StrictInt, Field(ge=0)]
    discount_percent: Percent = Decimal(0)
    taxes: Annotated[list[TaxRate], Field(max_length=5)] = Field(default_factory=list)

    @field_validator("quantity")
    @classmethod
    def _quantity_places(cls, value: Decimal) -> Decimal:
        if fractional_places(value) > QUANTITY_PLACES:
            raise ValueError(f"quantity allows at most {QUANTITY_PLACES} decimal places")
        return value

    @field_validator("taxes")
    @classmethod
    def _unique_tax_codes(cls, value: list[TaxRate]) -> list[TaxRate]:
        codes = [tax.code for tax in value]
        if len(set(codes)) != len(codes):
            raise ValueError(f"tax codes on a line must be unique, got {codes}")
        return value


# -------------------------------------------------------------------- event fields


CustomerId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S+$")]
Series = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
DocumentNumber = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
OptionalText = Annotated[str, Field(max_length=2000)] | None
PaymentRejectionCode = Literal["over_application", "not_receivable", "currency_mismatch"]


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
class PaymentApplicationRejected(EventPayload):
    """An allocation the payments service decided that this invoice cannot take, because the
    invoice changed after payments decided (a credit note, void or write-off in between):

    * ``over_application``: ``amount`` exceeds the open amount
    * ``not_receivable``: the invoice takes no payments (void, written off, paid)
    * ``currency_mismatch``: ``amount`` is not in the invoice's currency

    ``amount`` is what the allocation asked for; no invoice amount changes. The payments service
    consumes this and takes the allocation back (``PaymentUnallocated``), so its unapplied cash
    returns."""

    event_type: ClassVar[str] = "PaymentApplicationRejected"
    schema_version: ClassVar[int] = 1

    invoice_id: uuid.UUID
    allocation_id: uuid.UUID
    payment_id: uuid.UUID
    amount: Money
    code: PaymentRejectionCode
    reason: Text
    rejected_on: date


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
