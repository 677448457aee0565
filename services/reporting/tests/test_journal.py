"""The journal projector against the real reporting schema: balanced after every scenario,
idempotent on redelivery, functional currency frozen on first use, missing rates raise."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.application.ledger import reconciliation
from services.reporting.domain.postings import (
    receivables_by_customer,
    trial_balance,
)
from services.reporting.projections.journal import MissingRate, UnpostedDocument
from services.reporting.projections.journal_store import (
    DEFAULT_FUNCTIONAL_CURRENCY,
    functional_currency,
)
from services.reporting.tests.journal_helpers import (
    JournalLedger,
    T,
    assert_journal_balanced,
    day,
    run_reversals_scenario,
    run_scenario,
)
from services.reporting.tests.test_postings import issued, money
from shared.contracts import invoice as inv
from shared.errors import ConcurrencyConflict

pytestmark = pytest.mark.integration


@pytest.fixture
def journal_ledger(
    reporting_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> JournalLedger:
    return JournalLedger(reporting_sessions, tenant)


async def _count(sessions: async_sessionmaker[AsyncSession], tenant: str) -> tuple[int, int]:
    async with sessions() as session:
        entries = await session.scalar(
            text(f"SELECT COUNT(*) FROM {T.entries} WHERE tenant_id = :t"), {"t": tenant}
        )
        lines = await session.scalar(
            text(f"SELECT COUNT(*) FROM {T.lines} WHERE tenant_id = :t"), {"t": tenant}
        )
    return int(entries or 0), int(lines or 0)


async def test_the_scenario_posts_a_balanced_journal(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    invoices = await run_scenario(journal_ledger)
    entries = await assert_journal_balanced(reporting_sessions, journal_ledger.tenant)

    kinds = Counter(e.kind for e in entries)
    assert kinds == {
        "issued": 3,
        "late_fee": 1,
        "credit_note": 1,
        "received": 2,
        "allocated": 2,
        "applied": 2,
        "discount": 1,
        "refund": 1,
        "write_off": 1,
    }
    assert {e.functional_currency for e in entries} == {DEFAULT_FUNCTIONAL_CURRENCY}
    # acme: 1200.00 + 25.00 fee - 120.00 credit - 600.00 paid; globex settled; initech written off
    assert receivables_by_customer(entries) == {("acme", "EUR"): (50500, 50500)}
    usd = next(e for e in entries if e.invoice_id == invoices["globex"] and e.kind == "issued")
    assert usd.rate == Decimal("0.92")
    assert [(x.currency, x.amount, x.functional_amount) for x in usd.lines[:1]] == [
        ("USD", 55000, 50600)
    ]
    # positions increase in posting order
    async with reporting_sessions() as session:
        positions = list(
            await session.scalars(
                text(f"SELECT position FROM {T.entries} WHERE tenant_id = :t ORDER BY position"),
                {"t": journal_ledger.tenant},
            )
        )
    assert len(positions) == len(entries) == len(set(positions))


async def test_a_redelivered_event_changes_nothing(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await run_scenario(journal_ledger)
    before = await _count(reporting_sessions, journal_ledger.tenant)

    again = await journal_ledger.post(*journal_ledger.delivered)
    reversed_again = await journal_ledger.post(*reversed(journal_ledger.delivered))

    assert again == reversed_again == []
    assert await _count(reporting_sessions, journal_ledger.tenant) == before
    await assert_journal_balanced(reporting_sessions, journal_ledger.tenant)


async def test_the_functional_currency_defaults_to_the_reporting_currency_and_stays(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = journal_ledger.tenant
    async with reporting_sessions() as session, session.begin():
        await session.execute(
            text(
                f"INSERT INTO {T.tenant_settings} (tenant_id, reporting_currency) VALUES (:t, 'USD')"
            ),
            {"t": tenant},
        )
    await journal_ledger.deliver(journal_ledger.invoice_event(issued("c1", 1000, 0, "USD", day(0))))
    async with reporting_sessions() as session, session.begin():
        await session.execute(
            text(f"UPDATE {T.tenant_settings} SET reporting_currency = 'GBP' WHERE tenant_id = :t"),
            {"t": tenant},
        )
        assert await functional_currency(session, T, tenant) == "USD"
    [entry] = (await assert_journal_balanced(reporting_sessions, tenant))[:1]
    assert entry.functional_currency == "USD"


async def test_without_a_reporting_currency_the_first_event_sets_it_and_needs_no_rate(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A business in one currency (here JPY, no reporting currency, no rates) posts at once."""
    await journal_ledger.post(journal_ledger.invoice_event(issued("c1", 5000, 0, "JPY", day(0))))
    [entry] = await assert_journal_balanced(reporting_sessions, journal_ledger.tenant)
    assert entry.functional_currency == "JPY"
    assert entry.lines[0].functional_amount == entry.lines[0].amount


async def test_a_missing_rate_raises_and_posts_nothing_until_the_rate_is_loaded(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await journal_ledger.functional("EUR")
    invoice = journal_ledger.invoice_event(issued("c1", 500000, 0, "JPY", day(3)))
    with pytest.raises(MissingRate, match="JPY->EUR"):
        await journal_ledger.post(invoice)
    assert await _count(reporting_sessions, journal_ledger.tenant) == (0, 0)

    # the rate of an earlier day is used when the day itself has none
    await journal_ledger.rates(("JPY", "EUR", day(1), "0.0061"))
    [entry] = await journal_ledger.post(invoice)  # what `ar dlq redrive` does
    assert entry.rate == Decimal("0.0061")
    assert entry.lines[0].functional_amount == 305000  # 3050.00 EUR
    await assert_journal_balanced(reporting_sessions, journal_ledger.tenant)


async def test_an_event_of_a_document_never_posted_raises(journal_ledger: JournalLedger) -> None:
    invoice = issued("c1", 1000, 0, "EUR", day(0))
    journal_ledger.customers[invoice.invoice_id] = "c1"
    fee = journal_ledger.on_invoice(
        invoice.invoice_id,
        inv.LateFeeCharged(
            invoice_id=invoice.invoice_id,
            fee_id=invoice.invoice_id,
            amount=money(100, "EUR"),
            reason="late",
            charged_on=day(40),
        ),
    )
    with pytest.raises(UnpostedDocument):
        await journal_ledger.post(fee)


async def test_a_batch_meeting_another_writer_of_a_tenant_backs_off_instead_of_deadlocking(
    reporting_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    """Holding tenant A's journal lock, a transaction does not wait for tenant B's (another
    instance may hold B and wait for A): it raises ConcurrencyConflict, which the consumer
    runtime answers by re-applying the batch one record per transaction."""
    a, b = (
        JournalLedger(reporting_sessions, tenant),
        JournalLedger(reporting_sessions, tenant + "b"),
    )
    first = a.invoice_event(issued("c1", 1000, 0, "EUR", day(0)))
    second = b.invoice_event(issued("c2", 1000, 0, "EUR", day(0)))
    async with reporting_sessions() as other, other.begin():
        await a.journal.apply(other, b.invoice_event(issued("c3", 1000, 0, "EUR", day(0))))
        async with reporting_sessions() as batch, batch.begin():
            await a.journal.apply(batch, first)
            with pytest.raises(ConcurrencyConflict):
                await a.journal.apply(batch, second)
    # alone in a transaction of its own (what the runtime does next) it waits and posts
    assert [e.kind for e in await b.post(second)] == ["issued"]


async def test_reversals_voids_and_a_cross_currency_allocation_balance_and_reconcile(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await run_reversals_scenario(journal_ledger)
    entries = await assert_journal_balanced(reporting_sessions, journal_ledger.tenant)

    assert {e.functional_currency for e in entries} == {"USD"}
    assert receivables_by_customer(entries) == {("umbrella", "USD"): (11000, 11000)}
    balances = trial_balance(entries)
    for account in ("Assets:CashApplicationClearing", "Liabilities:UnappliedCash"):
        assert not [key for key in balances if key[0] == account], balances
    assert ("Equity:CurrencyConversions", "EUR") not in balances
    async with reporting_sessions() as session:
        report = await reconciliation(session, T, journal_ledger.tenant, date.today(), date.today())
    assert report["differences"] == 0, report
