"""The gateway webhook's pure part: signatures, payload parsing, translation, card masking."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import uuid
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.cards import has_card_number, mask_card_numbers
from services.payments.domain.webhook import (
    MAX_CHECKOUT_INVOICES,
    MAX_HEADER_LENGTH,
    GatewayChargeback,
    GatewayPayment,
    GatewayRefund,
    Ignored,
    SignatureError,
    WebhookEvent,
    interpret,
    parse_event,
    sign,
    verify_signature,
)
from shared.errors import Unauthenticated, ValidationFailed
from shared.money import Money

NOW = 1_700_000_000
SECRET = "whsec_current"
OLD_SECRET = "whsec_previous"
BODY = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
HEX = "ab" * 32
MASKED_4242 = "\u2022\u2022\u2022\u2022 4242"


def _hex(header: str) -> str:
    return header.split("v1=", 1)[1]


def _verify(header: str | None, body: bytes = BODY, secrets: tuple[str, ...] = (SECRET,)) -> None:
    verify_signature(header, body, secrets, now=NOW)


# ------------------------------------------------------------------------------- signatures


def test_a_signature_made_with_the_secret_is_accepted() -> None:
    _verify(sign(SECRET, BODY, NOW))


def test_sign_returns_the_whole_header_value() -> None:
    header = sign(SECRET, BODY, NOW)
    assert re.fullmatch(rf"t={NOW},v1=[0-9a-f]{{64}}", header)


@pytest.mark.parametrize("signing_secret", [OLD_SECRET, SECRET])
def test_during_rotation_old_and_new_secrets_are_both_accepted(signing_secret: str) -> None:
    _verify(sign(signing_secret, BODY, NOW), secrets=(OLD_SECRET, SECRET))


def test_with_only_the_old_secret_configured_the_new_one_is_rejected() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(sign(SECRET, BODY, NOW), secrets=(OLD_SECRET,))


def test_a_tampered_body_is_rejected() -> None:
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(header, body=BODY.replace(b"evt_1", b"evt_2"))


def test_a_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(sign("whsec_attacker", BODY, NOW))


def test_the_timestamp_is_part_of_what_is_signed() -> None:
    forged = f"t={NOW + 1},v1={_hex(sign(SECRET, BODY, NOW))}"
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(forged)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_up_to_the_tolerance_either_way_are_accepted(offset: int) -> None:
    _verify(sign(SECRET, BODY, NOW + offset))


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_and_future_timestamps_beyond_the_tolerance_are_rejected(offset: int) -> None:
    with pytest.raises(SignatureError, match="outside the tolerance window") as info:
        _verify(sign(SECRET, BODY, NOW + offset))
    assert info.value.details["tolerance_seconds"] == 300


def test_the_tolerance_is_configurable() -> None:
    header = sign(SECRET, BODY, NOW - 10)
    verify_signature(header, BODY, [SECRET], now=NOW, tolerance_seconds=10)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(header, BODY, [SECRET], now=NOW, tolerance_seconds=9)
    with pytest.raises(ValueError, match="tolerance_seconds"):
        verify_signature(header, BODY, [SECRET], now=NOW, tolerance_seconds=-1)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        (f"v1={HEX}", "no timestamp"),
        (f"t=abc,v1={HEX}", "not unix seconds"),
        (f"t={NOW}.5,v1={HEX}", "not unix seconds"),
        (f"t=-{NOW},v1={HEX}", "not unix seconds"),
        (f"t=+{NOW},v1={HEX}", "not unix seconds"),
        (f"t=1_700_000_000,v1={HEX}", "not unix seconds"),
        (f"t=,v1={HEX}", "not unix seconds"),
        (f"t=\u0661\u0667\u0660\u0660,v1={HEX}", "not ASCII"),
        (f"t={NOW},t={NOW},v1={HEX}", "more than one timestamp"),
        (f"t={NOW}", "no v1"),
        (f"t={NOW},v0={HEX}", "no v1"),
        (f"t={NOW},v1=", "not a 64-digit hex"),
        (f"t={NOW},v1=xyz", "not a 64-digit hex"),
        (f"t={NOW},v1={HEX}0", "not a 64-digit hex"),
        (f"t={NOW},v1={HEX},", "key=value"),
        (f"t={NOW};v1={HEX}", "not unix seconds"),
        ("garbage", "key=value"),
        (f"=x,t={NOW},v1={HEX}", "key=value"),
        (f"t={NOW},v1={HEX}," + "v0=a," * MAX_HEADER_LENGTH, "longer than"),
        (f"t={NOW}," + ",".join([f"v1={HEX}"] * 9), "more than 8"),
    ],
)
def test_malformed_headers_are_rejected(header: str | None, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        _verify(header)


def test_any_matching_v1_among_several_is_enough_and_other_schemes_are_ignored() -> None:
    good = _hex(sign(SECRET, BODY, NOW))
    _verify(f"t={NOW},v0={HEX},v1={HEX}, v1={good} ,v2=whatever")
    _verify(f"t={NOW}," + ",".join([f"v1={HEX}"] * 7 + [f"v1={good.upper()}"]))


def test_no_configured_secret_refuses_every_request() -> None:
    header = sign(SECRET, BODY, NOW)
    for secrets in ((), ("",), (SECRET, "")):
        with pytest.raises(SignatureError, match="not configured"):
            _verify(header, secrets=secrets)


def test_a_bare_string_is_not_taken_as_a_list_of_one_character_secrets() -> None:
    with pytest.raises(TypeError, match="single string"):
        verify_signature(sign("w", BODY, NOW), BODY, "whsec", now=NOW)


def test_signature_errors_are_401_and_never_reveal_the_expected_signature() -> None:
    expected = _hex(sign(SECRET, BODY, NOW))
    with pytest.raises(SignatureError) as info:
        _verify(f"t={NOW},v1={HEX}")
    error = info.value
    assert isinstance(error, Unauthenticated)
    assert error.status_code == 401
    assert expected not in str(error.body())
    assert SECRET not in str(error.body())


def test_sign_refuses_an_empty_secret_or_a_bad_timestamp() -> None:
    with pytest.raises(ValueError, match="empty secret"):
        sign("", BODY, NOW)
    with pytest.raises(ValueError, match="timestamp"):
        sign(SECRET, BODY, -1)


@given(
    secret=st.text(min_size=1, max_size=64),
    body=st.binary(min_size=1, max_size=512),
    timestamp=st.integers(min_value=0, max_value=10**11),
    data=st.data(),
)
def test_sign_then_verify_round_trips_and_any_flipped_body_byte_fails(
    secret: str, body: bytes, timestamp: int, data: st.DataObject
) -> None:
    header = sign(secret, body, timestamp)
    verify_signature(header, body, [secret], now=timestamp)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="index")
    flip = data.draw(st.integers(min_value=1, max_value=255), label="xor")
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(SignatureError, match="no signature matches"):
        verify_signature(header, tampered, [secret], now=timestamp)


# ------------------------------------------------------------------------------- payloads

CREATED = 1_700_000_000  # 2023-11-14T22:13:20Z


def _event(event_type: str, obj: dict[str, Any], created: int = CREATED) -> bytes:
    envelope = {"id": "evt_123", "type": event_type, "created": created, "livemode": True}
    return json.dumps({**envelope, "data": {"object": obj}}).encode()


def _card_payment(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "pi_123",
        "object": "payment_intent",
        "amount": 12345,
        "currency": "eur",
        "customer": "cus_9",
        "description": "Thank you",
        "metadata": {"customer_id": "C-1", "invoice_number": "INV-2026-000001"},
        "payment_method_details": {
            "type": "card",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        },
    }
    obj.update(changes)
    return obj


def _interpret(event_type: str, obj: dict[str, Any], created: int = CREATED) -> Any:
    return interpret(parse_event(_event(event_type, obj, created)))


def _errors(error: ValidationFailed) -> list[tuple[tuple[Any, ...], str]]:
    return [(tuple(e["loc"]), e["type"]) for e in error.details["errors"]]


def test_a_succeeded_card_payment_intent_is_a_payment_with_brand_and_last4_only() -> None:
    action = _interpret("payment_intent.succeeded", _card_payment())
    assert action == GatewayPayment(
        gateway_ref="pi_123",
        customer_id="C-1",
        amount=Money.of_minor(12345, "EUR"),
        method="card",
        card_brand="visa",
        last4="4242",
        reference="INV-2026-000001 Thank you",
        received_on=date(2023, 11, 14),
    )
    assert "2030" not in repr(action)


def test_the_event_envelope_is_kept() -> None:
    event = parse_event(_event("payment_intent.succeeded", _card_payment()))
    assert isinstance(event, WebhookEvent)
    assert (event.id, event.type, event.created) == ("evt_123", "payment_intent.succeeded", CREATED)


def test_a_succeeded_charge_names_its_payment_intent_so_both_events_dedupe() -> None:
    charge = _card_payment(id="ch_1", object="charge", payment_intent="pi_123")
    from_charge = _interpret("charge.succeeded", charge)
    from_intent = _interpret("payment_intent.succeeded", _card_payment())
    assert from_charge == from_intent
    standalone = _interpret("charge.succeeded", _card_payment(id="ch_2", payment_intent=None))
    assert standalone.gateway_ref == "ch_2"


def test_received_on_is_the_utc_date_of_the_event() -> None:
    action = _interpret("payment_intent.succeeded", _card_payment(), created=1_704_067_199)
    assert action.received_on == date(2023, 12, 31)  # 23:59:59Z, whatever the local zone


@pytest.mark.parametrize("wallet", ["link", "paypal", "apple_pay", "google_pay"])
def test_wallet_method_types_are_wallet_payments(wallet: str) -> None:
    details = {"type": wallet, wallet: {"email": "payer@example.com"}}
    action = _interpret("payment_intent.succeeded", _card_payment(payment_method_details=details))
    assert (action.method, action.wallet_provider) == ("wallet", wallet)
    assert (action.card_brand, action.last4) == (None, None)


def test_a_card_paid_through_a_wallet_is_a_wallet_payment() -> None:
    card = {"brand": "mastercard", "last4": "4444", "wallet": {"type": "apple_pay"}}
    details = {"type": "card", "card": card}
    action = _interpret("payment_intent.succeeded", _card_payment(payment_method_details=details))
    assert (action.method, action.wallet_provider) == ("wallet", "apple_pay")
    assert (action.card_brand, action.last4) == ("mastercard", "4444")


@pytest.mark.parametrize("debit", ["sepa_debit", "us_bank_account", "bacs_debit", "acss_debit"])
def test_bank_debits_are_direct_debits_with_the_account_last4(debit: str) -> None:
    account = {"last4": "3000", "mandate": "mandate_1", "bank_code": "37040044"}
    details = {"type": debit, debit: account}
    action = _interpret("payment_intent.succeeded", _card_payment(payment_method_details=details))
    assert (action.method, action.last4, action.mandate_id) == ("direct_debit", "3000", "mandate_1")
    assert action.card_brand is None


def test_a_direct_debit_without_account_details_still_counts() -> None:
    details = {"type": "sepa_debit"}
    action = _interpret("payment_intent.succeeded", _card_payment(payment_method_details=details))
    assert (action.method, action.last4) == ("direct_debit", None)


@pytest.mark.parametrize(
    ("currency", "amount", "printed"),
    [("jpy", 5000, "5000 JPY"), ("kwd", 12345, "12.345 KWD"), ("eur", 1, "0.01 EUR")],
)
def test_amounts_stay_integer_minor_units_whatever_the_exponent(
    currency: str, amount: int, printed: str
) -> None:
    action = _interpret("payment_intent.succeeded", _card_payment(amount=amount, currency=currency))
    assert action.amount == Money.of_minor(amount, currency.upper())
    assert str(action.amount) == printed


@pytest.mark.parametrize("currency", ["xyz", "eu", "€"])
def test_an_unknown_currency_is_a_validation_error(currency: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        _interpret("payment_intent.succeeded", _card_payment(currency=currency))
    assert info.value.details["field"] == "data.object.currency"


@pytest.mark.parametrize("amount", [123.0, "123", True, 0, -5, 10**16])
def test_amounts_must_be_positive_json_integers(amount: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_event(_event("payment_intent.succeeded", _card_payment(amount=amount)))
    assert [loc for loc, _ in _errors(info.value)] == [("data", "object", "amount")]


@pytest.mark.parametrize(
    "metadata",
    [{}, {"invoice_number": "INV-1"}, {"customer_id": None}, {"customer_id": "  "}],
)
def test_a_payment_without_our_customer_id_is_refused(metadata: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed, match="customer_id is required") as info:
        _interpret("payment_intent.succeeded", _card_payment(metadata=metadata))
    assert info.value.details == {"field": "data.object.metadata.customer_id"}


def test_a_payment_without_metadata_is_refused() -> None:
    obj = _card_payment()
    del obj["metadata"]
    with pytest.raises(ValidationFailed, match="customer_id is required"):
        _interpret("payment_intent.succeeded", obj)


def test_a_customer_id_is_refused_not_masked_when_it_looks_like_a_card_number() -> None:
    for customer_id, message in [
        ("4242424242424242", "looks like a card number"),
        ("C 1", "without whitespace"),
    ]:
        metadata = {"customer_id": customer_id}
        with pytest.raises(ValidationFailed, match=message):
            _interpret("payment_intent.succeeded", _card_payment(metadata=metadata))


def test_the_reference_masks_card_numbers_in_invoice_number_and_description() -> None:
    obj = _card_payment(
        description="paid with 4242-4242-4242-4242",
        metadata={"customer_id": "C-1", "invoice_number": "INV-7 / 5555555555554444"},
    )
    action = _interpret("payment_intent.succeeded", obj)
    assert action.reference == f"INV-7 / \u2022\u2022\u2022\u2022 4444 paid with {MASKED_4242}"


@pytest.mark.parametrize(
    ("description", "invoice_number", "reference"),
    [(None, None, ""), ("  ", None, ""), (None, "INV-9", "INV-9"), ("Rent", None, "Rent")],
)
def test_the_reference_joins_what_is_present(
    description: str | None, invoice_number: str | None, reference: str
) -> None:
    metadata = {"customer_id": "C-1", "invoice_number": invoice_number}
    obj = _card_payment(description=description, metadata=metadata)
    assert _interpret("payment_intent.succeeded", obj).reference == reference


# ------------------------------------------------------------------ our checkout's metadata

INV_A = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
INV_B = "6ec0bd7f-11c0-43da-975e-2a8ad9ebae0b"


def _checkout_payment(**metadata: Any) -> Any:
    obj = _card_payment(metadata={"customer_id": "C-1", **metadata}, description=None)
    return _interpret("payment_intent.succeeded", obj)


def test_a_payment_without_checkout_metadata_names_no_invoices() -> None:
    action = _interpret("payment_intent.succeeded", _card_payment())
    assert (action.invoice_ids, action.checkout_id) == ((), None)


def test_invoice_ids_are_kept_in_the_given_order_without_duplicates() -> None:
    action = _checkout_payment(invoice_ids=f"{INV_B}, {INV_A.upper()},{INV_B}")
    assert action.invoice_ids == (uuid.UUID(INV_B), uuid.UUID(INV_A))


@pytest.mark.parametrize(
    "invoice_ids", ["", " , ", "not-a-uuid", "INV-2026-000001", "1b9d6bcd", ",,,"]
)
def test_entries_that_are_not_uuids_are_dropped_not_refused(invoice_ids: str) -> None:
    action = _checkout_payment(invoice_ids=f"{invoice_ids},{INV_A}")
    assert action.invoice_ids == (uuid.UUID(INV_A),)
    assert _checkout_payment(invoice_ids=invoice_ids).invoice_ids == ()


def test_at_most_max_checkout_invoices_are_taken_and_huge_lists_are_not_refused() -> None:
    many = [str(uuid.UUID(int=n + 1)) for n in range(MAX_CHECKOUT_INVOICES + 50)]
    action = _checkout_payment(invoice_ids=",".join(many))
    assert len(action.invoice_ids) == MAX_CHECKOUT_INVOICES
    assert action.invoice_ids[0] == uuid.UUID(many[0])
    assert _checkout_payment(invoice_ids="x" * 100_000).invoice_ids == ()


def test_the_checkout_id_is_kept_and_ends_the_reference() -> None:
    action = _checkout_payment(
        invoice_number="INV-1 INV-2", checkout_id="7d0f3c2a-3b1e-4c55-9f0e-1d2c3b4a5f60"
    )
    assert action.checkout_id == "7d0f3c2a-3b1e-4c55-9f0e-1d2c3b4a5f60"
    assert action.reference == "INV-1 INV-2 checkout:7d0f3c2a-3b1e-4c55-9f0e-1d2c3b4a5f60"
    alone = _checkout_payment(checkout_id="co_123")
    assert alone.reference == "checkout:co_123"


def test_a_uuid_checkout_id_whose_digits_pass_luhn_is_kept_unmasked() -> None:
    # 12345678-1234-5670 is 16 Luhn-valid digits in dash-separated groups: alone it is a card;
    # inside a canonical UUID it is our id, so it stays as it is (about 1 UUID in 350).
    checkout = "12345678-1234-5670-abcd-ef0123456789"
    assert has_card_number("12345678-1234-5670") and not has_card_number(checkout)
    action = _checkout_payment(checkout_id=checkout)
    assert action.checkout_id == checkout and action.reference == f"checkout:{checkout}"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("12345678-1234-5670-abcd-ef0123456789", "12345678-1234-5670-abcd-ef0123456789"),
        (
            "4242 4242 4242 4242 checkout:12345678-1234-5670-abcd-ef0123456789",
            f"{MASKED_4242} checkout:12345678-1234-5670-abcd-ef0123456789",
        ),
        # Not a canonical UUID (a group too long): its digits are a card's.
        (
            "12345678-1234-5670-abcd-ef01234567890",
            "\u2022\u2022\u2022\u2022 5670-abcd-ef01234567890",
        ),
    ],
)
def test_canonical_uuids_are_never_card_numbers(text: str, masked: str) -> None:
    assert mask_card_numbers(text) == masked


@pytest.mark.parametrize(
    "checkout_id", ["", "has space", "x" * 101, "a/b", "4242424242424242", "4242-4242-4242-4242"]
)
def test_an_unusable_checkout_id_is_dropped_not_refused(checkout_id: str) -> None:
    action = _checkout_payment(checkout_id=checkout_id, invoice_number="INV-1")
    assert action.checkout_id is None and action.reference == "INV-1"
    assert "4242424242424242" not in repr(action)


@pytest.mark.parametrize("field", ["invoice_ids", "checkout_id"])
def test_checkout_metadata_must_be_strings_like_all_gateway_metadata(field: str) -> None:
    with pytest.raises(ValidationFailed):
        _checkout_payment(**{field: 12})


@pytest.mark.parametrize("last4", ["424", "42424", "abcd", "4242424242424242", 4242])
def test_last4_must_be_exactly_four_digits(last4: object) -> None:
    details = {"type": "card", "card": {"brand": "visa", "last4": last4}}
    with pytest.raises(ValidationFailed) as info:
        parse_event(_event("charge.succeeded", _card_payment(payment_method_details=details)))
    loc = ("data", "object", "payment_method_details", "card", "last4")
    assert [loc_ for loc_, _ in _errors(info.value)] == [loc]
    assert "4242424242424242" not in json.dumps(info.value.body())  # input is never echoed


def test_a_card_payment_needs_the_card_details() -> None:
    with pytest.raises(ValidationFailed, match=r"needs payment_method_details\.card"):
        _interpret(
            "payment_intent.succeeded", _card_payment(payment_method_details={"type": "card"})
        )


def test_an_unsupported_payment_method_is_a_clear_error() -> None:
    details = {"type": "klarna", "klarna": {}}
    with pytest.raises(ValidationFailed, match="unsupported payment method type 'klarna'") as info:
        _interpret("payment_intent.succeeded", _card_payment(payment_method_details=details))
    assert "sepa_debit" in info.value.details["allowed"]


def _charge(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_123",
        "amount": 12345,
        "amount_refunded": 2000,
        "currency": "eur",
        "refunded": False,
    }
    obj.update(changes)
    return obj


def test_a_refunded_charge_reports_the_cumulative_refunded_total() -> None:
    action = _interpret("charge.refunded", _charge())
    assert action == GatewayRefund(
        gateway_ref="pi_123",
        refunded_total=Money.of_minor(2000, "EUR"),
        refunded_on=date(2023, 11, 14),
    )
    later = _interpret("charge.refunded", _charge(amount_refunded=12345), created=CREATED + 86_400)
    assert later.refunded_total == Money.of_minor(12345, "EUR")  # the total, not the second part


def test_a_refunded_charge_without_an_intent_is_named_by_its_own_id() -> None:
    obj = _charge(payment_intent=None, currency="jpy", amount_refunded=500)
    action = _interpret("charge.refunded", obj)
    assert (action.gateway_ref, action.refunded_total) == ("ch_1", Money.of_minor(500, "JPY"))


def _dispute(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_1",
        "payment_intent": "pi_123",
        "amount": 12345,
        "currency": "kwd",
        "reason": "fraudulent",
        "status": "needs_response",
    }
    obj.update(changes)
    return obj


def test_a_created_dispute_is_a_chargeback() -> None:
    action = _interpret("charge.dispute.created", _dispute())
    assert action == GatewayChargeback(
        gateway_ref="pi_123",
        amount=Money.of_minor(12345, "KWD"),
        reason="fraudulent",
        reversed_on=date(2023, 11, 14),
    )


def test_a_dispute_without_an_intent_is_named_by_its_charge() -> None:
    action = _interpret("charge.dispute.created", _dispute(payment_intent=None))
    assert isinstance(action, GatewayChargeback)
    assert action.gateway_ref == "ch_1"


def test_a_dispute_must_name_the_payment() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_event(_event("charge.dispute.created", _dispute(payment_intent=None, charge=None)))
    assert _errors(info.value) == [(("data", "object"), "value_error")]


@pytest.mark.parametrize(
    "event_type", ["customer.created", "invoice.paid", "charge.dispute.closed", "refund.failed"]
)
def test_other_event_types_are_ignored_whatever_their_object(event_type: str) -> None:
    action = _interpret(event_type, {"id": 1, "anything": ["goes"]})
    assert action == Ignored(event_type)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (b"{not json", [((), "json_invalid")]),
        (b"\xff\xfe", [((), "json_invalid")]),
        (b"[]", [((), "model_type")]),
        (
            b"{}",
            [
                (("id",), "missing"),
                (("type",), "missing"),
                (("created",), "missing"),
                (("data",), "missing"),
            ],
        ),
        (
            _event("x", {}).replace(b'"evt_123"', b'""'),
            [(("id",), "string_too_short")],
        ),
        (
            _event("x", {}).replace(b'"evt_123"', b'"' + b"e" * 256 + b'"'),
            [(("id",), "string_too_long")],
        ),
        (_event("x", {}).replace(b"1700000000", b'"1700000000"'), [(("created",), "int_type")]),
        (_event("x", {}).replace(b"1700000000", b"1700000000.0"), [(("created",), "int_type")]),
        (_event("x", {}).replace(b"1700000000", b"-1"), [(("created",), "greater_than_equal")]),
        (b'{"id": "e", "type": "x", "created": 1, "data": {}}', [(("data", "object"), "missing")]),
    ],
)
def test_malformed_payloads_are_422_with_details(
    body: bytes, errors: list[tuple[tuple[Any, ...], str]]
) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_event(body)
    assert info.value.status_code == 422
    assert _errors(info.value) == errors


def test_a_known_type_with_a_wrong_object_fails_at_parse_with_the_full_location() -> None:
    obj = _card_payment()
    del obj["payment_method_details"]
    obj["currency"] = 978
    with pytest.raises(ValidationFailed) as info:
        parse_event(_event("payment_intent.succeeded", obj))
    assert _errors(info.value) == [
        (("data", "object", "currency"), "string_type"),
        (("data", "object", "payment_method_details"), "missing"),
    ]


def test_interpret_also_validates_an_event_built_without_parse_event() -> None:
    event = WebhookEvent.model_validate(
        {"id": "e", "type": "charge.refunded", "created": 1, "data": {"object": {"id": "ch_1"}}}
    )
    with pytest.raises(ValidationFailed, match="not valid"):
        interpret(event)


def test_actions_are_immutable() -> None:
    action = _interpret("charge.refunded", _charge())
    assert isinstance(action, GatewayRefund)
    with pytest.raises(dataclasses.FrozenInstanceError):
        action.gateway_ref = "other"  # type: ignore[misc]


def test_parsing_does_not_change_the_input_object() -> None:
    obj = _card_payment()
    before = copy.deepcopy(obj)
    _interpret("payment_intent.succeeded", obj)
    assert obj == before


# ------------------------------------------------------------------------------- masking


def _luhn_complete(payload: str) -> str:
    """``payload`` plus the check digit that makes it Luhn-valid."""
    total = 0
    for position, ch in enumerate(reversed(payload)):
        digit = int(ch) * 2 if position % 2 == 0 else int(ch)
        total += digit - 9 if digit > 9 else digit
    return payload + str((10 - total % 10) % 10)


NINETEEN = _luhn_complete("622943123456789012")  # 19 digits


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4242424242424242", MASKED_4242),
        ("4242 4242 4242 4242", MASKED_4242),
        ("4242-4242-4242-4242", MASKED_4242),
        ("card 4242\u00a04242\u00a04242\u00a04242.", f"card {MASKED_4242}."),
        ("amex 3782 822463 10005 ok", "amex \u2022\u2022\u2022\u2022 0005 ok"),
        ("4222222222222", "\u2022\u2022\u2022\u2022 2222"),  # 13 digits
        (NINETEEN, f"\u2022\u2022\u2022\u2022 {NINETEEN[-4:]}"),
        ("pan:4242424242424242;", f"pan:{MASKED_4242};"),
        ("Order 12345 4242 4242 4242 4242", f"Order 12345 {MASKED_4242}"),
        (
            "4242424242424242 and 5555-5555-5555-4444",
            f"{MASKED_4242} and \u2022\u2022\u2022\u2022 4444",
        ),
        ("\uff14\uff12\uff14\uff12" * 4, MASKED_4242),  # full-width digits
    ],
)
def test_card_numbers_are_masked_to_their_last_four(text: str, masked: str) -> None:
    assert mask_card_numbers(text) == masked
    assert mask_card_numbers(masked) == masked


@pytest.mark.parametrize(
    "text",
    [
        "",
        "INV-2026-000001",
        "order 1234567890123",  # 13 digits, fails Luhn
        "4242424242424241",  # one digit off a card number
        "424242424242",  # Luhn-valid but only 12 digits
        _luhn_complete("1234567890123456789"),  # Luhn-valid but 20 digits
        "ref 12345678901234567890123456",  # long bank reference without separators
        "call +49 30 1234567 on 2026-01-15",
    ],
)
def test_other_digit_runs_are_left_alone(text: str) -> None:
    assert mask_card_numbers(text) == text


@given(
    payload=st.text(alphabet="0123456789", min_size=12, max_size=18),
    separators=st.lists(st.sampled_from(["", " ", "-"]), min_size=18, max_size=18),
    prefix=st.text(alphabet="abc ,.:", max_size=5),
    suffix=st.text(alphabet="abc ,.:", max_size=5),
)
def test_any_luhn_valid_13_to_19_digit_number_is_masked(
    payload: str, separators: list[str], prefix: str, suffix: str
) -> None:
    pan = _luhn_complete(payload)
    written = "".join(d + s for d, s in zip(pan[:-1], separators, strict=False)) + pan[-1]
    masked = mask_card_numbers(prefix + written + suffix)
    assert pan not in re.sub(r"\D", "", masked)
    assert masked.endswith(pan[-4:] + suffix)
