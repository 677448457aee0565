"""The credit service's published events (stream ``credit_account-<customer>``, one per customer).

Other services consume these payloads from here, never from ``services.credit``. Each payload
registers itself on the process-wide registry on import. Every event carries the ``customer_id``
(the Kafka key). Money is ``Money`` (integer minor units, never a float), dates are ``date``,
instants are timezone-aware ``datetime``, so ``model_validate(model_dump(mode="json"))`` gives
back an equal payload.

Names are prefixed ``Credit`` wherever they could clash with another service's vocabulary: the
registry is process-wide and event types are unique across the whole project.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from shared.contracts.fields import Days, ExactDecimal, Text
from shared.contracts.invoice import TermsKind
from shared.events.registry import EventPayload, registry
from shared.money import Money

__all__ = [
    "CREDIT_CHECK_REASON_CODES",
    "CreditCheckFailed",
    "CreditCheckPassed",
    "CreditCheckReason",
    "CreditCheckReasonCode",
    "CreditDocument",
    "CreditHoldKind",
    "CreditHoldPlaced",
    "CreditHoldReleased",
    "CreditLimitChangeRejected",
    "CreditLimitChangeRequested",
    "CreditLimitChanged",
    "CreditPolicyUpdated",
    "CreditReservationReleaseReason",
    "CreditReservationReleased",
    "RiskBand",
    "RiskFactorRecord",
    "RiskScoreChanged",
]

CustomerId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S+$")]
Actor = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
"""Who did it: a user id, a client id or ``system:<component>``."""
Reference = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
"""What a credit check is for, e.g. ``invoice-<uuid>``; one live reservation per reference."""
RuleName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.:-]*$")]
"""The name of an automatic hold rule, e.g. ``overdue_days`` or ``bounced_payment``."""
ShortText = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]

CreditCheckReasonCode = Literal[
    "on_hold",
    "no_limit",
    "currency_mismatch",
    "overdue",
    "terms_not_allowed",
    "no_exchange_rate",
    "over_limit",
]
CREDIT_CHECK_REASON_CODES: tuple[str, ...] = get_args(CreditCheckReasonCode)
"""In the order a failed check lists them."""

CreditHoldKind = Literal["manual", "automatic"]
CreditReservationReleaseReason = Literal["invoiced", "expired", "cancelled"]


def _same_currency(what: str, *amounts: Money | None) -> None:
    currencies = {m.currency for m in amounts if m is not None}
    if len(currencies) > 1:
        raise ValueError(f"{what} must all be in one currency, got {sorted(currencies)}")


def _not_negative(value: Money | None, what: str) -> None:
    if value is not None and value.is_negative():
        raise ValueError(f"{what} cannot be negative, got {value}")


def _positive(value: Money, what: str) -> None:
    if not value.is_positive():
        raise ValueError(f"{what} must be greater than zero, got {value}")


# ------------------------------------------------------------------------------ limits


@registry.payload
class CreditLimitChanged(EventPayload):
    """The customer's credit limit is now ``limit``. The first limit fixes the account's currency.

    A change that needed a second person records the request it settles and who approved it
    (``request_id`` and ``approved_by`` go together); ``changed_by`` is whoever asked for it.
    ``review_date``, when given, is when the limit is due for review.
    """

    event_type: ClassVar[str] = "CreditLimitChanged"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    limit: Money
    previous_limit: Money | None
    reason: Text
    changed_by: Actor
    approved_by: Actor | None = None
    request_id: uuid.UUID | None = None
    review_date: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CreditLimitChanged:
        _not_negative(self.limit, "a credit limit")
        _not_negative(self.previous_limit, "a credit limit")
        _same_currency("limit and previous_limit", self.limit, self.previous_limit)
        if (self.approved_by is None) != (self.request_id is None):
            raise ValueError("approved_by and request_id go together (an approved request)")
        if self.approved_by is not None and self.approved_by == self.changed_by:
            raise ValueError("maker-checker: approved_by must differ from changed_by")
        return self


@registry.payload
class CreditLimitChangeRequested(EventPayload):
    """Maker-checker: a limit increase above the approval threshold waits for a second person."""

    event_type: ClassVar[str] = "CreditLimitChangeRequested"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    request_id: uuid.UUID
    limit: Money
    previous_limit: Money | None
    reason: Text
    requested_by: Actor
    review_date: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CreditLimitChangeRequested:
        _not_negative(self.limit, "a credit limit")
        _not_negative(self.previous_limit, "a credit limit")
        _same_currency("limit and previous_limit", self.limit, self.previous_limit)
        return self


@registry.payload
class CreditLimitChangeRejected(EventPayload):
    """A pending limit change request was turned down (or withdrawn by its requester)."""

    event_type: ClassVar[str] = "CreditLimitChangeRejected"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    request_id: uuid.UUID
    rejected_by: Actor
    reason: Text


# ------------------------------------------------------------------------------ policy


class CreditDocument(BaseModel):
    """A document on file that supports the credit decision (financial statements, a guarantee)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ShortText
    kind: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
    received_on: date
    reference: Annotated[str, Field(min_length=1, max_length=200)] | None = None


@registry.payload
class CreditPolicyUpdated(EventPayload):
    """The customer's credit policy, replaced as a whole.

    ``max_days_overdue``: a check fails while the oldest open invoice is more days overdue than
    this. ``allowed_terms``: payment-terms kinds (``TermsKind`` values such as ``net`` or
    ``due_on_receipt``) an invoice may be checked with; empty means any.
    """

    event_type: ClassVar[str] = "CreditPolicyUpdated"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    max_days_overdue: Days
    allowed_terms: Annotated[list[TermsKind], Field(max_length=20)] = Field(default_factory=list)
    review_date: date | None = None
    documents: Annotated[list[CreditDocument], Field(max_length=200)] = Field(default_factory=list)
    segment: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")] | None = (
        None
    )

    @field_validator("allowed_terms")
    @classmethod
    def _unique_terms(cls, value: list[TermsKind]) -> list[TermsKind]:
        if len(set(value)) != len(value):
            raise ValueError("allowed_terms must not repeat a kind")
        return value


# ------------------------------------------------------------------------------ checks


class CreditCheckReason(BaseModel):
    """Why a check failed. ``over_limit`` carries the excess in ``amount``; ``overdue`` carries
    the days overdue in ``days``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: CreditCheckReasonCode
    message: Annotated[str, Field(min_length=1, max_length=2000)]
    amount: Money | None = None
    days: Annotated[StrictInt, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _detail_present(self) -> CreditCheckReason:
        if self.code == "over_limit":
            if self.amount is None:
                raise ValueError("an over_limit reason carries the excess in amount")
            _positive(self.amount, "the excess over the limit")
        if self.code == "overdue" and self.days is None:
            raise ValueError("an overdue reason carries the days overdue in days")
        return self


@registry.payload
class CreditCheckPassed(EventPayload):
    """Credit for ``amount`` was granted to ``reference`` and is reserved until
    ``reserved_until`` (or until released, e.g. when the invoice is issued).

    The figures the decision was made on: ``exposure`` (open receivables), ``reserved`` (other
    live reservations before this one) and ``headroom_after = limit - exposure - reserved -
    amount``, never negative.
    """

    event_type: ClassVar[str] = "CreditCheckPassed"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    check_id: uuid.UUID
    reference: Reference
    amount: Money
    reserved_until: AwareDatetime
    limit: Money
    exposure: Money
    reserved: Money
    headroom_after: Money

    @model_validator(mode="after")
    def _consistent(self) -> CreditCheckPassed:
        _same_currency(
            "amount, limit, exposure, reserved and headroom_after",
            self.amount,
            self.limit,
            self.exposure,
            self.reserved,
            self.headroom_after,
        )
        _positive(self.amount, "a checked amount")
        _not_negative(self.limit, "a credit limit")
        _not_negative(self.reserved, "reserved credit")
        _not_negative(self.headroom_after, "headroom after a passed check")
        if self.headroom_after != self.limit - self.exposure - self.reserved - self.amount:
            raise ValueError("headroom_after must equal limit - exposure - reserved - amount")
        return self


@registry.payload
class CreditCheckFailed(EventPayload):
    """Credit for ``amount`` was refused to ``reference``; nothing was reserved.

    ``limit`` is absent when the customer has none; ``exposure`` is what the decision saw.
    """

    event_type: ClassVar[str] = "CreditCheckFailed"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    check_id: uuid.UUID
    reference: Reference
    amount: Money
    reasons: Annotated[list[CreditCheckReason], Field(min_length=1)]
    limit: Money | None = None
    exposure: Money | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CreditCheckFailed:
        _positive(self.amount, "a checked amount")
        _same_currency("limit and exposure", self.limit, self.exposure)
        codes = [r.code for r in self.reasons]
        if len(set(codes)) != len(codes):
            raise ValueError("reasons must not repeat a code")
        return self


@registry.payload
class CreditReservationReleased(EventPayload):
    """A passed check's reservation ended: ``invoiced`` (the amount is now exposure),
    ``expired`` (its time ran out) or ``cancelled`` (the sale did not go ahead)."""

    event_type: ClassVar[str] = "CreditReservationReleased"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    check_id: uuid.UUID
    reference: Reference
    reason: CreditReservationReleaseReason


# ------------------------------------------------------------------------------- holds


@registry.payload
class CreditHoldPlaced(EventPayload):
    """While any hold is active every credit check fails. An ``automatic`` hold names the
    ``rule`` that placed it (and is released when that condition clears); a ``manual`` one has
    no rule."""

    event_type: ClassVar[str] = "CreditHoldPlaced"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    hold_id: uuid.UUID
    kind: CreditHoldKind
    rule: RuleName | None = None
    reason: Text
    placed_by: Actor

    @model_validator(mode="after")
    def _rule_matches_kind(self) -> CreditHoldPlaced:
        if self.kind == "automatic" and self.rule is None:
            raise ValueError("an automatic hold names the rule that placed it")
        if self.kind == "manual" and self.rule is not None:
            raise ValueError("a manual hold has no rule")
        return self


@registry.payload
class CreditHoldReleased(EventPayload):
    event_type: ClassVar[str] = "CreditHoldReleased"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    hold_id: uuid.UUID
    reason: Text
    released_by: Actor


# -------------------------------------------------------------------------------- risk

RiskBand = Literal["low", "medium", "high", "severe"]
"""Score 0-24 ``low``, 25-49 ``medium``, 50-74 ``high``, 75-100 ``severe``."""

RiskScore = Annotated[StrictInt, Field(ge=0, le=100)]
"""0 (safest) to 100 (riskiest)."""


class RiskFactorRecord(BaseModel):
    """One factor of a risk score: what was measured, the points it added and why.

    ``value`` is in the factor's own unit (days for ``average_days_late`` and ``trend``, a share
    between 0 and 1 for ``late_share``, ``disputes`` and ``overdue_exposure``, a count for
    ``reversals`` and ``thin_file``) and is a string in JSON; ``explanation`` says it in plain
    English with the numbers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]
    label: ShortText
    value: ExactDecimal
    points: RiskScore
    explanation: Text


@registry.payload
class RiskScoreChanged(EventPayload):
    """The customer's risk score, band or recommended credit limit changed (or was first set).

    ``score`` is the sum of the factors' points, capped at 100. ``recommended_limit`` is absent
    when the customer invoiced nothing recently; zero means cash in advance. It is advice only:
    the limit itself changes only with ``CreditLimitChanged``.
    """

    event_type: ClassVar[str] = "RiskScoreChanged"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    score: RiskScore
    previous_score: RiskScore | None
    band: RiskBand
    factors: Annotated[list[RiskFactorRecord], Field(min_length=1, max_length=50)]
    recommended_limit: Money | None
    as_of: date

    @model_validator(mode="after")
    def _consistent(self) -> RiskScoreChanged:
        codes = [f.code for f in self.factors]
        if len(set(codes)) != len(codes):
            raise ValueError("factors must not repeat a code")
        if self.score != min(100, sum(f.points for f in self.factors)):
            raise ValueError("score must equal the sum of the factors' points, capped at 100")
        _not_negative(self.recommended_limit, "a recommended limit")
        return self


@registry.payload
class CreditDefaultPolicySet(EventPayload):
    """The tenant-wide default (``segment`` None) or a segment's default credit policy, taken
    by accounts that have no limit of their own when credit is first asked for."""

    event_type: ClassVar[str] = "CreditDefaultPolicySet"
    schema_version: ClassVar[int] = 1

    segment: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")] | None
    limit: Money | None
    max_days_overdue: Days
    allowed_terms: Annotated[list[TermsKind], Field(max_length=20)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_negative_limit(self) -> CreditDefaultPolicySet:
        _not_negative(self.limit, "a default limit")
        return self
