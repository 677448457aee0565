"""Exposure kept by the credit consumer equals the invoices' own open amounts (a fresh replay).

Random invoice lifecycles are decided by the real invoice domain; their events go through the
credit service's handler exactly as the consumer runtime would deliver them, and the projection
is compared with the open amount the invoice aggregate computes by replaying its own events.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.credit.adapters.exposure import exposure_of
from services.credit.consumers.invoices import on_invoice_event
from services.invoice.domain import invoice as inv
from shared.consumer import MessageContext
from shared.contracts.invoice import CreditCheckRecord, LineItem, PaymentTerms, TaxRate
from shared.errors import LedgerlineError
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload
from shared.money import Money, sum_money
from shared.testing import envelope_of

pytestmark = pytest.mark.integration
ISSUED = date(2026, 9, 1)
CTX = MessageContext("ar.invoice.invoice.v1", 0, 0, "test")


def lifecycle(rng: random.Random, customer: str, n: int) -> list[EventPayload]:
    """One invoice's events: draft, issue, then random payments, credit notes, fees, reversals."""
    lines = [
        LineItem(
            description="work",
            quantity=Decimal(rng.randint(1, 20)),
            unit_price=rng.randint(100, 50_000),
            taxes=[TaxRate(code="VAT", percent=Decimal("19"))],
        )
    ]
    events = inv.draft_invoice(
        uuid.uuid4(), customer, "EUR", lines, PaymentTerms(kind="net", net_days=30), "INV"
    )
    state = inv.replay(events)
    assert state is not None
    step = inv.issue_invoice(
        state, f"INV-2026-{n:06d}", ISSUED, CreditCheckRecord(outcome="passed", check_id="chk")
    )
    applied: list[uuid.UUID] = []
    for day in range(1, rng.randint(1, 8)):
        for event in step:
            state = inv.evolve(state, event)
        events += step
        on = ISSUED + timedelta(days=day)
        part = Money.of_minor(max(1, state.open_amount.amount // rng.randint(1, 3)), "EUR")
        action = rng.choice(["pay", "pay", "credit", "fee", "unapply", "write_off", "void", "due"])
        try:
            if action == "pay":
                allocation = uuid.uuid4()
                step = inv.apply_payment(state, allocation, uuid.uuid4(), part, on)
                applied.append(allocation)
            elif action == "credit":
                step = inv.issue_credit_note(state, uuid.uuid4(), part, "goodwill", on)
            elif action == "fee":
                step = inv.charge_late_fee(
                    state, uuid.uuid4(), Money.of_minor(1_500, "EUR"), "fee", on
                )
            elif action == "unapply" and applied:
                step = inv.unapply_payment(state, applied.pop(), "chargeback", on)
            elif action == "write_off":
                step = inv.write_off(state, "bad debt", on)
            elif action == "void":
                step = inv.void_invoice(state, "mistake", on)
            else:
                step = inv.change_due_date(state, on + timedelta(days=30), "agreed")
        except LedgerlineError:
            step = []  # refused in this state (e.g. nothing open): like a rejected API call
    events += step
    return events


def envelope(tenant: str, customer: str, event: EventPayload, version: int) -> EventEnvelope:
    return envelope_of(
        tenant,
        event,
        stream_id=f"invoice-{event.model_dump()['invoice_id']}",
        customer_id=customer,
        stream_version=version,
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_projection_matches_the_invoice_aggregates(
    credit_sessions: async_sessionmaker[AsyncSession], tenant: str, seed: int
) -> None:
    rng = random.Random(seed)
    truth: dict[str, list[Money]] = {}
    kinds: set[str] = set()
    for n in range(12):
        customer = f"c{n % 3}"
        events = lifecycle(rng, customer, n + 1)
        kinds |= {e.event_type for e in events}
        state = inv.replay(events)
        assert state is not None
        truth.setdefault(customer, []).append(state.open_amount)
        async with credit_sessions() as s, s.begin():
            for version, event in enumerate(events, start=1):
                await on_invoice_event(s, envelope(tenant, customer, event, version), CTX)
    async with credit_sessions() as s:
        for customer, amounts in truth.items():
            projected = await exposure_of(s, tenant, customer, "EUR", date(2026, 11, 24))
            assert projected.open_invoices == sum_money(amounts, "EUR"), customer
    assert {"InvoiceIssued", "PaymentApplied"} <= kinds and len(kinds) >= 5, kinds


def test_the_generated_lifecycles_cover_every_exposure_change() -> None:
    rng = random.Random(0)
    kinds = {e.event_type for n in range(200) for e in lifecycle(rng, "c", n + 1)}
    assert {
        "PaymentApplied",
        "PaymentUnapplied",
        "CreditNoteIssued",
        "LateFeeCharged",
        "InvoiceWrittenOff",
        "InvoiceVoided",
        "InvoiceDueDateChanged",
        "InvoicePaid",
    } <= kinds
