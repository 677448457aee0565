"""The invoice service's master data: the Customer aggregate and payment-terms templates.

Invoices copy what they need (customer id, currency, terms) when drafted, so changing a
customer or defining a new template never alters an invoice already drafted or issued.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable

from shared.contracts.invoice import (
    Address,
    CustomerRegistered,
    CustomerUpdated,
    PaymentTerms,
    PaymentTermsTemplateDefined,
)
from shared.errors import StateConflict
from shared.events.registry import EventPayload, build_event

__all__ = [
    "CustomerState",
    "TermsTemplateState",
    "define_terms_template",
    "evolve_customer",
    "evolve_terms_template",
    "register_customer",
    "replay_customer",
    "update_customer",
]


# ------------------------------------------------------------------------ customer


@dataclasses.dataclass(frozen=True)
class CustomerState:
    customer_id: str
    name: str
    email: str
    currency: str
    billing_address: Address
    tax_id: str | None
    default_terms: PaymentTerms | None
    terms_template_id: uuid.UUID | None
    version: int = 0


_CUSTOMER_FIELDS = (
    "name",
    "email",
    "currency",
    "billing_address",
    "tax_id",
    "default_terms",
    "terms_template_id",
)


def register_customer(
    state: CustomerState | None,
    customer_id: str,
    name: str,
    email: str,
    currency: str,
    billing_address: Address,
    *,
    tax_id: str | None = None,
    default_terms: PaymentTerms | None = None,
    terms_template_id: uuid.UUID | None = None,
) -> list[EventPayload]:
    """Register a new customer; repeating an identical registration is a no-op."""
    event = build_event(
        CustomerRegistered,
        customer_id=customer_id,
        name=name,
        email=email,
        currency=currency,
        billing_address=billing_address,
        tax_id=tax_id,
        default_terms=default_terms,
        terms_template_id=terms_template_id,
    )
    if state is None:
        return [event]
    if all(getattr(state, f) == getattr(event, f) for f in _CUSTOMER_FIELDS):
        return []
    raise StateConflict(
        f"customer {state.customer_id} is already registered with other details; update it instead",
        {"customer_id": state.customer_id},
    )


def update_customer(
    state: CustomerState | None,
    name: str,
    email: str,
    currency: str,
    billing_address: Address,
    *,
    tax_id: str | None = None,
    default_terms: PaymentTerms | None = None,
    terms_template_id: uuid.UUID | None = None,
) -> list[EventPayload]:
    """Replace a customer's master data as a whole; no-op if nothing changes."""
    if state is None:
        raise StateConflict("cannot update a customer that is not registered", {})
    event = build_event(
        CustomerUpdated,
        customer_id=state.customer_id,
        name=name,
        email=email,
        currency=currency,
        billing_address=billing_address,
        tax_id=tax_id,
        default_terms=default_terms,
        terms_template_id=terms_template_id,
    )
    if all(getattr(state, f) == getattr(event, f) for f in _CUSTOMER_FIELDS):
        return []
    return [event]


def evolve_customer(state: CustomerState | None, event: EventPayload) -> CustomerState:
    if isinstance(event, CustomerRegistered):
        if state is not None:
            raise ValueError(f"customer {state.customer_id} was already registered")
    elif isinstance(event, CustomerUpdated):
        if state is None or state.customer_id != event.customer_id:
            raise ValueError(f"CustomerUpdated for unregistered customer {event.customer_id}")
    else:
        raise ValueError(f"{event.event_type} is not a customer event")
    return CustomerState(
        customer_id=event.customer_id,
        version=(state.version if state else 0) + 1,
        **{f: getattr(event, f) for f in _CUSTOMER_FIELDS},
    )


def replay_customer(events: Iterable[EventPayload]) -> CustomerState | None:
    state: CustomerState | None = None
    for event in events:
        state = evolve_customer(state, event)
    return state


# ----------------------------------------------------------- payment terms templates


@dataclasses.dataclass(frozen=True)
class TermsTemplateState:
    template_id: uuid.UUID
    name: str
    terms: PaymentTerms
    version: int = 0


def define_terms_template(
    state: TermsTemplateState | None, template_id: uuid.UUID, name: str, terms: PaymentTerms
) -> list[EventPayload]:
    """Define reusable terms. Templates are immutable: an identical repeat is a no-op, other
    terms under the same id are a conflict (define a new template instead)."""
    event = build_event(
        PaymentTermsTemplateDefined, template_id=template_id, name=name, terms=terms
    )
    if state is None:
        return [event]
    if state.name == name and state.terms == terms:
        return []
    raise StateConflict(
        f"payment terms template {template_id} is already defined; define a new template",
        {"template_id": str(template_id)},
    )


def evolve_terms_template(
    state: TermsTemplateState | None, event: EventPayload
) -> TermsTemplateState:
    if not isinstance(event, PaymentTermsTemplateDefined):
        raise ValueError(f"{event.event_type} is not a payment terms template event")
    if state is not None:
        raise ValueError(f"payment terms template {state.template_id} was already defined")
    return TermsTemplateState(
        template_id=event.template_id, name=event.name, terms=event.terms, version=1
    )
