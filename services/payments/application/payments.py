"""Payments: load (event stream), decide (pure domain), save (events + read models).

Saving appends the payment's new events at the version they were decided on and, in the same
transaction, refreshes the payment's read-model row and adds its allocations to the invoices'
`allocated_minor`, so what the API shows and what the next allocation checks never lag the
stream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.adapters import SCHEMA
from services.payments.adapters import invoices as balances
from services.payments.domain import payment as payments
from services.payments.domain.payment import AllocationRequest, PaymentState, PaymentStatus
from shared.contracts.payments import PaymentAllocated, PaymentUnallocated
from shared.errors import NotFound
from shared.events.registry import EventPayload, registry
from shared.eventstore.store import AppendContext, EventStore

store = EventStore(SCHEMA)


def payment_stream(payment_id: uuid.UUID) -> str:
    return f"payment-{payment_id}"


async def find_payment(
    session: AsyncSession, tenant_id: str, payment_id: uuid.UUID
) -> tuple[PaymentState | None, int]:
    envelopes = await store.read_stream(session, payment_stream(payment_id), tenant_id=tenant_id)
    return payments.replay(registry.decode(e) for e in envelopes), len(envelopes)


async def load_payment(
    session: AsyncSession, tenant_id: str, payment_id: uuid.UUID
) -> tuple[PaymentState, int]:
    state, version = await find_payment(session, tenant_id, payment_id)
    if state is None:
        raise NotFound(f"payment {payment_id} not found", {"payment_id": str(payment_id)})
    return state, version


async def save_payment(
    session: AsyncSession,
    state: PaymentState | None,
    version: int,
    events: Sequence[EventPayload],
    ctx: AppendContext,
) -> PaymentState:
    new_state = state
    for event in events:
        new_state = payments.evolve(new_state, event)
    if new_state is None:
        raise ValueError("saving a payment needs a PaymentReceived first")
    if not events:
        return new_state
    await store.append(
        session,
        payment_stream(new_state.payment_id),
        version,
        [registry.new_event(e) for e in events],
        ctx.for_customer(new_state.customer_id),
    )
    for event in events:
        if isinstance(event, PaymentAllocated):
            await balances.add_allocated(
                session, ctx.tenant_id, event.invoice_id, event.amount.amount
            )
        elif isinstance(event, PaymentUnallocated):
            await balances.add_allocated(
                session, ctx.tenant_id, event.invoice_id, -event.amount.amount
            )
    await _upsert_view(session, ctx.tenant_id, new_state)
    return new_state


async def _upsert_view(session: AsyncSession, tenant_id: str, state: PaymentState) -> None:
    details = state.details
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.payments (tenant_id, payment_id, customer_id, currency,
                    amount_minor, unapplied_minor, method, status, received_on, reference,
                    gateway_ref, needs_review, version, document)
                VALUES (:t, :p, :c, :cur, :amount, :unapplied, :method, :status, :received,
                    :ref, :gw, :review, :v, CAST(:doc AS jsonb))
                ON CONFLICT (tenant_id, payment_id) DO UPDATE SET
                    unapplied_minor = EXCLUDED.unapplied_minor, status = EXCLUDED.status,
                    needs_review = EXCLUDED.needs_review, version = EXCLUDED.version,
                    document = EXCLUDED.document, updated_at = now()"""
        ),
        {
            "t": tenant_id,
            "p": state.payment_id,
            "c": state.customer_id,
            "cur": state.currency,
            "amount": state.amount.amount,
            "unapplied": state.unapplied.amount,
            "method": state.method,
            "status": state.status.value,
            "received": state.received_on,
            "ref": state.reference,
            "gw": details.gateway_ref if details else None,
            "review": awaits_review(state),
            "v": state.version,
            "doc": json.dumps(payment_view(state)),
        },
    )


def awaits_review(state: PaymentState) -> bool:
    """Cash received but not applied: someone has to apply, keep or refund it."""
    return state.unapplied.is_positive() and state.status not in (
        PaymentStatus.REFUNDED,
        PaymentStatus.REVERSED,
    )


def payment_view(state: PaymentState) -> dict[str, Any]:
    return {
        "payment_id": str(state.payment_id),
        "customer_id": state.customer_id,
        "amount": state.amount.model_dump(),
        "method": state.method,
        "details": state.details.model_dump(exclude_none=True) if state.details else {},
        "received_on": state.received_on.isoformat(),
        "reference": state.reference,
        "source": state.source,
        "status": state.status.value,
        "applied": state.applied.model_dump(),
        "unapplied": state.unapplied.model_dump(),
        "refunded": state.refunded.model_dump(),
        "reversed": state.reversed.model_dump(),
        "allocations": [
            {
                "allocation_id": str(a.allocation_id),
                "invoice_id": str(a.invoice_id),
                "amount": a.amount.model_dump(),
                "payment_amount": a.payment_amount.model_dump(),
                "rate": a.rate,
                "rule": a.rule,
                "allocated_on": a.allocated_on.isoformat(),
            }
            for a in sorted(
                state.allocations.values(), key=lambda a: (a.allocated_on, str(a.allocation_id))
            )
        ],
        "version": state.version,
    }


async def allocate(
    session: AsyncSession,
    ctx: AppendContext,
    payment_id: uuid.UUID,
    requests: Sequence[AllocationRequest],
    on: date,
) -> PaymentState:
    """Allocate under the invoices' row locks (taken first), then append at the read version:
    a concurrent allocation of the same payment loses with a conflict and is re-run."""
    invoices = await balances.lock_for_allocation(
        session, ctx.tenant_id, (r.invoice_id for r in requests)
    )
    state, version = await load_payment(session, ctx.tenant_id, payment_id)
    on = payments.effective_date(on, invoices.values())
    events = payments.allocate(state, requests, invoices, on=on, actor=ctx.actor)
    return await save_payment(session, state, version, events, ctx)


async def customer_cash(session: AsyncSession, tenant_id: str, customer_id: str) -> dict[str, Any]:
    """Open unapplied cash per currency, and how many payments hold it."""
    rows = (
        await session.execute(
            text(
                f"""SELECT currency, sum(unapplied_minor) AS unapplied, count(*) AS n
                    FROM {SCHEMA}.payments
                    WHERE tenant_id = :t AND customer_id = :c AND unapplied_minor > 0
                    GROUP BY currency ORDER BY currency"""
            ),
            {"t": tenant_id, "c": customer_id},
        )
    ).all()
    return {
        "customer_id": customer_id,
        "unapplied": [
            {"amount": int(r.unapplied), "currency": r.currency.strip(), "payments": int(r.n)}
            for r in rows
        ],
    }
