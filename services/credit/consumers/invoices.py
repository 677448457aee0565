"""Exposure from the invoice stream; a passed check's reservation ends when its invoice is issued.

Runs inside the consumer runtime's batch transaction, with the inbox row. Each event updates
exposure; the customer's hold rules and risk score, which read the customer's whole history, are
reviewed once per transaction (`once_before_commit`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.adapters import exposure
from services.credit.application import accounts, holds
from services.credit.domain import account as domain
from shared.consumer import MessageContext, caused_by, once_before_commit
from shared.contracts import invoice as inv
from shared.contracts.dunning import AccountEscalated
from shared.events.envelope import EventEnvelope
from shared.events.registry import registry

# PaymentUnapplied reasons that mean the money came back (not a re-allocation or a refund asked for).
REVERSAL_WORDS = ("chargeback", "bounced", "reversal", "reversed", "returned")

#: What moves exposure: the consumer group passes over the rest (drafts, sends, ...) unparsed.
INVOICE_EVENTS = frozenset(
    t.event_type
    for t in (
        inv.InvoiceIssued,
        inv.PaymentApplied,
        inv.PaymentUnapplied,
        inv.InvoicePaid,
        inv.InvoiceReopened,
        inv.DisputeOpened,
        inv.CreditNoteIssued,
        inv.LateFeeCharged,
        inv.InvoiceVoided,
        inv.InvoiceWrittenOff,
        inv.InvoiceDueDateChanged,
    )
)
DUNNING_EVENTS = frozenset({AccountEscalated.event_type})


async def on_invoice_event(
    session: AsyncSession, envelope: EventEnvelope, _: MessageContext
) -> None:
    if envelope.event_type not in INVOICE_EVENTS:
        return
    event = registry.decode(envelope)
    tenant = envelope.tenant_id
    # The account as this event left it, when handling the event already loaded it.
    account: accounts.LoadedAccount | None = None
    match event:
        case inv.InvoiceIssued():
            await exposure.record_issued(
                session,
                tenant,
                event.invoice_id,
                event.customer_id,
                event.total,
                event.due_date,
                event.issue_date,
            )
            released = await _release_reservation(
                session, envelope, event.customer_id, f"invoice:{event.invoice_id}"
            )
            if event.customer_id == envelope.customer_id:  # the account the review is about
                account = released
        case inv.PaymentApplied():
            await exposure.adjust_open(
                session,
                tenant,
                event.invoice_id,
                -(event.amount.amount + event.discount_taken.amount),
            )
        case inv.PaymentUnapplied():
            reversed_discount = event.discount_reversed.amount if event.discount_reversed else 0
            await exposure.adjust_open(
                session, tenant, event.invoice_id, event.amount.amount + reversed_discount
            )
            if any(word in event.reason.lower() for word in REVERSAL_WORDS):
                await exposure.mark(session, tenant, event.invoice_id, reversal=True)
        case inv.InvoicePaid():
            await exposure.mark(session, tenant, event.invoice_id, paid_on=event.paid_on)
        case inv.InvoiceReopened():
            await exposure.mark(session, tenant, event.invoice_id, reopened=True)
        case inv.DisputeOpened():
            await exposure.mark(session, tenant, event.invoice_id, disputed=True)
        case inv.CreditNoteIssued():
            await exposure.adjust_open(session, tenant, event.invoice_id, -event.amount.amount)
        case inv.LateFeeCharged():
            await exposure.adjust_open(session, tenant, event.invoice_id, event.amount.amount)
        case inv.InvoiceVoided() | inv.InvoiceWrittenOff():
            await exposure.close(session, tenant, event.invoice_id)
        case inv.InvoiceDueDateChanged():
            await exposure.move_due_date(session, tenant, event.invoice_id, event.new_due_date)
        case _:
            return
    if envelope.customer_id:  # the hold rules and the risk score may have moved
        ctx, customer, today = (
            caused_by(envelope, holds.SYSTEM),
            envelope.customer_id,
            accounts.now().date(),
        )

        async def review(s: AsyncSession) -> None:
            # `account` stays current until the commit: this handler writes a customer's account
            # only just before registering its review, and a later registration replaces this one.
            await holds.review(s, ctx, customer, today, account)

        await once_before_commit(session, ("review", tenant, customer), review)


async def on_dunning_event(
    session: AsyncSession, envelope: EventEnvelope, _: MessageContext
) -> None:
    if envelope.event_type not in DUNNING_EVENTS:
        return
    event = registry.decode(envelope)
    assert isinstance(event, AccountEscalated)
    await holds.hold_for_escalation(
        session,
        caused_by(envelope, holds.SYSTEM),
        event.customer_id,
        f"escalated to collections on {event.escalated_on}: {event.reason}",
    )


async def _release_reservation(
    session: AsyncSession, envelope: EventEnvelope, customer_id: str, reference: str
) -> accounts.LoadedAccount:
    """The account after the release (for the review that follows in the same transaction)."""
    state, version = await accounts.find_account(session, envelope.tenant_id, customer_id)
    if state is None:
        return None, version  # issued without a check (override / outage policy): no account
    events = domain.release_reservation(state, reference, "invoiced")
    ctx = caused_by(envelope, "system:credit-invoice-consumer")
    saved = await accounts.save_account(session, state, version, events, ctx, customer_id)
    return saved, version + len(events)
