"""Loading and saving the invoice service's aggregates.

An aggregate is its event stream (the truth); saving appends the new events with the version
they were decided on and, in the same transaction, refreshes the aggregate's read-model row that
the API lists and filters. There is no moment where one is written and the other is not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.invoice.application.views import customer_view, invoice_view
from services.invoice.domain.customer import (
    CustomerState,
    TermsTemplateState,
    evolve_customer,
    evolve_terms_template,
    replay_customer,
)
from services.invoice.domain.invoice import InvoiceState, evolve, replay
from shared.db import json_column
from shared.errors import NotFound
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload, registry
from shared.eventstore.store import AppendContext, EventStore

SCHEMA = "invoice"
store = EventStore(SCHEMA)


def invoice_stream(invoice_id: uuid.UUID) -> str:
    return f"invoice-{invoice_id}"


def customer_stream(tenant_id: str, customer_id: str) -> str:
    """Customer ids are chosen by each tenant, so the tenant is part of the stream id."""
    return f"customer-{tenant_id}:{customer_id}"


def template_stream(template_id: uuid.UUID) -> str:
    return f"terms_template-{template_id}"


def _decoded(envelopes: Sequence[EventEnvelope]) -> list[EventPayload]:
    return [registry.decode(e) for e in envelopes]


async def _append(
    session: AsyncSession,
    stream_id: str,
    version: int,
    events: Sequence[EventPayload],
    context: AppendContext,
) -> list[EventEnvelope]:
    return await store.append(
        session, stream_id, version, [registry.new_event(e) for e in events], context
    )


# ---- invoices --------------------------------------------------------------------------------


async def load_invoice(
    session: AsyncSession, tenant_id: str, invoice_id: uuid.UUID
) -> tuple[InvoiceState, int]:
    envelopes = await store.read_stream(session, invoice_stream(invoice_id), tenant_id=tenant_id)
    state = replay(_decoded(envelopes))
    if state is None:
        raise NotFound(f"invoice {invoice_id} not found", {"invoice_id": str(invoice_id)})
    return state, envelopes[-1].stream_version


async def find_invoice(
    session: AsyncSession, tenant_id: str, invoice_id: uuid.UUID
) -> tuple[InvoiceState | None, int]:
    try:
        return await load_invoice(session, tenant_id, invoice_id)
    except NotFound:
        return None, 0


async def save_invoice(
    session: AsyncSession,
    state: InvoiceState | None,
    version: int,
    events: Sequence[EventPayload],
    context: AppendContext,
) -> InvoiceState:
    """Append `events` decided on `state` at `version`; refresh the read model; return the new state."""
    if not events:
        if state is None:
            raise ValueError("nothing to save")
        return state
    new_state = state
    for event in events:
        new_state = evolve(new_state, event)
    assert new_state is not None
    await _append(session, invoice_stream(new_state.invoice_id), version, events, context)
    view = invoice_view(new_state)
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.invoices (tenant_id, invoice_id, customer_id, number, series,
                    status, currency, total_minor, open_minor, disputed_minor, issue_date, due_date,
                    version, document)
                VALUES (:tenant, :id, :customer, :number, :series, :status, :currency, :total,
                    :open, :disputed, :issue_date, :due_date, :version, CAST(:document AS jsonb))
                ON CONFLICT (tenant_id, invoice_id) DO UPDATE SET
                    number = EXCLUDED.number, series = EXCLUDED.series, status = EXCLUDED.status,
                    total_minor = EXCLUDED.total_minor, open_minor = EXCLUDED.open_minor,
                    disputed_minor = EXCLUDED.disputed_minor, issue_date = EXCLUDED.issue_date,
                    due_date = EXCLUDED.due_date, version = EXCLUDED.version,
                    document = EXCLUDED.document, updated_at = now()"""
        ),
        {
            "tenant": context.tenant_id,
            "id": new_state.invoice_id,
            "customer": new_state.customer_id,
            "number": new_state.number,
            "series": new_state.series,
            "status": new_state.status.value,
            "currency": new_state.currency,
            "total": new_state.total.amount,
            "open": new_state.open_amount.amount,
            "disputed": new_state.disputed_amount.amount,
            "issue_date": new_state.issue_date,
            "due_date": new_state.due_date,
            "version": new_state.version,
            "document": json.dumps(view),
        },
    )
    return new_state


# ---- customers and terms templates -------------------------------------------------------------


async def find_customer(
    session: AsyncSession, tenant_id: str, customer_id: str
) -> tuple[CustomerState | None, int]:
    envelopes = await store.read_stream(
        session, customer_stream(tenant_id, customer_id), tenant_id=tenant_id
    )
    return replay_customer(_decoded(envelopes)), len(envelopes)


async def load_customer(session: AsyncSession, tenant_id: str, customer_id: str) -> CustomerState:
    state, _ = await find_customer(session, tenant_id, customer_id)
    if state is None:
        raise NotFound(f"customer {customer_id} not found", {"customer_id": customer_id})
    return state


async def save_customer(
    session: AsyncSession,
    state: CustomerState | None,
    version: int,
    events: Sequence[EventPayload],
    context: AppendContext,
) -> CustomerState:
    if not events:
        assert state is not None
        return state
    new_state = state
    for event in events:
        new_state = evolve_customer(new_state, event)
    assert new_state is not None
    await _append(
        session, customer_stream(context.tenant_id, new_state.customer_id), version, events, context
    )
    view = customer_view(new_state)
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.customers (tenant_id, customer_id, name, email, currency,
                    version, document)
                VALUES (:tenant, :id, :name, :email, :currency, :version, CAST(:document AS jsonb))
                ON CONFLICT (tenant_id, customer_id) DO UPDATE SET name = EXCLUDED.name,
                    email = EXCLUDED.email, currency = EXCLUDED.currency,
                    version = EXCLUDED.version, document = EXCLUDED.document, updated_at = now()"""
        ),
        {
            "tenant": context.tenant_id,
            "id": new_state.customer_id,
            "name": new_state.name,
            "email": new_state.email,
            "currency": new_state.currency,
            "version": new_state.version,
            "document": json.dumps(view),
        },
    )
    return new_state


async def save_terms_template(
    session: AsyncSession, events: Sequence[EventPayload], context: AppendContext
) -> TermsTemplateState:
    state: TermsTemplateState | None = None
    for event in events:
        state = evolve_terms_template(state, event)
    assert state is not None
    await _append(session, template_stream(state.template_id), 0, events, context)
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.terms_templates (tenant_id, template_id, name, terms)
                VALUES (:tenant, :id, :name, CAST(:terms AS jsonb))"""
        ),
        {
            "tenant": context.tenant_id,
            "id": state.template_id,
            "name": state.name,
            "terms": state.terms.model_dump_json(),
        },
    )
    return state


async def load_terms_template(
    session: AsyncSession, tenant_id: str, template_id: uuid.UUID
) -> dict[str, Any]:
    row = (
        await session.execute(
            text(
                f"""SELECT template_id, name, terms FROM {SCHEMA}.terms_templates
                    WHERE tenant_id = :tenant AND template_id = :id"""
            ),
            {"tenant": tenant_id, "id": template_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"terms template {template_id} not found", {"template_id": str(template_id)})
    terms = json_column(row.terms)
    return {"template_id": str(row.template_id), "name": row.name, "terms": terms}
