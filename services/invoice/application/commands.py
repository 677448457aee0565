"""The invoice service's use cases: load, decide (pure domain), save — one transaction each.

Callers pass an open session (the API's idempotent request transaction or a consumer's batch
transaction) and commit it; nothing here commits. The one exception is issuing, which calls the
credit service over HTTP and so must not hold a transaction open across the call.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.invoice.adapters.credit_client import CreditCheckClient, CreditDecision
from services.invoice.adapters.numbering import next_number, series_for
from services.invoice.application import repository as repo
from services.invoice.application.views import customer_view, invoice_view
from services.invoice.domain import customer as customers
from services.invoice.domain import invoice as invoices
from services.invoice.domain.customer import CustomerState
from services.invoice.domain.invoice import InvoiceState, InvoiceStatus
from shared.auth import Principal
from shared.consumer import caused_by
from shared.contracts.dunning import LateFeeAssessed
from shared.contracts.invoice import (
    Address,
    CreditCheckRecord,
    LineItem,
    PaymentMethod,
    PaymentTerms,
)
from shared.contracts.payments import PaymentAllocated, PaymentUnallocated
from shared.db import json_column
from shared.errors import (
    LedgerlineError,
    NotFound,
    ServiceUnavailable,
    StateConflict,
    ValidationFailed,
)
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload, registry
from shared.eventstore.store import AppendContext
from shared.money import Money

CREDIT_NOTE_SERIES = "CN"
DEBIT_NOTE_SERIES = "DN"
OVERRIDE_SCOPE = "credit:override"


def today() -> date:
    """The business date; the one clock read of the application layer."""
    return datetime.now(UTC).date()


class CreditCheckFailed(LedgerlineError):
    """The credit service refused: over the limit, on hold, or overdue. 422 with its reasons."""

    status_code = 422
    code = "credit_check_failed"


# ---- customers and terms templates -------------------------------------------------------------


@dataclass(frozen=True)
class CustomerInput:
    name: str
    email: str
    currency: str
    billing_address: Address
    tax_id: str | None = None
    default_terms: PaymentTerms | None = None
    terms_template_id: uuid.UUID | None = None


async def _check_template(
    session: AsyncSession, tenant: str, template_id: uuid.UUID | None
) -> None:
    if template_id is not None:
        try:
            await repo.load_terms_template(session, tenant, template_id)
        except NotFound as exc:
            raise ValidationFailed(exc.message, exc.details) from None


async def register_customer(
    session: AsyncSession, ctx: AppendContext, customer_id: str, data: CustomerInput
) -> dict[str, Any]:
    return await _save_customer(session, ctx, customer_id, data, register=True)


async def update_customer(
    session: AsyncSession, ctx: AppendContext, customer_id: str, data: CustomerInput
) -> dict[str, Any]:
    return await _save_customer(session, ctx, customer_id, data, register=False)


async def _save_customer(
    session: AsyncSession,
    ctx: AppendContext,
    customer_id: str,
    data: CustomerInput,
    *,
    register: bool,
) -> dict[str, Any]:
    await _check_template(session, ctx.tenant_id, data.terms_template_id)
    state, version = await repo.find_customer(session, ctx.tenant_id, customer_id)
    decide = (
        partial(customers.register_customer, state, customer_id)
        if register
        else partial(customers.update_customer, state)
    )
    events = decide(
        data.name,
        data.email,
        data.currency,
        data.billing_address,
        tax_id=data.tax_id,
        default_terms=data.default_terms,
        terms_template_id=data.terms_template_id,
    )
    saved = await repo.save_customer(session, state, version, events, ctx.for_customer(customer_id))
    return customer_view(saved)


async def define_terms_template(
    session: AsyncSession, ctx: AppendContext, name: str, terms: PaymentTerms
) -> dict[str, Any]:
    taken = (
        await session.execute(
            text(f"SELECT 1 FROM {repo.SCHEMA}.terms_templates WHERE tenant_id = :t AND name = :n"),
            {"t": ctx.tenant_id, "n": name},
        )
    ).first()
    if taken:
        raise StateConflict(f"a terms template named {name!r} exists already", {"name": name})
    template_id = uuid.uuid4()
    state = await repo.save_terms_template(
        session, customers.define_terms_template(None, template_id, name, terms), ctx
    )
    return {
        "template_id": str(state.template_id),
        "name": state.name,
        "terms": state.terms.model_dump(mode="json"),
        "terms_text": state.terms.describe(),
    }


# ---- drafts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftInput:
    customer_id: str
    lines: list[LineItem]
    currency: str | None = None
    terms: PaymentTerms | None = None
    terms_template_id: uuid.UUID | None = None
    series: str = "INV"
    description: str | None = None
    po_reference: str | None = None
    notes: str | None = None
    accepted_payment_methods: list[PaymentMethod] | None = None


async def _resolve_terms(
    session: AsyncSession,
    tenant: str,
    customer: CustomerState,
    terms: PaymentTerms | None,
    template_id: uuid.UUID | None,
) -> PaymentTerms:
    """Explicit terms, else the named template, else the customer's default terms or template."""
    if terms is not None:
        return terms
    template_id = template_id or (None if customer.default_terms else customer.terms_template_id)
    if template_id is not None:
        try:
            template = await repo.load_terms_template(session, tenant, template_id)
        except NotFound as exc:
            raise ValidationFailed(exc.message, exc.details) from None
        return PaymentTerms.model_validate(template["terms"])
    if customer.default_terms is not None:
        return customer.default_terms
    raise ValidationFailed(
        "no payment terms: give terms or terms_template_id, or set the customer's default terms",
        {"customer_id": customer.customer_id},
    )


async def draft_invoice(
    session: AsyncSession, ctx: AppendContext, data: DraftInput
) -> dict[str, Any]:
    customer, _ = await repo.find_customer(session, ctx.tenant_id, data.customer_id)
    if customer is None:
        raise ValidationFailed(
            f"unknown customer {data.customer_id}", {"customer_id": data.customer_id}
        )
    terms = await _resolve_terms(
        session, ctx.tenant_id, customer, data.terms, data.terms_template_id
    )
    invoice_id = uuid.uuid4()
    events = invoices.draft_invoice(
        invoice_id,
        customer.customer_id,
        data.currency or customer.currency,
        data.lines,
        terms,
        data.series,
        description=data.description,
        po_reference=data.po_reference,
        notes=data.notes,
        accepted_payment_methods=data.accepted_payment_methods,
    )
    state = await repo.save_invoice(
        session, None, 0, events, ctx.for_customer(customer.customer_id)
    )
    return invoice_view(state)


async def update_draft(
    session: AsyncSession, ctx: AppendContext, invoice_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    """PATCH semantics: the given fields replace the draft's; an issued invoice answers 409."""
    state, version = await repo.load_invoice(session, ctx.tenant_id, invoice_id)
    if state.status is not InvoiceStatus.DRAFT:
        raise StateConflict(
            f"invoice {invoice_id} is {state.status.value}: issued invoices are immutable; "
            "correct them with a credit note or void them",
            {"invoice_id": str(invoice_id), "status": state.status.value},
        )
    merged: dict[str, Any] = {
        "lines": list(state.lines),
        "terms": state.terms,
        "series": state.series,
        "accepted_payment_methods": list(state.accepted_payment_methods),
        "description": state.description,
        "po_reference": state.po_reference,
        "notes": state.notes,
    }
    merged.update(changes)
    events = invoices.update_draft(state, **merged)
    saved = await repo.save_invoice(
        session, state, version, events, ctx.for_customer(state.customer_id)
    )
    return invoice_view(saved)


# ---- issuing, with the credit check ------------------------------------------------------------


@dataclass(frozen=True)
class IssueRequest:
    invoice_id: uuid.UUID
    issue_date: date
    override_credit_check: bool = False
    override_reason: str | None = None


async def issue_invoice(
    sessions: async_sessionmaker[AsyncSession],
    ctx: AppendContext,
    principal: Principal,
    request: IssueRequest,
    credit: CreditCheckClient,
    bearer_token: str,
    *,
    allow_when_credit_unavailable: bool,
) -> dict[str, Any]:
    async with sessions() as session:
        state, _ = await repo.load_invoice(session, ctx.tenant_id, request.invoice_id)
    if state.status is not InvoiceStatus.DRAFT:
        raise StateConflict(
            f"invoice {request.invoice_id} is already {state.status.value}",
            {"invoice_id": str(request.invoice_id), "number": state.number},
        )
    decision = await credit.check(
        customer_id=state.customer_id,
        amount=state.total,
        reference=f"invoice:{state.invoice_id}",
        bearer_token=bearer_token,
        correlation_id=str(ctx.correlation_id) if ctx.correlation_id else None,
    )
    record = _credit_record(decision, principal, request, allow_when_credit_unavailable)
    async with sessions() as session, session.begin():
        # Re-read inside the transaction: the append below is checked against this version.
        state, version = await repo.load_invoice(session, ctx.tenant_id, request.invoice_id)
        parked = await _take_parked(session, ctx.tenant_id, state.invoice_id)
        # The number's row stays locked until the commit, and every issue of the tenant's series
        # waits for it (issuing is serial per series): so it is taken last, before the writes.
        # A refusal below aborts the transaction, and the number's increment with it: no gap.
        number = await next_number(
            session, repo.SCHEMA, ctx.tenant_id, series_for(state.series, request.issue_date)
        )
        events = invoices.issue_invoice(state, number, request.issue_date, record)
        cctx = ctx.for_customer(state.customer_id)
        issued = await repo.save_invoice(session, state, version, events, cctx)
        issued = await _apply_parked(session, cctx, issued, parked)
    return invoice_view(issued)


def _credit_record(
    decision: CreditDecision, principal: Principal, request: IssueRequest, allow_unavailable: bool
) -> CreditCheckRecord:
    if decision.outcome == "passed":
        return CreditCheckRecord(outcome="passed", check_id=decision.check_id)
    if decision.outcome == "unavailable":
        if allow_unavailable:
            return CreditCheckRecord(
                outcome="unavailable_allowed",
                reason="credit service unavailable; policy allows issuing",
            )
        raise ServiceUnavailable(
            "the credit service is unavailable and policy refuses to issue without a credit check",
            {"invoice_id": str(request.invoice_id)},
        )
    if request.override_credit_check:
        principal.require(OVERRIDE_SCOPE)
        reason = request.override_reason or decision.reason_text or "credit check overridden"
        return CreditCheckRecord(
            outcome="overridden",
            check_id=decision.check_id,
            reason=f"{reason} (refused: {decision.reason_text})",
            overridden_by=principal.actor,
        )
    raise CreditCheckFailed(
        f"credit check refused: {decision.reason_text or 'no reason given'}",
        {
            "check_id": decision.check_id,
            "reasons": decision.reasons,
            "override": f"retry with override_credit_check=true and the {OVERRIDE_SCOPE} scope",
        },
    )


# ---- commands on an issued invoice -------------------------------------------------------------


Decide = Callable[[InvoiceState], list[EventPayload]]


async def change_invoice(
    session: AsyncSession, ctx: AppendContext, invoice_id: uuid.UUID, decide: Decide
) -> InvoiceState:
    state, version = await repo.load_invoice(session, ctx.tenant_id, invoice_id)
    saved = await repo.save_invoice(
        session, state, version, decide(state), ctx.for_customer(state.customer_id)
    )
    if state.status is InvoiceStatus.DRAFT and saved.status is InvoiceStatus.VOID:
        # Allocations parked for this draft will never apply: reject them, so payments
        # gets its cash back instead of waiting forever.
        parked = await _take_parked(session, ctx.tenant_id, invoice_id)
        saved = await _apply_parked(session, ctx.for_customer(state.customer_id), saved, parked)
    return saved


async def credit_note_number(session: AsyncSession, tenant: str, on: date) -> str:
    return await next_number(session, repo.SCHEMA, tenant, series_for(CREDIT_NOTE_SERIES, on))


async def issue_credit_note(
    session: AsyncSession,
    ctx: AppendContext,
    invoice_id: uuid.UUID,
    amount: int,
    reason: str,
    on: date,
) -> dict[str, Any]:
    number = await credit_note_number(session, ctx.tenant_id, on)
    credit_note_id = uuid.uuid4()
    state = await change_invoice(
        session,
        ctx,
        invoice_id,
        lambda s: invoices.issue_credit_note(
            s, credit_note_id, Money.of_minor(amount, s.currency), reason, on, number=number
        ),
    )
    return {
        "credit_note_id": str(credit_note_id),
        "number": number,
        "amount": state.credit_notes[credit_note_id].model_dump(),
        "invoice": invoice_view(state),
    }


async def resolve_dispute(
    session: AsyncSession,
    ctx: AppendContext,
    invoice_id: uuid.UUID,
    dispute_id: uuid.UUID,
    outcome: str,
    note: str | None,
    on: date,
) -> dict[str, Any]:
    number = await credit_note_number(session, ctx.tenant_id, on) if outcome == "accepted" else None
    state = await change_invoice(
        session,
        ctx,
        invoice_id,
        lambda s: invoices.resolve_dispute(
            s,
            dispute_id,
            outcome,
            on,
            credit_note_id=uuid.uuid4() if outcome == "accepted" else None,
            note=note,
            credit_note_number=number,
        ),
    )
    return invoice_view(state)


# ---- events from other services ------------------------------------------------------------------


def decide_payment_event(state: InvoiceState, payload: EventPayload) -> list[EventPayload]:
    """What an allocation from the payments service means for this invoice.

    Payments decides on what it has learned of the invoice, which may be out of date (a credit
    note, void or write-off recorded since): an allocation the invoice can no longer take is
    rejected with ``PaymentApplicationRejected`` instead of failing the message, and payments
    takes it back. The rejection is dated today, never before the allocation.
    """
    if isinstance(payload, PaymentAllocated):
        return invoices.apply_or_reject_payment(
            state,
            payload.allocation_id,
            payload.payment_id,
            payload.amount,
            applied_on=payload.allocated_on,
            rejected_on=max(payload.allocated_on, today()),
        )
    if isinstance(payload, PaymentUnallocated):
        return invoices.unapply_payment(
            state, payload.allocation_id, payload.reason, payload.unallocated_on
        )
    return []


async def park_allocation(
    session: AsyncSession, envelope: EventEnvelope, invoice_id: uuid.UUID
) -> None:
    """Keep an allocation whose invoice is not issued yet (topics are not ordered together)."""
    await session.execute(
        text(
            f"""INSERT INTO {repo.SCHEMA}.parked_allocations
                    (tenant_id, invoice_id, event_id, event_type, envelope)
                VALUES (:tenant, :invoice, :event_id, :type, CAST(:envelope AS jsonb))
                ON CONFLICT DO NOTHING"""
        ),
        {
            "tenant": envelope.tenant_id,
            "invoice": invoice_id,
            "event_id": envelope.event_id,
            "type": envelope.event_type,
            "envelope": envelope.model_dump_json(),
        },
    )


async def _take_parked(
    session: AsyncSession, tenant_id: str, invoice_id: uuid.UUID
) -> list[EventEnvelope]:
    """Allocations that arrived before their invoice was issued, in arrival order (taken out of
    the parking table; back in it if the transaction rolls back)."""
    rows = (
        await session.execute(
            text(
                f"""DELETE FROM {repo.SCHEMA}.parked_allocations
                    WHERE tenant_id = :tenant AND invoice_id = :invoice
                    RETURNING envelope, parked_at"""
            ),
            {"tenant": tenant_id, "invoice": invoice_id},
        )
    ).all()
    return [
        EventEnvelope.model_validate(json_column(row.envelope))
        for row in sorted(rows, key=lambda r: r.parked_at)
    ]


async def _apply_parked(
    session: AsyncSession, ctx: AppendContext, state: InvoiceState, parked: list[EventEnvelope]
) -> InvoiceState:
    """Apply the allocations that arrived before the invoice was issued; one the invoice cannot
    take (e.g. more than its total) is rejected like a late one."""
    version = state.version
    for envelope in parked:
        events = decide_payment_event(state, registry.decode(envelope))
        state = await repo.save_invoice(
            session,
            state,
            version,
            events,
            caused_by(envelope, "system:invoice-parked-allocations", state.customer_id),
        )
        version = state.version
    return state


async def charge_late_fee(
    session: AsyncSession, envelope: EventEnvelope, fee: LateFeeAssessed
) -> None:
    """Charge a fee the dunning service assessed, as a debit note against the invoice."""
    state, version = await repo.load_invoice(session, envelope.tenant_id, fee.invoice_id)
    ctx = caused_by(envelope, "system:invoice-late-fees", state.customer_id)
    if fee.fee_id in state.late_fees:
        return  # already charged: don't spend a debit-note number
    number = await next_number(
        session, repo.SCHEMA, envelope.tenant_id, series_for(DEBIT_NOTE_SERIES, fee.assessed_on)
    )
    events = invoices.charge_late_fee(
        state, fee.fee_id, fee.amount, fee.reason, fee.assessed_on, debit_note_number=number
    )
    await repo.save_invoice(session, state, version, events, ctx)
