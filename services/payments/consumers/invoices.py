"""What payments learns from the invoice stream: open amounts to allocate against, numbers and
discount terms to match by, and the invoice service's verdict on an allocation.

Events of one invoice arrive in order (one topic, keyed by customer), so each is a plain delta
on the invoice's row. An issued invoice may be what an unapplied payment of its customer was
waiting for: matching runs again for them. A rejected allocation is taken back on the payment,
returning its cash to unapplied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.adapters import invoices as balances
from services.payments.application import matching
from services.payments.application import payments as payment_app
from services.payments.domain import payment as payments
from services.payments.domain.matching import MatchingPolicy
from shared.consumer import Handler, MessageContext, caused_by
from shared.contracts import invoice as inv
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload, registry

ACTOR = "system:payments-invoices-consumer"


def invoice_handler(policy: MatchingPolicy, today: Callable[[], date] = date.today) -> Handler:
    async def on_invoice_event(
        session: AsyncSession, envelope: EventEnvelope, _: MessageContext
    ) -> None:
        if envelope.event_type not in INVOICE_EVENTS:
            return
        event = registry.decode(envelope)
        tenant = envelope.tenant_id
        effect = _EFFECTS.get(type(event))
        if effect is not None:
            await effect(session, tenant, event)
        if isinstance(event, inv.InvoiceIssued):
            await _rematch_customer(session, envelope, event.customer_id, policy, today())
        elif isinstance(event, inv.PaymentApplicationRejected):
            await _take_back(session, envelope, event)

    return on_invoice_event


async def _drafted(session: AsyncSession, tenant: str, e: Any) -> None:
    discount = e.terms.early_payment_discount
    await balances.upsert_invoice(
        session,
        tenant,
        e.invoice_id,
        {
            "customer_id": e.customer_id,
            "currency": e.currency,
            "discount_percent": discount.percent if discount else None,
            "discount_days": discount.within_days if discount else None,
        },
        insert_only={"status": "draft"},
    )


async def _issued(session: AsyncSession, tenant: str, e: Any) -> None:
    await balances.upsert_invoice(
        session,
        tenant,
        e.invoice_id,
        {
            "customer_id": e.customer_id,
            "currency": e.currency,
            "status": "open",
            "number": e.number,
            "issue_date": e.issue_date,
            "due_date": e.due_date,
            "total_due_minor": e.total.amount,
        },
    )


def _delta(column: str, sign: int = 1, **plain: Any) -> Any:
    async def apply(session: AsyncSession, tenant: str, e: Any) -> None:
        amount = getattr(e, _AMOUNT_FIELD.get(type(e), "amount"))
        changes = {column: sign * (amount.amount if amount else 0), **plain}
        await balances.record_invoice_event(session, tenant, e.invoice_id, changes)

    return apply


async def _set(session: AsyncSession, tenant: str, e: Any) -> None:
    changes: dict[str, Any] = (
        {"status": "void"} if isinstance(e, inv.InvoiceVoided) else {"due_date": e.new_due_date}
    )
    await balances.record_invoice_event(session, tenant, e.invoice_id, changes)


_AMOUNT_FIELD: dict[type, str] = {
    inv.PaymentApplied: "discount_taken",
    inv.PaymentUnapplied: "discount_reversed",
}
_EFFECTS: dict[type[EventPayload], Callable[[AsyncSession, str, Any], Awaitable[None]]] = {
    inv.InvoiceDrafted: _drafted,
    inv.InvoiceDraftUpdated: _drafted,
    inv.InvoiceIssued: _issued,
    inv.LateFeeCharged: _delta("total_due_minor"),
    inv.CreditNoteIssued: _delta("credited_minor"),
    inv.InvoiceWrittenOff: _delta("written_off_minor", status="written_off"),
    inv.PaymentApplied: _delta("discount_minor"),
    inv.PaymentUnapplied: _delta("discount_minor", -1),
    inv.InvoiceVoided: _set,
    inv.InvoiceDueDateChanged: _set,
}


async def _rematch_customer(
    session: AsyncSession,
    envelope: EventEnvelope,
    customer_id: str,
    policy: MatchingPolicy,
    today: date,
) -> None:
    ctx = caused_by(envelope, matching.ACTOR, customer_id)
    for payment_id in await matching.unapplied_payments_of(session, ctx.tenant_id, customer_id):
        await matching.match_payment(session, ctx, payment_id, policy, today)


async def _take_back(
    session: AsyncSession, envelope: EventEnvelope, event: inv.PaymentApplicationRejected
) -> None:
    state, version = await payment_app.find_payment(session, envelope.tenant_id, event.payment_id)
    if state is None:
        return  # not one of ours (another tenant's id cannot reach here: reads are scoped)
    if event.allocation_id not in state.allocations:
        return  # already taken back
    events = payments.unallocate(
        state,
        event.allocation_id,
        f"rejected by the invoice ({event.code}): {event.reason}",
        event.rejected_on,
    )
    ctx = caused_by(envelope, ACTOR, state.customer_id)
    await payment_app.save_payment(session, state, version, events, ctx)


#: What the handler reads: the consumer group passes over the rest (sends, disputes, ...) unparsed.
INVOICE_EVENTS = frozenset(
    {t.event_type for t in _EFFECTS}
    | {inv.InvoiceIssued.event_type, inv.PaymentApplicationRejected.event_type}
)
