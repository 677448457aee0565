"""The journal's test scenario: the events the invoice and payments services would publish,
delivered to both reporting consumer groups (the projector and the journal), and a check that
the stored journal balances per entry and overall."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.domain.postings import JournalEntry, assert_balanced
from services.reporting.projections.journal import JournalProjector
from services.reporting.projections.journal_store import LedgerTables, entries_after
from services.reporting.projections.tables import Tables
from services.reporting.tests.conftest import Ledger
from services.reporting.tests.test_postings import allocation, issued, money, received
from shared.contracts import invoice as inv
from shared.contracts import payments as pay
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload

SCHEMA = "reporting"
DAY0 = date(2026, 1, 5)
T = LedgerTables(SCHEMA)


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


class JournalLedger(Ledger):
    """A ``Ledger`` whose deliveries reach the journal projector too (its own transaction, as
    its own consumer group would)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], tenant: str) -> None:
        super().__init__(sessions, tenant, Tables(SCHEMA))
        self.journal = JournalProjector(SCHEMA)
        self.delivered: list[EventEnvelope] = []

    async def deliver(self, *envelopes: EventEnvelope) -> None:
        await super().deliver(*envelopes)
        await self.post(*envelopes)
        self.delivered.extend(envelopes)

    async def post(self, *envelopes: EventEnvelope) -> list[JournalEntry]:
        """Only the journal (e.g. a redelivery to its group)."""
        posted: list[JournalEntry] = []
        async with self.sessions() as session, session.begin():
            for envelope in envelopes:
                posted += await self.journal.apply(session, envelope)
        return posted

    def invoice_event(self, event: inv.InvoiceIssued) -> EventEnvelope:
        self.customers[event.invoice_id] = event.customer_id
        self.versions[f"invoice-{event.invoice_id}"] = 1  # InvoiceDrafted came first
        return self.envelope(f"invoice-{event.invoice_id}", event, event.customer_id)

    def payment_event(
        self, payment_id: uuid.UUID, event: EventPayload, customer: str
    ) -> EventEnvelope:
        return self.envelope(f"payment-{payment_id}", event, customer)

    async def functional(self, currency: str) -> None:
        """Fix the tenant's functional currency (as `PUT /v1/ledger/settings` does)."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                text(
                    f"""INSERT INTO {T.settings} (tenant_id, functional_currency, chosen_by)
                        VALUES (:t, :c, 'admin')"""
                ),
                {"t": self.tenant, "c": currency},
            )

    async def rates(self, *rows: tuple[str, str, date, str]) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                text(
                    f"""INSERT INTO {T.fx_rates} (tenant_id, currency, to_currency, rate_date, rate)
                        VALUES (:t, :c, :to, :on, :rate)"""
                ),
                [
                    {"t": self.tenant, "c": c, "to": to, "on": on, "rate": Decimal(rate)}
                    for c, to, on, rate in rows
                ],
            )


async def run_scenario(ledger: JournalLedger) -> dict[str, uuid.UUID]:
    """EUR functional (the default), EUR and USD invoices: issue, partial payment (allocation
    and application), late fee, credit note, early-payment discount, over-payment refunded,
    write-off. Returns the invoice ids by customer."""
    await ledger.rates(
        ("USD", "EUR", day(0), "0.9200"),
        ("USD", "EUR", day(8), "0.9500"),
        ("USD", "EUR", day(12), "0.9100"),
    )
    acme = issued("acme", 100000, 20000, "EUR", day(0), "INV-J-001")
    globex = issued("globex", 50000, 5000, "USD", day(1), "INV-J-002")
    initech = issued("initech", 9999, 0, "EUR", day(2), "INV-J-003")
    await ledger.deliver(*(ledger.invoice_event(i) for i in (acme, globex, initech)))

    await ledger.deliver(
        ledger.on_invoice(
            acme.invoice_id,
            inv.LateFeeCharged(
                invoice_id=acme.invoice_id,
                fee_id=uuid.uuid4(),
                amount=money(2500, "EUR"),
                reason="30 days late",
                charged_on=day(40),
                debit_note_number="DN-J-1",
            ),
        ),
        ledger.on_invoice(
            acme.invoice_id,
            inv.CreditNoteIssued(
                invoice_id=acme.invoice_id,
                credit_note_id=uuid.uuid4(),
                number="CN-J-1",
                amount=money(12000, "EUR"),
                reason="two units returned",
                issued_on=day(41),
            ),
        ),
    )
    partial = received(60000, "EUR", "acme", day(45))
    allocated, applied = allocation(partial, acme, 60000, on=day(45))
    await ledger.deliver(
        ledger.payment_event(partial.payment_id, partial, "acme"),
        ledger.payment_event(partial.payment_id, allocated, "acme"),
        ledger.on_invoice(acme.invoice_id, applied),
    )

    cash = received(60000, "USD", "globex", day(8))
    allocated, applied = allocation(cash, globex, 53900, discount=1100, on=day(8))
    await ledger.deliver(
        ledger.payment_event(cash.payment_id, cash, "globex"),
        ledger.payment_event(cash.payment_id, allocated, "globex"),
        ledger.on_invoice(globex.invoice_id, applied),
        ledger.on_invoice(
            globex.invoice_id, inv.InvoicePaid(invoice_id=globex.invoice_id, paid_on=day(8))
        ),
        ledger.payment_event(
            cash.payment_id,
            pay.PaymentRefunded(
                payment_id=cash.payment_id,
                amount=money(6100, "USD"),
                refunded_on=day(12),
                reason="over-payment",
            ),
            "globex",
        ),
    )
    await ledger.deliver(
        ledger.on_invoice(
            initech.invoice_id,
            inv.InvoiceWrittenOff(
                invoice_id=initech.invoice_id,
                amount=money(9999, "EUR"),
                reason="customer vanished",
                written_off_on=day(120),
            ),
        )
    )
    return {"acme": acme.invoice_id, "globex": globex.invoice_id, "initech": initech.invoice_id}


async def stored_journal(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> list[JournalEntry]:
    async with sessions() as session:
        return [s.entry for s in await entries_after(session, T, tenant, 0, 1_000_000)]


async def assert_journal_balanced(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> Sequence[JournalEntry]:
    """Balanced as read back (every entry, and the journal), and in SQL over the raw lines, so
    a row the fold would hide still counts."""
    entries = await stored_journal(sessions, tenant)
    assert_balanced(entries)
    async with sessions() as session:
        off = (
            await session.execute(
                text(
                    f"""SELECT entry_id, currency, SUM(amount_minor) AS amount
                        FROM {T.lines} WHERE tenant_id = :t
                        GROUP BY entry_id, currency HAVING SUM(amount_minor) <> 0
                        UNION ALL
                        SELECT entry_id, 'functional', SUM(functional_minor)
                        FROM {T.lines} WHERE tenant_id = :t
                        GROUP BY entry_id HAVING SUM(functional_minor) <> 0"""
                ),
                {"t": tenant},
            )
        ).all()
    assert off == [], off
    return entries


async def run_reversals_scenario(ledger: JournalLedger) -> None:
    """USD functional; a USD invoice paid from a EUR payment (two currencies, so the allocation
    goes through the conversions account and realises FX), the application taken back on both
    sides and the cash charged back; a second invoice voided."""
    await ledger.functional("USD")
    await ledger.rates(("EUR", "USD", day(0), "1.0800"), ("EUR", "USD", day(5), "1.1000"))
    invoice = issued("umbrella", 10000, 1000, "USD", day(0), "INV-R-001")
    doomed = issued("umbrella", 5000, 0, "USD", day(1), "INV-R-002")
    await ledger.deliver(ledger.invoice_event(invoice), ledger.invoice_event(doomed))

    cash = received(10000, "EUR", "umbrella", day(5))
    allocated, applied = allocation(cash, invoice, 11000, payment_amount=10000, on=day(5))
    await ledger.deliver(
        ledger.payment_event(cash.payment_id, cash, "umbrella"),
        ledger.payment_event(cash.payment_id, allocated, "umbrella"),
        ledger.on_invoice(invoice.invoice_id, applied),
    )
    await ledger.deliver(
        ledger.payment_event(
            cash.payment_id,
            pay.PaymentUnallocated(
                payment_id=cash.payment_id,
                allocation_id=allocated.allocation_id,
                invoice_id=invoice.invoice_id,
                amount=allocated.amount,
                payment_amount=allocated.payment_amount,
                reason="chargeback",
                unallocated_on=day(9),
            ),
            "umbrella",
        ),
        ledger.on_invoice(
            invoice.invoice_id,
            inv.PaymentUnapplied(
                invoice_id=invoice.invoice_id,
                allocation_id=applied.allocation_id,
                amount=applied.amount,
                reason="chargeback",
                unapplied_on=day(9),
            ),
        ),
        ledger.payment_event(
            cash.payment_id,
            pay.PaymentReversed(
                payment_id=cash.payment_id,
                amount=money(10000, "EUR"),
                reversed_on=day(9),
                reason="card holder disputed",
                kind="chargeback",
            ),
            "umbrella",
        ),
        ledger.on_invoice(
            doomed.invoice_id,
            inv.InvoiceVoided(invoice_id=doomed.invoice_id, reason="duplicate", voided_on=day(2)),
        ),
    )
