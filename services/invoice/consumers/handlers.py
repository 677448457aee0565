"""Kafka handlers: payment allocations and late fees from other services change invoices.

Both run inside the consumer runtime's batch transaction (inbox row + effects commit together).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.invoice.application import commands
from services.invoice.application import repository as repo
from services.invoice.domain.invoice import InvoiceStatus
from shared.consumer import MessageContext, caused_by
from shared.contracts.dunning import LateFeeAssessed
from shared.contracts.payments import PaymentAllocated, PaymentUnallocated
from shared.events.envelope import EventEnvelope
from shared.events.registry import registry
from shared.topics import event_topic
from shared.web.runtime import ConsumerSpec

PAYMENT_EVENTS = {PaymentAllocated.event_type, PaymentUnallocated.event_type}


async def on_payment_event(
    session: AsyncSession, envelope: EventEnvelope, _: MessageContext
) -> None:
    if envelope.event_type not in PAYMENT_EVENTS:
        return  # PaymentReceived, refunds of unapplied cash, ...: nothing for invoices
    payload = registry.decode(envelope)
    assert isinstance(payload, PaymentAllocated | PaymentUnallocated)
    state, version = await repo.find_invoice(session, envelope.tenant_id, payload.invoice_id)
    if state is None or state.status is InvoiceStatus.DRAFT:
        # Seen before its invoice was issued: park it; issuing applies it.
        await commands.park_allocation(session, envelope, payload.invoice_id)
        return
    # Applied, or rejected with PaymentApplicationRejected when the invoice changed since
    # payments decided (over the open amount, void/written off/paid, other currency).
    events = commands.decide_payment_event(state, payload)
    ctx = caused_by(envelope, "system:invoice-payments-consumer", state.customer_id)
    await repo.save_invoice(session, state, version, events, ctx)


async def on_dunning_event(
    session: AsyncSession, envelope: EventEnvelope, _: MessageContext
) -> None:
    if envelope.event_type != LateFeeAssessed.event_type:
        return
    payload = registry.decode(envelope)
    assert isinstance(payload, LateFeeAssessed)
    await commands.charge_late_fee(session, envelope, payload)


CONSUMERS = [
    ConsumerSpec(
        "invoice.payments",
        (event_topic("payments", "payment"),),
        on_payment_event,
        frozenset(PAYMENT_EVENTS),
    ),
    ConsumerSpec(
        "invoice.late-fees",
        (event_topic("dunning", "dunning_case"),),
        on_dunning_event,
        frozenset({LateFeeAssessed.event_type}),
    ),
]
