"""The replay decoder: msgspec types built from the pydantic contracts, for every event type,
giving the same values pydantic gives, and handing back (None) whatever it cannot vouch for."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel

from shared.contracts import credit, dunning, payments, portal  # noqa: F401  (their types)
from shared.contracts import invoice as inv
from shared.events.envelope import EventEnvelope
from shared.events.registry import registry
from shared.events.replay import ReplayDecoder, Unconvertible, struct_of
from shared.money import Money
from shared.tests.test_events import envelope, make_registry


def same(model: Any, struct: Any) -> bool:
    """The pydantic value and the msgspec value hold equal fields, nested models included."""
    if isinstance(model, BaseModel):
        return type(struct).__name__ == f"{type(model).__name__}Struct" and all(
            same(getattr(model, name), getattr(struct, name)) for name in type(model).model_fields
        )
    if isinstance(model, list):
        return len(model) == len(struct) and all(map(same, model, struct))
    return bool(model == struct and type(model) is type(struct))


def issued(**overrides: Any) -> inv.InvoiceIssued:
    fields: dict[str, Any] = {
        "invoice_id": uuid.uuid4(),
        "customer_id": "c-1",
        "currency": "EUR",
        "number": "INV-2026-000042",
        "issue_date": date(2026, 11, 1),
        "due_date": date(2026, 12, 1),
        "total": Money.of_minor(12_000, "EUR"),
        "subtotal": Money.of_minor(10_000, "EUR"),
        "tax_total": Money.of_minor(2_000, "EUR"),
        "installments": [
            inv.Installment(due_date=date(2026, 11, 15), amount=Money.of_minor(6_000, "EUR")),
            inv.Installment(due_date=date(2026, 12, 1), amount=Money.of_minor(6_000, "EUR")),
        ],
        "credit_check": inv.CreditCheckRecord(outcome="passed", check_id="chk-1"),
    }
    fields.update(overrides)
    return inv.InvoiceIssued(**fields)


def recorded(payload: dict[str, Any], event_type: str = "InvoiceIssued", **fields: Any) -> bytes:
    return envelope(event_type=event_type, payload=payload, **fields).to_json_bytes()


def test_every_registered_payload_has_a_struct() -> None:
    """A contract using a type or constraint the decoder cannot translate fails here, not in a
    rebuild."""
    assert len(registry.event_types()) > 40
    for event_type in registry.event_types():
        struct_of(registry.spec(event_type).payload_model)
    ReplayDecoder(frozenset(registry.event_types()))


def test_an_event_decodes_to_the_values_pydantic_gives() -> None:
    pydantic_envelope = envelope(
        event_type="InvoiceIssued", payload=issued().model_dump(mode="json")
    )
    raw = pydantic_envelope.to_json_bytes()
    decoded = ReplayDecoder(frozenset({"InvoiceIssued"})).decode("InvoiceIssued", raw)

    assert decoded is not None
    assert same(registry.decode(pydantic_envelope), decoded.payload)
    assert decoded.payload.installments[1].amount.amount == 6_000
    for name in EventEnvelope.model_fields:
        if name != "payload":
            assert getattr(decoded, name) == getattr(pydantic_envelope, name), name


@pytest.mark.parametrize(
    "change",
    [
        {"invoice_id": "not a uuid"},
        {"issue_date": "1 November"},
        {"total": {"amount": "12000", "currency": "EUR"}},  # pydantic's lax mode would take it
        {"customer_id": "two words"},  # the CustomerId pattern
        {"number": "N" * 65},  # DocumentNumber's max_length
        {"installments": []},  # min_length 1
        {"surprise": True},  # unknown fields are refused
    ],
)
def test_what_the_struct_refuses_is_left_to_pydantic(change: dict[str, Any]) -> None:
    payload = {**issued().model_dump(mode="json"), **change}
    decoder = ReplayDecoder(frozenset({"InvoiceIssued"}))
    assert decoder.decode("InvoiceIssued", recorded(payload)) is None


@pytest.mark.parametrize(
    "change", [{"tenant_id": "Not A Tenant"}, {"stream_version": 0}, {"stream_id": "no_hyphen"}]
)
def test_what_the_envelope_refuses_is_left_to_pydantic(change: dict[str, Any]) -> None:
    fields = envelope(event_type="InvoiceIssued", payload=issued().model_dump(mode="json"))
    raw = msgspec.json.encode({**fields.model_dump(mode="json"), **change})
    assert ReplayDecoder(frozenset({"InvoiceIssued"})).decode("InvoiceIssued", raw) is None


def test_a_naive_time_in_the_envelope_is_left_to_pydantic() -> None:
    good = recorded(issued().model_dump(mode="json"))
    naive = good.replace(
        b'"occurred_at":"2026-11-01T00:00:00Z"', b'"occurred_at":"2026-11-01T00:00:00"'
    )
    assert naive != good
    decoder = ReplayDecoder(frozenset({"InvoiceIssued"}))
    assert decoder.decode("InvoiceIssued", good) is not None
    assert decoder.decode("InvoiceIssued", naive) is None


def test_missing_fields_other_types_versions_and_broken_bytes_are_left_to_pydantic() -> None:
    decoder = ReplayDecoder(frozenset({"InvoiceIssued"}))
    payload = issued().model_dump(mode="json")
    del payload["credit_check"]
    assert decoder.decode("InvoiceIssued", recorded(payload)) is None
    good = issued().model_dump(mode="json")
    assert decoder.decode("InvoiceIssued", recorded(good)) is not None
    assert decoder.decode(None, recorded(good)) is None  # no header: the body tells, pydantic
    assert decoder.decode("InvoiceVoided", recorded(good)) is None  # a type it was not built for
    # the header and the body disagree
    assert decoder.decode("InvoiceIssued", recorded(good, event_type="InvoicePaid")) is None
    assert decoder.decode("InvoiceIssued", b"not json") is None
    assert decoder.decode("InvoiceIssued", recorded(good)[:-5]) is None


def test_a_stored_older_version_goes_through_the_upcasters() -> None:
    events, _ = make_registry()
    decoder = ReplayDecoder(frozenset({"InvoiceIssuedTest"}), events)
    current = {"total": {"amount": 5, "currency": "EUR"}, "due_days": 1, "channel": "post"}
    raw = recorded(current, "InvoiceIssuedTest", schema_version=3)
    decoded = decoder.decode("InvoiceIssuedTest", raw)
    assert decoded is not None and decoded.payload.channel == "post"
    # v2 lacks `channel`; even a v2 payload that fits the v3 shape is not the current model's
    v2 = recorded({**current}, "InvoiceIssuedTest", schema_version=2)
    assert decoder.decode("InvoiceIssuedTest", v2) is None


def test_a_model_the_decoder_cannot_translate_is_said_at_build_time() -> None:
    class Odd(BaseModel):
        when: complex

    with pytest.raises(Unconvertible):
        struct_of(Odd)


def test_defaults_and_optional_fields_follow_the_model() -> None:
    struct = struct_of(inv.CreditNoteIssued)
    minimal = {
        "invoice_id": str(uuid.uuid4()),
        "credit_note_id": str(uuid.uuid4()),
        "amount": {"amount": 100, "currency": "EUR"},
        "reason": "returned goods",
        "issued_on": "2026-11-02",
    }
    value = msgspec.json.decode(msgspec.json.encode(minimal), type=struct)
    assert value.number is None and value.dispute_id is None
    assert value.amount.currency == "EUR"
    with pytest.raises(msgspec.ValidationError):  # Text needs a non-blank character
        msgspec.json.decode(msgspec.json.encode({**minimal, "reason": "  "}), type=struct)
