"""The credit service's published payloads: JSON round trips, strict validation, unique names."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

import shared.contracts
from shared.contracts import credit
from shared.contracts.credit import (
    CreditCheckFailed,
    CreditCheckPassed,
    CreditCheckReason,
    CreditDefaultPolicySet,
    CreditDocument,
    CreditHoldPlaced,
    CreditHoldReleased,
    CreditLimitChanged,
    CreditLimitChangeRejected,
    CreditLimitChangeRequested,
    CreditPolicyUpdated,
    CreditReservationReleased,
    RiskFactorRecord,
    RiskScoreChanged,
)
from shared.events.registry import EventPayload, registry
from shared.money import CURRENCY_EXPONENTS, Money

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def eur(value: str) -> Money:
    return Money.from_decimal(value, "EUR")


EXAMPLES: list[EventPayload] = [
    CreditLimitChanged(
        customer_id="c-1",
        limit=eur("6000.00"),
        previous_limit=eur("1000.00"),
        reason="grown",
        changed_by="user:alice",
        approved_by="user:bob",
        request_id=uuid.UUID(int=1),
        review_date=date(2026, 9, 1),
    ),
    CreditLimitChanged(
        customer_id="c-1",
        limit=Money.from_decimal("1000", "JPY"),
        previous_limit=None,
        reason="first",
        changed_by="user:alice",
    ),
    CreditLimitChangeRequested(
        customer_id="c-1",
        request_id=uuid.UUID(int=2),
        limit=Money.from_decimal("1.234", "KWD"),
        previous_limit=None,
        reason="first",
        requested_by="user:alice",
        review_date=date(2026, 9, 1),
    ),
    CreditLimitChangeRejected(
        customer_id="c-1", request_id=uuid.UUID(int=2), rejected_by="user:bob", reason="no"
    ),
    CreditPolicyUpdated(
        customer_id="c-1",
        max_days_overdue=30,
        allowed_terms=["net", "due_on_receipt"],
        review_date=date(2026, 12, 1),
        documents=[
            CreditDocument(
                name="accounts 2025", kind="financial_statement", received_on=date(2026, 1, 5)
            ),
            CreditDocument(
                name="guarantee",
                kind="personal_guarantee",
                received_on=date(2026, 1, 6),
                reference="dms-1",
            ),
        ],
        segment="enterprise",
    ),
    CreditPolicyUpdated(customer_id="c-1", max_days_overdue=0),
    CreditCheckPassed(
        customer_id="c-1",
        check_id=uuid.UUID(int=3),
        reference="invoice-7",
        amount=eur("400.00"),
        reserved_until=datetime(2026, 3, 2, 13, 0, tzinfo=timezone(timedelta(hours=2))),
        limit=eur("1000.00"),
        exposure=eur("300.00"),
        reserved=eur("100.00"),
        headroom_after=eur("200.00"),
    ),
    CreditCheckFailed(
        customer_id="c-1",
        check_id=uuid.UUID(int=4),
        reference="invoice-8",
        amount=eur("400.00"),
        reasons=[
            CreditCheckReason(code="on_hold", message="on hold: fraud review"),
            CreditCheckReason(code="overdue", message="61 days overdue", days=61),
            CreditCheckReason(code="terms_not_allowed", message="terms"),
            CreditCheckReason(code="over_limit", message="over", amount=eur("0.01")),
        ],
        limit=eur("1000.00"),
        exposure=eur("600.01"),
    ),
    CreditCheckFailed(
        customer_id="c-1",
        check_id=uuid.UUID(int=5),
        reference="invoice-9",
        amount=Money.from_decimal("5", "USD"),
        reasons=[
            CreditCheckReason(code="no_limit", message="no limit"),
            CreditCheckReason(code="currency_mismatch", message="USD vs nothing"),
        ],
    ),
    CreditReservationReleased(
        customer_id="c-1", check_id=uuid.UUID(int=3), reference="invoice-7", reason="invoiced"
    ),
    CreditHoldPlaced(
        customer_id="c-1",
        hold_id=uuid.UUID(int=6),
        kind="automatic",
        rule="overdue",
        reason="61 days overdue",
        placed_by="system:credit",
    ),
    CreditHoldPlaced(
        customer_id="c-1",
        hold_id=uuid.UUID(int=7),
        kind="manual",
        reason="fraud review",
        placed_by="user:alice",
    ),
    CreditHoldReleased(
        customer_id="c-1", hold_id=uuid.UUID(int=6), reason="paid", released_by="system:credit"
    ),
    CreditDefaultPolicySet(
        segment="enterprise", limit=eur("90000.00"), max_days_overdue=45, allowed_terms=["net"]
    ),
    RiskScoreChanged(
        customer_id="c-1",
        score=30,
        previous_score=12,
        band="medium",
        factors=[
            RiskFactorRecord(
                code="late_share",
                label="Share paid late",
                value="0.5",
                points=13,
                explanation="1 of 2 invoices (50%) were paid late",
            ),
            RiskFactorRecord(
                code="average_days_late",
                label="Average days late",
                value="17",
                points=17,
                explanation="paid 17 days late on average",
            ),
        ],
        recommended_limit=eur("2000.00"),
        as_of=date(2026, 3, 2),
    ),
]

CREDIT_PAYLOADS = {
    cls
    for _, cls in inspect.getmembers(credit, inspect.isclass)
    if issubclass(cls, EventPayload) and cls is not EventPayload
}


def test_every_credit_payload_has_an_example() -> None:
    assert {type(e) for e in EXAMPLES} == CREDIT_PAYLOADS
    assert len(CREDIT_PAYLOADS) == 11


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda p: p.event_type)
def test_json_round_trip(payload: EventPayload) -> None:
    data = json.loads(json.dumps(payload.model_dump(mode="json")))

    assert type(payload).model_validate(data) == payload


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda p: p.event_type)
def test_round_trip_through_the_registry(payload: EventPayload) -> None:
    new = registry.new_event(payload)

    assert new.event_type == payload.event_type
    assert new.schema_version == 1
    spec = registry.spec(new.event_type)
    assert spec.payload_model.model_validate(json.loads(json.dumps(new.payload))) == payload


@given(
    amount=st.integers(min_value=1, max_value=10**15),
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
    headroom=st.integers(min_value=0, max_value=10**15),
    exposure=st.integers(min_value=-(10**12), max_value=10**15),
    reserved=st.integers(min_value=0, max_value=10**15),
    offset_minutes=st.integers(min_value=-720, max_value=720),
)
def test_json_round_trip_of_any_passed_check(
    amount: int, currency: str, headroom: int, exposure: int, reserved: int, offset_minutes: int
) -> None:
    def m(minor: int) -> Money:
        return Money.of_minor(minor, currency)

    limit = max(0, amount + headroom + exposure + reserved)
    payload = CreditCheckPassed(
        customer_id="c-1",
        check_id=uuid.uuid4(),
        reference="invoice-1",
        amount=m(amount),
        reserved_until=NOW.astimezone(timezone(timedelta(minutes=offset_minutes))),
        limit=m(limit),
        exposure=m(exposure),
        reserved=m(reserved),
        headroom_after=m(limit - exposure - reserved - amount),
    )

    assert CreditCheckPassed.model_validate(payload.model_dump(mode="json")) == payload


# ============================================================================ names


# Named in DESIGN's catalogue without the prefix; unique across the contracts all the same.
UNPREFIXED = {"RiskScoreChanged"}


def test_event_types_are_past_tense_credit_names_registered_once() -> None:
    for cls in CREDIT_PAYLOADS:
        assert cls.event_type == cls.__name__
        assert cls.event_type.startswith("Credit") or cls.event_type in UNPREFIXED
        assert cls.event_type.endswith(("ed", "Released", "Set"))
        assert cls.schema_version == 1
        assert registry.spec(cls.event_type).payload_model is cls


def test_credit_names_do_not_clash_with_any_other_published_contract() -> None:
    """All contracts share one registry (and one OpenAPI namespace for their models): no event
    type and no model name may be defined by two modules."""
    event_owners: dict[str, str] = {}
    model_owners: dict[str, str] = {}
    for module_info in pkgutil.iter_modules(shared.contracts.__path__):
        module = importlib.import_module(f"shared.contracts.{module_info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, BaseModel) or cls.__module__ != module.__name__:
                continue
            owner = model_owners.setdefault(name, module.__name__)
            assert owner == module.__name__, f"model {name} in {owner} and {module.__name__}"
            event_type = cls.__dict__.get("event_type")
            if issubclass(cls, EventPayload) and isinstance(event_type, str):
                owner = event_owners.setdefault(event_type, module.__name__)
                assert owner == module.__name__, f"{event_type} in {owner} and {module.__name__}"
                assert registry.spec(event_type).payload_model is cls
    assert {cls.event_type for cls in CREDIT_PAYLOADS} <= set(event_owners)


# ============================================================================ strictness


def _data(payload: EventPayload) -> dict[str, Any]:
    return payload.model_dump(mode="json")


def _invalid(model: type[EventPayload], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)


def test_money_refuses_floats_and_bools() -> None:
    data = _data(EXAMPLES[0])
    _invalid(CreditLimitChanged, {**data, "limit": {"amount": 1.5, "currency": "EUR"}})
    _invalid(CreditLimitChanged, {**data, "limit": {"amount": 100.0, "currency": "EUR"}})
    _invalid(CreditLimitChanged, {**data, "limit": {"amount": True, "currency": "EUR"}})
    _invalid(CreditLimitChanged, {**data, "limit": 12.5})


def test_payloads_are_frozen_and_refuse_unknown_fields() -> None:
    payload = EXAMPLES[0]
    with pytest.raises(ValidationError):
        payload.customer_id = "other"  # type: ignore[attr-defined]
    _invalid(CreditLimitChanged, {**_data(payload), "surprise": 1})


def test_a_limit_change_is_consistent() -> None:
    data = _data(EXAMPLES[0])
    _invalid(CreditLimitChanged, {**data, "limit": {"amount": -1, "currency": "EUR"}})
    _invalid(CreditLimitChanged, {**data, "previous_limit": {"amount": 1, "currency": "USD"}})
    _invalid(CreditLimitChanged, {**data, "approved_by": None})
    _invalid(CreditLimitChanged, {**data, "request_id": None})
    _invalid(CreditLimitChanged, {**data, "approved_by": "user:alice"})
    _invalid(CreditLimitChanged, {**data, "changed_by": " "})
    _invalid(CreditLimitChanged, {**data, "customer_id": "has space"})


def test_a_policy_is_bounded() -> None:
    data = _data(EXAMPLES[4])
    _invalid(CreditPolicyUpdated, {**data, "max_days_overdue": 3651})
    _invalid(CreditPolicyUpdated, {**data, "max_days_overdue": 30.0})
    _invalid(CreditPolicyUpdated, {**data, "allowed_terms": ["net", "net"]})
    _invalid(CreditPolicyUpdated, {**data, "allowed_terms": ["net30"]})
    _invalid(
        CreditPolicyUpdated,
        {**data, "documents": [{"name": "x", "kind": "y", "received_on": "2026-13-01"}]},
    )


def test_a_passed_check_adds_up() -> None:
    data = _data(EXAMPLES[6])
    _invalid(CreditCheckPassed, {**data, "reserved_until": "2026-03-02T13:00:00"})
    _invalid(CreditCheckPassed, {**data, "headroom_after": {"amount": 1, "currency": "EUR"}})
    _invalid(CreditCheckPassed, {**data, "exposure": {"amount": 30000, "currency": "USD"}})
    _invalid(
        CreditCheckPassed,
        {
            **data,
            "amount": {"amount": 70000, "currency": "EUR"},
            "headroom_after": {"amount": -10000, "currency": "EUR"},
        },
    )
    _invalid(
        CreditCheckPassed,
        {
            **data,
            "amount": {"amount": 0, "currency": "EUR"},
            "headroom_after": {"amount": 60000, "currency": "EUR"},
        },
    )


def test_a_failed_check_names_its_reasons() -> None:
    data = _data(EXAMPLES[7])
    _invalid(CreditCheckFailed, {**data, "reasons": []})
    _invalid(CreditCheckFailed, {**data, "reasons": [data["reasons"][0], data["reasons"][0]]})
    _invalid(CreditCheckFailed, {**data, "reasons": [{"code": "bankrupt", "message": "x"}]})
    _invalid(CreditCheckFailed, {**data, "limit": {"amount": 1, "currency": "USD"}})
    with pytest.raises(ValidationError, match="excess"):
        CreditCheckReason(code="over_limit", message="over")
    with pytest.raises(ValidationError, match="days"):
        CreditCheckReason(code="overdue", message="late")
    with pytest.raises(ValidationError):
        CreditCheckReason(code="overdue", message="late", days=-1)


def test_a_hold_matches_its_kind() -> None:
    data = _data(EXAMPLES[10])
    _invalid(CreditHoldPlaced, {**data, "rule": None})
    _invalid(CreditHoldPlaced, {**data, "kind": "manual"})
    _invalid(CreditHoldPlaced, {**data, "kind": "temporary"})


def test_a_release_reason_is_one_of_three() -> None:
    _invalid(CreditReservationReleased, {**_data(EXAMPLES[9]), "reason": "lost"})
