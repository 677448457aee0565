"""What payments learns from the invoice stream: wiring, and each event's effect on the open
amount it allocates against."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.payments.adapters import invoices as balances
from services.payments.config import PaymentsSettings
from services.payments.consumers import consumers
from services.payments.tests.conftest import TODAY, Feed, auth, drafted, issued
from shared.contracts.invoice import (
    CreditNoteIssued,
    InvoiceDueDateChanged,
    InvoiceWrittenOff,
    LateFeeCharged,
    PaymentApplied,
    PaymentUnapplied,
)
from shared.money import Money
from shared.topics import all_event_topics


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def test_the_consumer_group_listens_to_the_invoice_topic() -> None:
    [spec] = consumers(PaymentsSettings().matching_policy())
    assert (spec.group_id, spec.topics) == ("payments.invoices", ("ar.invoice.invoice.v1",))
    assert all(t in all_event_topics() for t in spec.topics)


@pytest.mark.integration
async def test_each_invoice_event_moves_the_open_amount(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 10_000)
    await feed(tenant, drafted(inv.invoice_id, "c1", 10_000, None), "c1")

    async def open_now() -> tuple[int, str]:
        r = await api.get(f"/v1/invoices/{inv.invoice_id}/open-amount", headers=auth(tenant))
        assert r.status_code == 200, r.text
        return r.json()["open_amount"]["amount"], r.json()["status"]

    assert await open_now() == (0, "draft")  # a draft takes no payments yet
    await feed(tenant, inv, "c1")
    assert await open_now() == (10_000, "open")
    fee = LateFeeCharged(
        invoice_id=inv.invoice_id,
        fee_id=uuid.uuid4(),
        amount=eur(500),
        reason="late",
        charged_on=TODAY,
    )
    await feed(tenant, fee, "c1")
    assert await open_now() == (10_500, "open")
    note = CreditNoteIssued(
        invoice_id=inv.invoice_id,
        credit_note_id=uuid.uuid4(),
        amount=eur(1_500),
        reason="damaged",
        issued_on=TODAY,
    )
    await feed(tenant, note, "c1")
    assert await open_now() == (9_000, "open")
    allocation = uuid.uuid4()
    applied = PaymentApplied(
        invoice_id=inv.invoice_id,
        allocation_id=allocation,
        payment_id=uuid.uuid4(),
        amount=eur(8_820),
        applied_on=TODAY,
        discount_taken=eur(180),
    )
    await feed(tenant, applied, "c1")  # only the discount counts: allocations are payments' own
    assert await open_now() == (8_820, "open")
    await feed(
        tenant,
        PaymentUnapplied(
            invoice_id=inv.invoice_id,
            allocation_id=allocation,
            amount=eur(8_820),
            reason="refund",
            unapplied_on=TODAY,
            discount_reversed=eur(180),
        ),
        "c1",
    )
    assert await open_now() == (9_000, "open")
    await feed(
        tenant,
        InvoiceDueDateChanged(
            invoice_id=inv.invoice_id,
            previous_due_date=inv.due_date,
            new_due_date=inv.due_date.replace(year=inv.due_date.year + 1),
            reason="agreed",
        ),
        "c1",
    )
    await feed(
        tenant,
        InvoiceWrittenOff(
            invoice_id=inv.invoice_id, amount=eur(9_000), reason="bad debt", written_off_on=TODAY
        ),
        "c1",
    )
    assert await open_now() == (0, "written_off")


@pytest.mark.integration
async def test_statement_references_find_invoices_beyond_the_oldest_window(
    payments_sessions: async_sessionmaker[AsyncSession], tenant: str, feed: Feed
) -> None:
    """An unknown payer's line is matched against the oldest-due invoices plus any whose number
    the reference names, in any of the spellings the matcher reads."""
    old = issued("c1", 1_000, number="INV-2026-000001", due_days=1)
    named = issued("c2", 2_000, number="INV-2026-000123", due_days=90)
    for inv in (old, named):
        await feed(tenant, inv, inv.customer_id)
    for reference in ("paid inv 2026/123", "INV2026000123", "Rechnung INV-2026-000123"):
        async with payments_sessions() as session:
            found = await balances.open_invoices(
                session, tenant, "EUR", customer_id=None, today=TODAY, numbers_in=reference, limit=1
            )
        assert {i.number for i in found} == {"INV-2026-000001", "INV-2026-000123"}, reference
