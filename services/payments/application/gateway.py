"""Gateway webhooks: a verified event becomes a payment, a refund or a chargeback, once.

The event id is written to `webhook_events` in the same transaction as the effect, so a
redelivery (gateways retry until they get a 2xx) changes nothing, and two concurrent deliveries
of one event serialise on the primary key. An event about a payment this service has not seen
yet (gateways do not promise order) is answered 409 and rolled back whole, so the gateway
retries it later.

A payment from our own checkout names the invoices the customer chose (``invoice_ids``): it is
allocated to exactly those, in that order, each up to its open amount; whatever is left (an
overpayment, or ids that name no open invoice of this customer) goes through auto-matching.
"""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.adapters import SCHEMA
from services.payments.adapters import invoices as balances
from services.payments.application import matching
from services.payments.application import payments as payment_app
from services.payments.domain import payment as payments
from services.payments.domain.matching import MatchingPolicy
from services.payments.domain.payment import AllocationRequest
from services.payments.domain.webhook import (
    GatewayAction,
    GatewayChargeback,
    GatewayPayment,
    GatewayRefund,
    WebhookEvent,
)
from shared.contracts.payments import MethodDetails
from shared.errors import StateConflict
from shared.eventstore.store import AppendContext

GATEWAY = "stripe"
# How long a checkout's payment naming invoices this service has not consumed yet is refused
# with 409 (the gateway retries) before it is recorded with those invoices left unallocated.
UNKNOWN_INVOICE_GRACE_SECONDS = 3600.0
_REFUNDS = uuid.UUID("6f1f0a53-55c4-4d4e-9d0c-1b7f3e4b5a10")  # namespace of refund ids
_CHECKOUT_ALLOCATIONS = uuid.UUID("0b6c8f2e-3d4a-4f59-8a7e-52c1d9e6f0a3")  # and of these
CHECKOUT_RULE = "checkout"  # the allocation rule: the customer chose the invoices


async def handle(
    session: AsyncSession,
    ctx: AppendContext,
    event: WebhookEvent,
    action: GatewayAction,
    policy: MatchingPolicy,
    today: date,
) -> dict[str, Any]:
    first = (
        await session.execute(
            text(
                f"""INSERT INTO {SCHEMA}.webhook_events (tenant_id, event_id, event_type, outcome)
                    VALUES (:t, :e, :type, 'processing') ON CONFLICT DO NOTHING
                    RETURNING event_id"""
            ),
            {"t": ctx.tenant_id, "e": event.id, "type": event.type},
        )
    ).one_or_none()
    if first is None:
        return {"event_id": event.id, "outcome": "duplicate"}
    age = max(time.time() - event.created, 0.0)
    outcome, payment_id = await _act(session, ctx, action, policy, today, age)
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.webhook_events SET outcome = :o, payment_id = :p
                WHERE tenant_id = :t AND event_id = :e"""
        ),
        {"t": ctx.tenant_id, "e": event.id, "o": outcome, "p": payment_id},
    )
    return {
        "event_id": event.id,
        "outcome": outcome,
        "payment_id": str(payment_id) if payment_id else None,
    }


async def _act(
    session: AsyncSession,
    ctx: AppendContext,
    action: GatewayAction,
    policy: MatchingPolicy,
    today: date,
    age_seconds: float,
) -> tuple[str, uuid.UUID | None]:
    match action:
        case GatewayPayment():
            return await _received(session, ctx, action, policy, today, age_seconds)
        case GatewayRefund():
            payment_id = await _payment_for(session, ctx.tenant_id, action.gateway_ref)
            state, version = await payment_app.load_payment(session, ctx.tenant_id, payment_id)
            delta = action.refunded_total - state.refunded
            if not delta.is_positive():
                return "nothing_new", payment_id
            events = payments.refund(
                state,
                delta,
                "refunded at the gateway",
                max(action.refunded_on, state.received_on),
                refund_id=uuid.uuid5(_REFUNDS, f"{action.gateway_ref}:{action.refunded_total}"),
                gateway_ref=action.gateway_ref,
            )
            await payment_app.save_payment(session, state, version, events, ctx)
            return "refunded", payment_id
        case GatewayChargeback():
            payment_id = await _payment_for(session, ctx.tenant_id, action.gateway_ref)
            state, version = await payment_app.load_payment(session, ctx.tenant_id, payment_id)
            amount = min(action.amount, state.held)
            if not amount.is_positive():
                return "nothing_new", payment_id
            events = payments.reverse(
                state,
                amount,
                action.reason,
                max(action.reversed_on, state.received_on),
                kind="chargeback",
            )
            await payment_app.save_payment(session, state, version, events, ctx)
            return "reversed", payment_id
        case _:
            return "ignored", None


async def _received(
    session: AsyncSession,
    ctx: AppendContext,
    action: GatewayPayment,
    policy: MatchingPolicy,
    today: date,
    age_seconds: float,
) -> tuple[str, uuid.UUID | None]:
    existing = await _find_by_ref(session, ctx.tenant_id, action.gateway_ref)
    if existing is not None:  # payment_intent.succeeded and charge.succeeded name one payment
        return "already_recorded", existing
    payment_id = uuid.uuid4()
    events = payments.receive_payment(
        payment_id=payment_id,
        customer_id=action.customer_id,
        amount=action.amount,
        method=action.method,
        received_on=action.received_on,
        reference=action.reference or None,
        details=MethodDetails(
            gateway=GATEWAY,
            gateway_ref=action.gateway_ref,
            card_brand=action.card_brand,
            last4=action.last4,
            wallet_provider=action.wallet_provider,
            mandate_id=action.mandate_id,
        ),
        source="gateway",
    )
    customer_ctx = ctx.for_customer(action.customer_id)
    await payment_app.save_payment(session, None, 0, events, customer_ctx)
    if action.invoice_ids:
        await _allocate_as_chosen(session, customer_ctx, payment_id, action, age_seconds)
    # Only what the checkout's invoices did not take is left for matching (nothing, usually).
    await matching.match_payment(session, customer_ctx, payment_id, policy, today)
    return "recorded", payment_id


async def _allocate_as_chosen(
    session: AsyncSession,
    ctx: AppendContext,
    payment_id: uuid.UUID,
    action: GatewayPayment,
    age_seconds: float,
) -> None:
    """Apply the payment to the invoices the customer paid at checkout, in their order.

    Ids naming another customer's invoice, one in another currency or one not open are
    skipped rather than refused: the money is taken already, and a 4xx/5xx would only make the
    gateway retry an event that can never succeed. An id this service has not heard of yet is
    different while the event is young: the invoice may still be on its way over Kafka, so the
    event is answered 409 and the gateway retries it; after the grace period it is skipped too.
    """
    invoices = await balances.lock_for_allocation(session, ctx.tenant_id, action.invoice_ids)
    unknown = [str(i) for i in action.invoice_ids if i not in invoices]
    if unknown and age_seconds < UNKNOWN_INVOICE_GRACE_SECONDS:
        raise StateConflict(
            "the paid invoices are not known here yet; retry later", {"invoice_ids": unknown}
        )
    left = action.amount
    requests: list[AllocationRequest] = []
    for invoice_id in action.invoice_ids:
        invoice = invoices.get(invoice_id)
        if (
            invoice is None
            or not invoice.receivable
            or invoice.customer_id != action.customer_id
            or invoice.open_amount.currency != left.currency
            or not invoice.open_amount.is_positive()
        ):
            continue
        amount = min(invoice.open_amount, left)
        requests.append(
            AllocationRequest(
                invoice_id=invoice_id,
                amount=amount,
                # Deterministic: a conflict retry of the transaction re-sends the same ids.
                allocation_id=uuid.uuid5(
                    _CHECKOUT_ALLOCATIONS, f"{action.gateway_ref}:{invoice_id}"
                ),
                rule=CHECKOUT_RULE,
            )
        )
        left = left - amount
        if not left.is_positive():
            break
    if requests:
        await payment_app.allocate(session, ctx, payment_id, requests, action.received_on)


async def _find_by_ref(session: AsyncSession, tenant_id: str, ref: str) -> uuid.UUID | None:
    row = (
        await session.execute(
            text(
                f"""SELECT payment_id FROM {SCHEMA}.payments
                    WHERE tenant_id = :t AND gateway_ref = :r"""
            ),
            {"t": tenant_id, "r": ref},
        )
    ).one_or_none()
    return None if row is None else row.payment_id


async def _payment_for(session: AsyncSession, tenant_id: str, ref: str) -> uuid.UUID:
    found = await _find_by_ref(session, tenant_id, ref)
    if found is None:
        raise StateConflict(
            f"no payment with gateway reference {ref} yet; retry later", {"gateway_ref": ref}
        )
    return found
