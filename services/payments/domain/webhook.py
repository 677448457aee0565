"""The pure part of the payment-gateway webhook: signature check, payload model, translation.

The gateway follows Stripe's scheme. It signs ``f"{t}.".encode() + raw_body`` with HMAC-SHA256
and sends ``Ledgerline-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``. Several ``v1``
values and several configured secrets exist so that a secret can be rotated without downtime.

Nothing here does I/O or reads a clock: the caller passes ``now`` and the raw body, and gets back
a :data:`GatewayAction` saying what the payments service should do. De-duplication (the gateway
delivers at least once, and sends both ``payment_intent.succeeded`` and ``charge.succeeded`` for
one payment) is the caller's job: key it on the event id *and* on ``gateway_ref``.

Card numbers are never kept: free text that contains one is masked to its last four digits.

Our own checkout (the customer portal) also puts ``invoice_ids`` (comma-separated invoice UUIDs
the customer chose to pay) and ``checkout_id`` into the metadata. Both are hints, never reasons
to refuse an event: a malformed id is dropped, because refusing would lose money that the
gateway has already taken.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from services.payments.domain.cards import has_card_number, mask_card_numbers
from shared.errors import Unauthenticated, ValidationFailed
from shared.money import Money, UnknownCurrency

__all__ = [
    "CHECKOUT_REFERENCE_PREFIX",
    "DEFAULT_TOLERANCE_SECONDS",
    "MAX_CHECKOUT_INVOICES",
    "MAX_HEADER_LENGTH",
    "MAX_SIGNATURES",
    "SIGNATURE_HEADER",
    "EventData",
    "GatewayAction",
    "GatewayChargeback",
    "GatewayPayment",
    "GatewayRefund",
    "Ignored",
    "SignatureError",
    "WebhookEvent",
    "interpret",
    "mask_card_numbers",
    "parse_event",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "Ledgerline-Signature"
DEFAULT_TOLERANCE_SECONDS: Final = 300
MAX_HEADER_LENGTH: Final = 2048
MAX_SIGNATURES: Final = 8

# ------------------------------------------------------------------------------- signature


class SignatureError(Unauthenticated):
    """The webhook request is not provably from the gateway; the message never echoes secrets
    or expected signatures."""


_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,12}")
_HEX_SIGNATURE_RE: Final = re.compile(r"[0-9a-fA-F]{64}")


def _hex_signature(secret: str, body: bytes, timestamp: int) -> str:
    signed_payload = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed_payload, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The full ``Ledgerline-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds).

    Used by tests and by client examples in the docs; the gateway does the same on its side.
    """
    if not secret:
        raise ValueError("an empty secret would make every signature forgeable")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(f"timestamp must be non-negative unix seconds, got {timestamp!r}")
    return f"t={timestamp},v1={_hex_signature(secret, body, timestamp)}"


def _malformed(reason: str) -> SignatureError:
    return SignatureError(
        f"malformed {SIGNATURE_HEADER} header: {reason}", {"header": SIGNATURE_HEADER}
    )


def _parse_header(header: str | None) -> tuple[int, list[str]]:
    """Split the header into its timestamp and ``v1`` signatures; unknown schemes (``v0``) are
    skipped so the gateway can add new ones without breaking us."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header", {"header": SIGNATURE_HEADER})
    if len(header) > MAX_HEADER_LENGTH:
        raise _malformed(f"longer than {MAX_HEADER_LENGTH} characters")
    if not header.isascii():
        raise _malformed("not ASCII")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise _malformed("expected comma-separated key=value pairs")
        if key == "t":
            if timestamp is not None:
                raise _malformed("more than one timestamp t")
            if _TIMESTAMP_RE.fullmatch(value) is None:
                raise _malformed("timestamp t is not unix seconds")
            timestamp = int(value)
        elif key == "v1":
            if _HEX_SIGNATURE_RE.fullmatch(value) is None:
                raise _malformed("v1 is not a 64-digit hex HMAC-SHA256")
            signatures.append(value.lower())
    if timestamp is None:
        raise _malformed("no timestamp t")
    if not signatures:
        raise _malformed("no v1 signature")
    if len(signatures) > MAX_SIGNATURES:
        raise _malformed(f"more than {MAX_SIGNATURES} v1 signatures")
    return timestamp, signatures


def _usable_secrets(secrets: Sequence[str]) -> list[str]:
    """Refuse to verify without a real secret: an empty one would accept anyone's signature."""
    if isinstance(secrets, str):
        # A bare string is a Sequence[str] of one-character "secrets": trivially forgeable.
        raise TypeError("secrets must be a sequence of secrets, not a single string")
    if not secrets or not all(secrets):
        raise SignatureError("webhook signing is not configured", {"header": SIGNATURE_HEADER})
    return list(secrets)


def verify_signature(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Raise :class:`SignatureError` unless ``header`` proves ``body`` came from the gateway.

    Accepted when the timestamp is within ``tolerance_seconds`` of ``now`` either way (replay
    protection; the boundary itself is accepted) and any ``v1`` signature matches any secret
    (rotation: old and new both valid). Every pair is compared in constant time and none is
    skipped, so timing reveals neither which signature nor which secret matched.
    """
    if tolerance_seconds < 0:
        raise ValueError(f"tolerance_seconds must not be negative, got {tolerance_seconds}")
    usable = _usable_secrets(secrets)
    timestamp, signatures = _parse_header(header)
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(
            "signature timestamp is outside the tolerance window",
            {"header": SIGNATURE_HEADER, "tolerance_seconds": tolerance_seconds},
        )
    expected = [_hex_signature(secret, body, timestamp).encode() for secret in usable]
    matched = False
    for candidate in signatures:
        for wanted in expected:
            matched |= hmac.compare_digest(candidate.encode(), wanted)
    if not matched:
        raise SignatureError("no signature matches the payload", {"header": SIGNATURE_HEADER})


# ---------------------------------------------------------------------------- payload models

#: Far above any real payment, and keeps amounts inside a signed 64-bit database column.
MAX_MINOR_UNITS: Final = 10**15
#: 9999-12-31T23:59:59Z: later instants have no ``date``.
_MAX_UNIX_SECONDS: Final = 253_402_300_799

GatewayRef = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S+$")]
Last4 = Annotated[str, Field(pattern=r"^[0-9]{4}$")]
Amount = Annotated[int, Field(ge=0, le=MAX_MINOR_UNITS)]
Currency = Annotated[str, Field(min_length=1, max_length=10)]
#: More invoices than one checkout pays are ignored (they then go through matching).
MAX_CHECKOUT_INVOICES: Final = 200
_MAX_INVOICE_IDS_TEXT: Final = 40 * MAX_CHECKOUT_INVOICES  # a canonical UUID and a comma each
#: How the checkout id is kept at the end of the payment's ``reference`` (searchable, see
#: ``GET /v1/payments?checkout_id=``).
CHECKOUT_REFERENCE_PREFIX: Final = "checkout:"


class _GatewayModel(BaseModel):
    """Strict for the fields we read, silent about the many the gateway adds that we don't."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class EventData(_GatewayModel):
    """``data.object`` stays raw here because its shape depends on the event type; known types
    are validated against their own model by :func:`parse_event` and :func:`interpret`."""

    object: dict[str, JsonValue]


class WebhookEvent(_GatewayModel):
    """The event envelope. ``id`` is the gateway's event id, the key for de-duplication."""

    id: Annotated[str, Field(min_length=1, max_length=255)]
    type: Annotated[str, Field(min_length=1, max_length=255)]
    created: Annotated[int, Field(ge=0, le=_MAX_UNIX_SECONDS)]
    data: EventData


class _Card(_GatewayModel):
    brand: Annotated[str, Field(min_length=1, max_length=30)]
    last4: Last4
    wallet: dict[str, JsonValue] | None = None  # set when paid through Apple Pay, Google Pay...


class _BankAccount(_GatewayModel):
    last4: Last4 | None = None
    mandate: GatewayRef | None = None


class _MethodDetails(_GatewayModel):
    type: Annotated[str, Field(min_length=1, max_length=50)]
    card: _Card | None = None
    sepa_debit: _BankAccount | None = None
    us_bank_account: _BankAccount | None = None
    bacs_debit: _BankAccount | None = None
    acss_debit: _BankAccount | None = None


class _Metadata(_GatewayModel):
    customer_id: Annotated[str, Field(max_length=200)] | None = None
    invoice_number: Annotated[str, Field(max_length=500)] | None = None
    # Set by our checkout. No length limits here on purpose: interpret() checks the content and
    # drops a bad value instead of refusing (and so losing) the whole payment.
    invoice_ids: str | None = None
    checkout_id: str | None = None


class _PaymentObject(_GatewayModel):
    """A payment intent or a charge that succeeded."""

    id: GatewayRef
    payment_intent: GatewayRef | None = None  # charges only: the intent they belong to
    amount: Annotated[int, Field(gt=0, le=MAX_MINOR_UNITS)]
    currency: Currency
    description: Annotated[str, Field(max_length=5000)] | None = None
    metadata: _Metadata = _Metadata()
    payment_method_details: _MethodDetails


class _RefundObject(_GatewayModel):
    """A charge after a (partial) refund; ``amount_refunded`` is the running total."""

    id: GatewayRef
    payment_intent: GatewayRef | None = None
    amount_refunded: Amount
    currency: Currency


class _DisputeObject(_GatewayModel):
    """A dispute: the disputed amount is taken from us when it is opened."""

    id: GatewayRef | None = None
    charge: GatewayRef | None = None
    payment_intent: GatewayRef | None = None
    amount: Annotated[int, Field(gt=0, le=MAX_MINOR_UNITS)]
    currency: Currency
    reason: Annotated[str, Field(min_length=1, max_length=200)]

    @model_validator(mode="after")
    def _names_the_payment(self) -> _DisputeObject:
        if self.payment_intent is None and self.charge is None:
            raise ValueError("a dispute needs payment_intent or charge")
        return self


PAYMENT_EVENTS: Final = frozenset({"payment_intent.succeeded", "charge.succeeded"})
REFUND_EVENT: Final = "charge.refunded"
DISPUTE_EVENT: Final = "charge.dispute.created"

_OBJECT_MODELS: Final[dict[str, type[_GatewayModel]]] = {
    **dict.fromkeys(PAYMENT_EVENTS, _PaymentObject),
    REFUND_EVENT: _RefundObject,
    DISPUTE_EVENT: _DisputeObject,
}

_ObjectT = TypeVar("_ObjectT", bound=_GatewayModel)


def _invalid(exc: ValidationError, prefix: tuple[str, ...] = ()) -> ValidationFailed:
    """422 details in the shape the web layer uses, without ``input``: it may hold card data."""
    errors: list[dict[str, Any]] = [
        {"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    return ValidationFailed("webhook payload is not valid", {"errors": errors})


def _object_as(event: WebhookEvent, model: type[_ObjectT]) -> _ObjectT:
    try:
        return model.model_validate(event.data.object)
    except ValidationError as exc:
        raise _invalid(exc, ("data", "object")) from None


def parse_event(body: bytes) -> WebhookEvent:
    """Parse the raw (already verified) body; raise ``ValidationFailed`` (422) with per-field
    details for invalid JSON, a wrong envelope or a known event type whose object is wrong.

    Unknown event types only need a valid envelope: they are ignored, not rejected.
    """
    try:
        event = WebhookEvent.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    model = _OBJECT_MODELS.get(event.type)
    if model is not None:
        _object_as(event, model)
    return event


# ---------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class GatewayPayment:
    """Money received. ``method`` is a ``PaymentMethod`` value (card, direct_debit, wallet);
    ``last4`` is the card's or the debited account's, never more of either."""

    gateway_ref: str
    customer_id: str
    amount: Money
    method: str
    card_brand: str | None
    last4: str | None
    reference: str
    received_on: date
    wallet_provider: str | None = None  # e.g. "apple_pay", "paypal": required for wallets
    mandate_id: str | None = None  # the direct-debit mandate, when the gateway sends one
    # Our checkout's choice, in the customer's order: allocate exactly to these, not by matching.
    invoice_ids: tuple[uuid.UUID, ...] = ()
    checkout_id: str | None = None  # our checkout's opaque id, also at the end of ``reference``


@dataclass(frozen=True)
class GatewayRefund:
    """The payment's refunds so far. ``refunded_total`` is *cumulative* (Stripe sends the
    running total on every refund), so the service refunds only ``refunded_total`` minus what
    it has already refunded for ``gateway_ref``, and nothing when that is zero or less (a
    replayed or out-of-order event)."""

    gateway_ref: str
    refunded_total: Money
    refunded_on: date


@dataclass(frozen=True)
class GatewayChargeback:
    """A dispute was opened: the gateway has already taken ``amount`` back from us."""

    gateway_ref: str
    amount: Money
    reason: str
    reversed_on: date


@dataclass(frozen=True)
class Ignored:
    """An event type we do not act on; the route still answers 200 so the gateway stops retrying."""

    event_type: str


GatewayAction = GatewayPayment | GatewayRefund | GatewayChargeback | Ignored

_DIRECT_DEBIT_TYPES: Final = frozenset(
    {"sepa_debit", "us_bank_account", "bacs_debit", "acss_debit"}
)
_WALLET_TYPES: Final = frozenset({"link", "paypal", "apple_pay", "google_pay"})
_CUSTOMER_ID_RE: Final = re.compile(r"\S{1,200}")
_CUSTOMER_ID_FIELD: Final = "data.object.metadata.customer_id"


@dataclass(frozen=True)
class _Method:
    method: str
    card_brand: str | None = None
    last4: str | None = None
    wallet_provider: str | None = None
    mandate_id: str | None = None


def _utc_date(unix_seconds: int) -> date:
    return datetime.fromtimestamp(unix_seconds, tz=UTC).date()


def _money(amount: int, currency: str) -> Money:
    """Gateways send lower-case codes ("eur"); the amount is already in minor units."""
    try:
        return Money.of_minor(amount, currency.upper())
    except UnknownCurrency as exc:
        raise ValidationFailed(str(exc), {"field": "data.object.currency"}) from None


def _card_method(card: _Card | None) -> _Method:
    if card is None:
        raise ValidationFailed(
            "a card payment needs payment_method_details.card",
            {"field": "data.object.payment_method_details.card"},
        )
    brand = mask_card_numbers(card.brand)
    if card.wallet is None:
        return _Method("card", card_brand=brand, last4=card.last4)
    provider = card.wallet.get("type")
    return _Method(
        "wallet",
        card_brand=brand,
        last4=card.last4,
        wallet_provider=provider if isinstance(provider, str) else "card_wallet",
    )


def _method(details: _MethodDetails) -> _Method:
    """Map the gateway's payment method to ours, keeping brand and last four only."""
    if details.type == "card":
        return _card_method(details.card)
    if details.type in _DIRECT_DEBIT_TYPES:
        account: _BankAccount = getattr(details, details.type) or _BankAccount()
        return _Method("direct_debit", last4=account.last4, mandate_id=account.mandate)
    if details.type in _WALLET_TYPES:
        return _Method("wallet", wallet_provider=details.type)
    raise ValidationFailed(
        f"unsupported payment method type {details.type!r}",
        {
            "field": "data.object.payment_method_details.type",
            "allowed": sorted({"card", *_DIRECT_DEBIT_TYPES, *_WALLET_TYPES}),
        },
    )


def _customer_id(metadata: _Metadata) -> str:
    """Our customer id, which the checkout must put in the gateway's metadata.

    Refused rather than masked when it looks like a card number: a masked id would silently
    point at no customer (or the wrong one).
    """
    value = metadata.customer_id
    if value is None or not value.strip():
        raise ValidationFailed(
            "metadata.customer_id is required to know whose payment this is",
            {"field": _CUSTOMER_ID_FIELD},
        )
    if _CUSTOMER_ID_RE.fullmatch(value) is None:
        raise ValidationFailed(
            "metadata.customer_id must be 1-200 characters without whitespace",
            {"field": _CUSTOMER_ID_FIELD},
        )
    if has_card_number(value):
        raise ValidationFailed(
            "metadata.customer_id looks like a card number", {"field": _CUSTOMER_ID_FIELD}
        )
    return value


def _invoice_ids(metadata: _Metadata) -> tuple[uuid.UUID, ...]:
    """The invoice UUIDs our checkout listed, in order, without duplicates; entries that are not
    UUIDs are dropped (whether the invoices exist and are the customer's is the service's job)."""
    found: dict[uuid.UUID, None] = {}
    for part in (metadata.invoice_ids or "")[:_MAX_INVOICE_IDS_TEXT].split(","):
        try:
            found.setdefault(uuid.UUID(part.strip()))
        except ValueError:
            continue
        if len(found) == MAX_CHECKOUT_INVOICES:
            break
    return tuple(found)


_CHECKOUT_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _checkout_id(metadata: _Metadata) -> str | None:
    """The checkout id, or None when it is missing or unusable.

    A canonical UUID is kept as it is even when a run of its digits happens to pass the Luhn
    check (it is our id, not card data); any other id that looks like a card number is dropped,
    since masking it would make it name no checkout.
    """
    value = metadata.checkout_id
    if value is None or _CHECKOUT_ID_RE.fullmatch(value) is None:
        return None
    if has_card_number(value):  # never true of a canonical UUID (`cards`)
        return None
    return value


def _reference(payment: _PaymentObject, checkout_id: str | None) -> str:
    """Invoice number first (what auto-matching looks for), then the description, then our
    checkout id (unmasked: :func:`_checkout_id` vetted it) so the portal can find the payment."""
    parts = (payment.metadata.invoice_number, payment.description)
    text = mask_card_numbers(" ".join(part.strip() for part in parts if part and part.strip()))
    if checkout_id is None:
        return text
    return f"{text} {CHECKOUT_REFERENCE_PREFIX}{checkout_id}".lstrip()


def _payment(event: WebhookEvent) -> GatewayPayment:
    payment = _object_as(event, _PaymentObject)
    method = _method(payment.payment_method_details)
    checkout_id = _checkout_id(payment.metadata)
    return GatewayPayment(
        # A charge carries its intent's id: then both success events of one payment, and its
        # later refunds and disputes, all name the same gateway_ref.
        gateway_ref=payment.payment_intent or payment.id,
        customer_id=_customer_id(payment.metadata),
        amount=_money(payment.amount, payment.currency),
        method=method.method,
        card_brand=method.card_brand,
        last4=method.last4,
        reference=_reference(payment, checkout_id),
        received_on=_utc_date(event.created),
        wallet_provider=method.wallet_provider,
        mandate_id=method.mandate_id,
        invoice_ids=_invoice_ids(payment.metadata),
        checkout_id=checkout_id,
    )


def _refund(event: WebhookEvent) -> GatewayRefund:
    charge = _object_as(event, _RefundObject)
    return GatewayRefund(
        gateway_ref=charge.payment_intent or charge.id,
        refunded_total=_money(charge.amount_refunded, charge.currency),
        refunded_on=_utc_date(event.created),
    )


def _chargeback(event: WebhookEvent) -> GatewayChargeback:
    dispute = _object_as(event, _DisputeObject)
    gateway_ref = dispute.payment_intent or dispute.charge
    assert gateway_ref is not None  # guaranteed by _DisputeObject's validator
    return GatewayChargeback(
        gateway_ref=gateway_ref,
        amount=_money(dispute.amount, dispute.currency),
        reason=mask_card_numbers(dispute.reason),
        reversed_on=_utc_date(event.created),
    )


def interpret(event: WebhookEvent) -> GatewayAction:
    """What the payments service should do with ``event``; raises ``ValidationFailed`` (422)
    when a known event lacks what we need (e.g. ``metadata.customer_id``)."""
    if event.type in PAYMENT_EVENTS:
        return _payment(event)
    if event.type == REFUND_EVENT:
        return _refund(event)
    if event.type == DISPUTE_EVENT:
        return _chargeback(event)
    return Ignored(event.type)
