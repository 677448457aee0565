"""Unapplied cash from the payments stream: it lowers a customer's exposure until it is applied.

Every event is a delta on one payment's unapplied amount, so the result does not depend on the
order events arrive in (an allocation seen before its PaymentReceived still adds up).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.adapters import exposure
from shared.consumer import MessageContext
from shared.contracts import payments as pay
from shared.events.envelope import EventEnvelope
from shared.events.registry import registry

#: What moves unapplied cash: the consumer group passes over the rest unparsed.
PAYMENT_EVENTS = frozenset(
    t.event_type
    for t in (
        pay.PaymentReceived,
        pay.PaymentAllocated,
        pay.PaymentUnallocated,
        pay.PaymentRefunded,
        pay.PaymentReversed,
    )
)


async def on_payment_event(
    session: AsyncSession, envelope: EventEnvelope, _: MessageContext
) -> None:
    if envelope.event_type not in PAYMENT_EVENTS:
        return
    event = registry.decode(envelope)
    tenant = envelope.tenant_id
    match event:
        case pay.PaymentReceived():
            await exposure.payment_cash(
                session,
                tenant,
                event.payment_id,
                event.amount.amount,
                customer_id=event.customer_id,
                currency=event.amount.currency,
            )
        case pay.PaymentAllocated():
            await exposure.payment_cash(
                session, tenant, event.payment_id, -event.payment_amount.amount
            )
        case pay.PaymentUnallocated():
            back = event.payment_amount or event.amount
            await exposure.payment_cash(session, tenant, event.payment_id, back.amount)
        case pay.PaymentRefunded() | pay.PaymentReversed():
            await exposure.payment_cash(session, tenant, event.payment_id, -event.amount.amount)
        case _:
            return
