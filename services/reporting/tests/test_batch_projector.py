"""The rebuild's batched projector must write exactly the rows the live projector writes: every
event type, duplicates, stale versions, events for invoices and payments never seen, a dispute
resolved through another invoice, and invoices touched several times within one batch."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import admin_dsn
from services.reporting.application.rebuild import checksums
from services.reporting.projections.batch import BatchProjector, Recorded, write
from services.reporting.projections.projector import PROJECTED_TYPES, Projector
from services.reporting.projections.tables import Tables
from services.reporting.tests.conftest import Ledger
from shared.contracts import invoice as inv
from shared.contracts import payments as pay
from shared.db import make_sessionmaker
from shared.events.envelope import EventEnvelope
from shared.events.replay import ReplayDecoder
from shared.migrations import upgrade
from shared.money import Money

D = date.fromisoformat


@pytest.fixture
async def two_schemas(admin_engine: AsyncEngine) -> AsyncIterator[tuple[str, str]]:
    names = (f"r_{uuid.uuid4().hex[:10]}", f"r_{uuid.uuid4().hex[:10]}")
    for name in names:
        async with admin_engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {name}"))
        await upgrade("reporting", admin_dsn(), schema=name)
    yield names
    async with admin_engine.begin() as conn:
        for name in names:
            await conn.execute(text(f"DROP SCHEMA {name} CASCADE"))


def history(ledger: Ledger, seed: int) -> list[EventEnvelope]:
    rng = random.Random(seed)
    out: list[EventEnvelope] = []
    disputes: list[tuple[uuid.UUID, uuid.UUID]] = []  # (invoice, dispute)
    customers = [f"c{n}" for n in range(6)]
    for customer in customers:
        out.append(ledger.customer_event(customer, f"Customer {customer}"))
    out.append(ledger.customer_event("c0", "Customer zero, renamed"))
    for n in range(60):
        customer = rng.choice(customers)
        currency = rng.choice(["EUR", "EUR", "USD"])
        issued = D("2026-01-01") + timedelta(days=rng.randrange(90))
        total = rng.randrange(1_000, 400_000)
        due = issued + timedelta(days=rng.choice([0, 15, 30]))
        parts = None
        if n % 4 == 0:
            first = total // 3
            parts = [(due, first), (due, total // 3), (due + timedelta(30), total - 2 * first)]
        invoice_id, issued_event = ledger.issue(
            customer, total, issued, due, currency=currency, installments=parts
        )
        out.append(issued_event)
        if n % 9 == 0:
            out.append(issued_event)  # a redelivery
        later = issued + timedelta(days=rng.randrange(1, 60))

        def money(amount: int, currency: str = currency) -> Money:
            return Money.of_minor(amount, currency)

        for step in rng.sample(range(12), k=rng.randrange(1, 6)):
            later += timedelta(days=rng.randrange(0, 9))
            match step:
                case 0 | 1:
                    part = rng.randrange(1, total)
                    payment_id, received = ledger.received(
                        customer, part, later, currency, reference=rng.choice([None, "REMIT-9"])
                    )
                    allocated = ledger.allocated(
                        payment_id, invoice_id, part, later, customer, currency
                    )
                    applied = ledger.applied(
                        invoice_id,
                        part,
                        later,
                        currency=currency,
                        discount=rng.choice([0, 0, 100]),
                        payment_id=payment_id,
                    )
                    out += [received, allocated, applied]
                    if rng.random() < 0.3:
                        out.append(applied)  # a duplicate
                    if rng.random() < 0.3:
                        alloc = pay.PaymentAllocated.model_validate(allocated.payload)
                        out.append(
                            ledger.on_invoice(
                                invoice_id,
                                inv.PaymentUnapplied(
                                    invoice_id=invoice_id,
                                    allocation_id=alloc.allocation_id,
                                    amount=money(part),
                                    reason="wrong invoice",
                                    unapplied_on=later,
                                    discount_reversed=rng.choice([None, money(100)]),
                                ),
                            )
                        )
                        out.append(
                            ledger.on_payment(
                                payment_id,
                                pay.PaymentUnallocated(
                                    payment_id=payment_id,
                                    allocation_id=alloc.allocation_id,
                                    invoice_id=invoice_id,
                                    amount=money(part),
                                    reason="wrong invoice",
                                    unallocated_on=later,
                                ),
                                customer,
                            )
                        )
                    if rng.random() < 0.3:
                        out.append(
                            ledger.on_payment(
                                payment_id,
                                rng.choice(
                                    [
                                        pay.PaymentRefunded(
                                            payment_id=payment_id,
                                            amount=money(part // 2),
                                            refunded_on=later,
                                            reason="asked",
                                        ),
                                        pay.PaymentReversed(
                                            payment_id=payment_id,
                                            amount=money(part),
                                            reversed_on=later,
                                            reason="bank",
                                            kind="chargeback",
                                        ),
                                    ]
                                ),
                                customer,
                            )
                        )
                case 2:
                    out.append(
                        ledger.on_invoice(
                            invoice_id, inv.InvoicePaid(invoice_id=invoice_id, paid_on=later)
                        )
                    )
                case 3:
                    dispute = inv.DisputeOpened(
                        invoice_id=invoice_id,
                        dispute_id=uuid.uuid4(),
                        amount=money(total // 2),
                        reason="damaged",
                        opened_on=later,
                    )
                    disputes.append((invoice_id, dispute.dispute_id))
                    out.append(ledger.on_invoice(invoice_id, dispute))
                case 4:
                    if disputes:
                        # sometimes a dispute of another invoice, through this invoice's stream
                        on_invoice, dispute_id = rng.choice(disputes)
                        outcome = rng.choice(["accepted", "rejected"])
                        out.append(
                            ledger.on_invoice(
                                invoice_id,
                                inv.DisputeResolved(
                                    invoice_id=invoice_id if rng.random() < 0.5 else on_invoice,
                                    dispute_id=dispute_id,
                                    outcome=outcome,
                                    credit_note_id=uuid.uuid4() if outcome == "accepted" else None,
                                    resolved_on=later,
                                ),
                            )
                        )
                case 5:
                    out.append(
                        ledger.on_invoice(
                            invoice_id,
                            inv.LateFeeCharged(
                                invoice_id=invoice_id,
                                fee_id=uuid.uuid4(),
                                amount=money(1_500),
                                reason="late",
                                charged_on=later,
                            ),
                        )
                    )
                case 6:
                    out.append(
                        ledger.on_invoice(
                            invoice_id,
                            inv.CreditNoteIssued(
                                invoice_id=invoice_id,
                                credit_note_id=uuid.uuid4(),
                                number=rng.choice([None, f"CN-{rng.randrange(10_000)}"]),
                                amount=money(total // 4),
                                reason="goodwill",
                                issued_on=later,
                            ),
                        )
                    )
                case 7:
                    out.append(
                        ledger.on_invoice(
                            invoice_id,
                            inv.InvoiceVoided(
                                invoice_id=invoice_id, reason="error", voided_on=later
                            ),
                        )
                    )
                case 8:
                    out.append(
                        ledger.on_invoice(
                            invoice_id,
                            inv.InvoiceWrittenOff(
                                invoice_id=invoice_id,
                                amount=money(total // 2),
                                reason="bankrupt",
                                written_off_on=later,
                            ),
                        )
                    )
                case 9:
                    out.append(
                        ledger.on_invoice(
                            invoice_id,
                            inv.InvoiceReopened(invoice_id=invoice_id, reason="bounced"),
                        )
                    )
                case 10:
                    new_due = due + timedelta(days=rng.randrange(-10, 40))
                    out.append(
                        ledger.on_invoice(
                            invoice_id,
                            inv.InvoiceDueDateChanged(
                                invoice_id=invoice_id,
                                previous_due_date=due,
                                new_due_date=new_due,
                                reason="agreed",
                            ),
                        )
                    )
                case 11:
                    stale = ledger.on_invoice(
                        invoice_id,
                        inv.InvoicePaid(invoice_id=invoice_id, paid_on=later),
                    )
                    # an old version of the stream: the projectors must both ignore it
                    out.append(stale.model_copy(update={"stream_version": 1}))
    # events about an invoice and a payment this projection never saw begin
    ghost = uuid.uuid4()
    ledger.customers[ghost] = "c1"
    ledger.versions[f"invoice-{ghost}"] = 1
    out.append(ledger.applied(ghost, 500, D("2026-02-01")))
    out.append(
        ledger.on_payment(
            ghost,
            pay.PaymentRefunded(
                payment_id=ghost,
                amount=Money.of_minor(5, "EUR"),
                refunded_on=D("2026-02-01"),
                reason="x",
            ),
            "c1",
        )
    )
    # the order the topics interleave in: per stream in order, streams shuffled together
    streams: dict[str, list[EventEnvelope]] = {}
    for envelope in out:
        streams.setdefault(envelope.stream_id, []).append(envelope)
    queues = list(streams.values())
    mixed: list[EventEnvelope] = []
    while queues:
        queue = rng.choice(queues)
        mixed.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return mixed


def replayed(envelope: EventEnvelope) -> tuple[Recorded, Any]:
    """The envelope as a rebuild decodes it from its record: one msgspec pass (every event of
    these histories is a current version of a projected type, so none falls back to pydantic)."""
    if envelope.event_type not in PROJECTED_TYPES:
        return envelope, None
    decoded = REPLAY.decode(envelope.event_type, envelope.to_json_bytes())
    assert decoded is not None, envelope
    return decoded, decoded.payload


REPLAY = ReplayDecoder(PROJECTED_TYPES)


@pytest.mark.parametrize("decoding", ["pydantic", "replay"])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_batched_projector_writes_what_the_live_projector_writes(
    admin_engine: AsyncEngine, two_schemas: tuple[str, str], seed: int, decoding: str
) -> None:
    sessions = make_sessionmaker(admin_engine)
    live_schema, batched_schema = two_schemas
    ledger = Ledger(sessions, f"t{uuid.uuid4().hex[:8]}", Tables(live_schema))
    events = history(ledger, seed)

    projector = Projector(Tables(live_schema), gated=False)
    async with sessions() as session, session.begin():
        for envelope in events:
            await projector.apply(session, envelope)

    batched = BatchProjector(Tables(batched_schema))
    for start in range(0, len(events), 37):
        async with sessions() as session, session.begin():
            for envelope in events[start : start + 37]:
                if decoding == "replay":
                    recorded, event = replayed(envelope)
                else:
                    recorded, event = envelope, BatchProjector.decode(envelope)
                if event is not None:
                    batched.apply(recorded, event)
            await write(session, batched.take_writes())

    async with sessions() as session:
        expected = await checksums(session, Tables(live_schema))
        written = await checksums(session, Tables(batched_schema))
    assert written == expected
    assert all(not value.startswith("0:") for value in written.values()), written


def test_only_the_types_both_projectors_apply_are_decoded() -> None:
    """Types outside PROJECTED_TYPES are skipped before validation (a rebuild meets tens of
    thousands of drafts); a projected type is still validated and an invalid one raises."""
    from services.reporting.projections import batch, projector

    assert set(batch._INVOICE_CHANGES) == set(projector._INVOICE_CHANGES)
    assert set(batch._PAYMENT_CHANGES) == set(projector._PAYMENT_CHANGES)
    assert projector.PROJECTED_TYPES >= set(batch._INVOICE_CHANGES) | set(batch._PAYMENT_CHANGES)

    def broken(event_type: str) -> EventEnvelope:
        return EventEnvelope(
            event_id=uuid.uuid4(),
            event_type=event_type,
            schema_version=1,
            stream_id=f"invoice-{uuid.uuid4()}",
            stream_version=1,
            occurred_at="2026-03-01T00:00:00Z",
            recorded_at="2026-03-01T00:00:00Z",
            tenant_id="acme",
            actor="user:u",
            payload={"invoice_id": "not a uuid"},
        )

    assert BatchProjector.decode(broken(inv.InvoiceDrafted.event_type)) is None
    with pytest.raises(ValueError):
        BatchProjector.decode(broken(inv.InvoiceIssued.event_type))
