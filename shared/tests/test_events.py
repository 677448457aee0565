"""Envelope validation and the payload registry's upcasting."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events.envelope import EventEnvelope, aggregate_of
from shared.events.registry import EventPayload, EventRegistry, UnknownEventType
from shared.money import Money


def envelope(**overrides: Any) -> EventEnvelope:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "event_type": "ThingHappened",
        "schema_version": 1,
        "stream_id": f"thing-{uuid.uuid4()}",
        "stream_version": 1,
        "occurred_at": datetime(2026, 11, 1, tzinfo=UTC),
        "recorded_at": datetime(2026, 11, 1, tzinfo=UTC),
        "tenant_id": "acme",
        "customer_id": "c-1",
        "actor": "client:erp",
        "payload": {"n": 1},
    }
    fields.update(overrides)
    return EventEnvelope(**fields)


def make_registry() -> tuple[EventRegistry, type[EventPayload]]:
    reg = EventRegistry()

    @reg.payload
    class InvoiceIssuedTest(EventPayload):
        event_type = "InvoiceIssuedTest"
        schema_version = 3

        total: Money
        due_days: int
        channel: str

    @reg.upcaster("InvoiceIssuedTest", 1)
    def v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
        # v1 stored the total as a float-free string of minor units and an implicit EUR
        return {
            "total": {"amount": int(p["total_minor"]), "currency": "EUR"},
            "due_days": p["due_days"],
        }

    @reg.upcaster("InvoiceIssuedTest", 2)
    def v2_to_v3(p: dict[str, Any]) -> dict[str, Any]:
        return {**p, "channel": "email"}

    return reg, InvoiceIssuedTest


def test_envelope_round_trips_through_json() -> None:
    e = envelope()
    assert EventEnvelope.from_json_bytes(e.to_json_bytes()) == e


def test_envelope_rejects_unknown_fields_naive_times_and_bad_tenants() -> None:
    with pytest.raises(ValidationError):
        envelope(extra_field=1)
    with pytest.raises(ValidationError):
        envelope(occurred_at=datetime(2026, 11, 1))
    with pytest.raises(ValidationError):
        envelope(tenant_id="Acme Corp")
    with pytest.raises(ValidationError):
        envelope(stream_id="no-aggregate-prefix ")


def test_partition_key_is_the_customer_or_else_the_stream() -> None:
    assert envelope(customer_id="c-9").partition_key == "c-9"
    e = envelope(customer_id=None)
    assert e.partition_key == e.stream_id


def test_aggregate_is_the_stream_prefix() -> None:
    assert aggregate_of(f"credit_note-{uuid.uuid4()}") == "credit_note"
    assert envelope(stream_id="invoice-123").aggregate == "invoice"


def test_old_versions_are_upcast_step_by_step_on_read() -> None:
    reg, model = make_registry()
    old = envelope(
        event_type="InvoiceIssuedTest",
        schema_version=1,
        payload={"total_minor": "1250", "due_days": 30},
    )
    decoded = reg.decode(old)
    assert isinstance(decoded, model)
    assert decoded.model_dump() == {
        "total": {"amount": 1250, "currency": "EUR"},
        "due_days": 30,
        "channel": "email",
    }
    v2 = envelope(
        event_type="InvoiceIssuedTest",
        schema_version=2,
        payload={"total": {"amount": 5, "currency": "JPY"}, "due_days": 0},
    )
    assert reg.decode(v2).model_dump()["channel"] == "email"


def test_current_version_is_validated_strictly() -> None:
    reg, _ = make_registry()
    bad = envelope(
        event_type="InvoiceIssuedTest",
        schema_version=3,
        payload={
            "total": {"amount": 1, "currency": "EUR"},
            "due_days": 1,
            "channel": "x",
            "surprise": True,
        },
    )
    with pytest.raises(ValidationError):
        reg.decode(bad)


def test_unknown_types_newer_versions_and_missing_upcasters_fail_loudly() -> None:
    reg, model = make_registry()
    with pytest.raises(UnknownEventType):
        reg.decode(envelope(event_type="Nope"))
    with pytest.raises(ValueError, match="newer"):
        reg.upcast("InvoiceIssuedTest", 4, {})
    reg.spec("InvoiceIssuedTest").upcasters.pop(2)
    with pytest.raises(ValueError, match="no upcaster"):
        reg.upcast("InvoiceIssuedTest", 1, {"total_minor": "1", "due_days": 1})
    with pytest.raises(ValueError, match="not older"):
        reg.upcaster("InvoiceIssuedTest", 3)(lambda p: p)
    del model


def test_new_event_takes_type_and_version_from_the_payload_class() -> None:
    reg, model = make_registry()
    payload = model.model_validate(
        {"total": Money.of_minor(100, "KWD"), "due_days": 10, "channel": "post"}
    )
    new = reg.new_event(payload)
    assert (new.event_type, new.schema_version) == ("InvoiceIssuedTest", 3)
    assert new.payload == {
        "total": {"amount": 100, "currency": "KWD"},
        "due_days": 10,
        "channel": "post",
    }


def test_registering_a_second_class_under_one_name_is_refused() -> None:
    reg, _ = make_registry()

    class Clash(EventPayload):
        event_type = "InvoiceIssuedTest"

    with pytest.raises(ValueError, match="already registered"):
        reg.payload(Clash)
