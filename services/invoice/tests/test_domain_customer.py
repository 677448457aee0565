"""The customer and payment-terms-template aggregates of the invoice service."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.invoice.domain.customer import (
    CustomerState,
    define_terms_template,
    evolve_customer,
    evolve_terms_template,
    register_customer,
    replay_customer,
    update_customer,
)
from shared.contracts.invoice import (
    Address,
    CustomerRegistered,
    CustomerUpdated,
    PaymentTerms,
    PaymentTermsTemplateDefined,
    TermsKind,
)
from shared.errors import StateConflict, ValidationFailed

ADDRESS = Address(line1="Rua Augusta 1", city="Lisboa", postal_code="1100-048", country="PT")
NET30 = PaymentTerms(kind=TermsKind.NET, net_days=30)
TEMPLATE = uuid.UUID(int=77)


def registered(**overrides: Any) -> CustomerState:
    args: dict[str, Any] = {
        "customer_id": "cust-1",
        "name": "Acme Lda",
        "email": "ap@acme.example",
        "currency": "EUR",
        "billing_address": ADDRESS,
    }
    events = register_customer(None, **{**args, **overrides})
    state = replay_customer(events)
    assert state is not None
    return state


def test_register_customer() -> None:
    events = register_customer(
        None,
        "cust-1",
        "Acme Lda",
        "ap@acme.example",
        "EUR",
        ADDRESS,
        tax_id="PT501234567",
        default_terms=NET30,
        terms_template_id=TEMPLATE,
    )
    assert events == [
        CustomerRegistered(
            customer_id="cust-1",
            name="Acme Lda",
            email="ap@acme.example",
            currency="EUR",
            billing_address=ADDRESS,
            tax_id="PT501234567",
            default_terms=NET30,
            terms_template_id=TEMPLATE,
        )
    ]
    state = replay_customer(events)
    assert state is not None
    assert (state.customer_id, state.default_terms, state.version) == ("cust-1", NET30, 1)


def test_registering_again_is_a_no_op_unless_the_details_differ() -> None:
    state = registered()
    assert register_customer(state, "cust-1", "Acme Lda", "ap@acme.example", "EUR", ADDRESS) == []
    with pytest.raises(StateConflict, match="already registered"):
        register_customer(state, "cust-1", "Other", "ap@acme.example", "EUR", ADDRESS)


@pytest.mark.parametrize(
    "overrides",
    [
        {"customer_id": ""},
        {"customer_id": "has space"},
        {"name": " "},
        {"email": "not-an-email"},
        {"currency": "eur"},
        {"currency": "ABC"},
        {"tax_id": ""},
    ],
)
def test_registration_refuses_invalid_details(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        registered(**overrides)


@pytest.mark.parametrize(
    "fields",
    [
        {"country": "pt"},
        {"country": "XX"},
        {"country": "PRT"},
        {"city": ""},
        {"postal_code": ""},
        {"line1": "   "},
        {"state": "CA"},
    ],
)
def test_addresses_need_an_iso_country_and_the_basic_lines(fields: dict[str, Any]) -> None:
    base = ADDRESS.model_dump()
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        Address.model_validate({**base, **fields})


def test_update_customer_replaces_the_master_data() -> None:
    state = registered()
    new_address = ADDRESS.model_copy(update={"line2": "2º andar", "region": "Lisboa"})
    events = update_customer(
        state, "Acme SA", "billing@acme.example", "USD", new_address, default_terms=NET30
    )
    assert events == [
        CustomerUpdated(
            customer_id="cust-1",
            name="Acme SA",
            email="billing@acme.example",
            currency="USD",
            billing_address=new_address,
            tax_id=None,
            default_terms=NET30,
            terms_template_id=None,
        )
    ]
    after = evolve_customer(state, events[0])
    assert (after.name, after.currency, after.version) == ("Acme SA", "USD", 2)
    repeat = update_customer(
        after, "Acme SA", "billing@acme.example", "USD", new_address, default_terms=NET30
    )
    assert repeat == []


def test_update_refusals() -> None:
    with pytest.raises(StateConflict, match="not registered"):
        update_customer(None, "Acme", "ap@acme.example", "EUR", ADDRESS)
    with pytest.raises(ValidationFailed):
        update_customer(registered(), "Acme", "ap@acme.example", "XYZ", ADDRESS)


def test_evolve_customer_refuses_events_out_of_sequence() -> None:
    state = registered()
    (first,) = register_customer(None, "cust-2", "B", "b@b.example", "EUR", ADDRESS)
    with pytest.raises(ValueError, match="already registered"):
        evolve_customer(state, first)
    (update,) = update_customer(state, "New", "ap@acme.example", "EUR", ADDRESS)
    with pytest.raises(ValueError, match="unregistered"):
        evolve_customer(None, update)
    template = PaymentTermsTemplateDefined(template_id=TEMPLATE, name="Net 30", terms=NET30)
    with pytest.raises(ValueError, match="not a customer event"):
        evolve_customer(state, template)


def test_terms_templates_are_defined_once() -> None:
    events = define_terms_template(None, TEMPLATE, "Net 30", NET30)
    assert events == [PaymentTermsTemplateDefined(template_id=TEMPLATE, name="Net 30", terms=NET30)]
    state = evolve_terms_template(None, events[0])
    assert (state.name, state.terms, state.version) == ("Net 30", NET30, 1)
    assert define_terms_template(state, TEMPLATE, "Net 30", NET30) == []
    with pytest.raises(StateConflict, match="define a new template"):
        define_terms_template(state, TEMPLATE, "Net 45", NET30)
    with pytest.raises(ValueError):
        evolve_terms_template(state, events[0])
    with pytest.raises(ValidationFailed):
        define_terms_template(None, TEMPLATE, "", NET30)
