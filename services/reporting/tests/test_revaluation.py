"""Period-end revaluation (pure): open foreign receivables and unapplied cash revalued at the
period-end rate into unrealized FX, reversed the next day, so a later payment realizes FX
against the original carrying value exactly as without a revaluation."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting.domain.ledger_exports import render_beancount
from services.reporting.domain.postings import (
    AccountRole,
    Books,
    JournalEntry,
    RateLookup,
    assert_balanced,
    trial_balance,
)
from services.reporting.domain.revaluation import (
    REVALUATION_KIND,
    REVERSAL_KIND,
    Revaluation,
    books_as_of,
    entry_ids,
    open_documents,
    revaluations,
    reversal_date,
)
from services.reporting.tests.test_ledger_exports import bean_check
from services.reporting.tests.test_postings import (
    AR,
    TENANT,
    UNAPPLIED,
    Journal,
    Simulation,
    allocation,
    issued,
    money,
    received,
)
from shared.contracts import invoice as inv
from shared.contracts import payments as pay

ISSUE = date(2026, 1, 15)
PERIOD_END = date(2026, 1, 31)
NEXT = date(2026, 2, 1)
GAIN, LOSS = "Income:FX:UnrealizedGain", "Expenses:FX:UnrealizedLoss"


def usd_rates(*rows: tuple[date, str]) -> RateLookup:
    """USD->EUR: the latest rate on or before the day, like ``fx_rates``."""
    table = sorted((day, Decimal(rate)) for day, rate in rows)

    def lookup(currency: str, on: date) -> Decimal:
        assert currency == "USD", currency
        found = [rate for day, rate in table if day <= on]
        assert found, f"no USD rate on or before {on}"
        return found[-1]

    return lookup


def eur_journal(period_end_rate: str = "0.9500", later_rate: str = "0.9300") -> Journal:
    """EUR functional; USD at 0.90 at issue, ``period_end_rate`` at the period end, then
    ``later_rate`` from the 10th of the next month."""
    rates = usd_rates(
        (ISSUE, "0.9000"), (PERIOD_END, period_end_rate), (date(2026, 2, 10), later_rate)
    )
    return Journal(functional="EUR", rates=rates)


def revalue(journal: Journal, period_end: date = PERIOD_END) -> list[Revaluation]:
    """What the application does: the books as of the period end, folded from the journal."""
    documents = open_documents(books_as_of(journal.entries, period_end), journal.functional)
    return revaluations(TENANT, journal.functional, period_end, documents, journal.rates)


def post(journal: Journal, found: list[Revaluation]) -> list[JournalEntry]:
    """Post as the store would: into the journal only (the projector's books are refolded from
    the rows, which ``test_the_books_ignore_revaluation_entries`` shows changes nothing)."""
    entries = [e for r in found for e in (r.entry, r.reversal)]
    journal.entries.extend(entries)
    assert_balanced(journal.entries)
    return entries


def balance_on(journal: Journal, account: str, currency: str, day: date) -> tuple[int, int]:
    dated = [e for e in journal.entries if e.date <= day]
    return trial_balance(dated).get((account, currency), (0, 0))


def usd_invoice(journal: Journal, amount: int = 100000) -> inv.InvoiceIssued:
    invoice = issued("c1", amount, 0, "USD", ISSUE, "INV-USD-1")
    journal.post(invoice)
    return invoice


# --------------------------------------------------------------------- receivables


def test_a_rate_rise_revalues_an_open_receivable_at_an_unrealized_gain() -> None:
    journal = eur_journal("0.9500")
    invoice = usd_invoice(journal)  # 1000.00 USD carried at 900.00 EUR
    [found] = revalue(journal)

    assert (found.document.kind, found.document.document_id) == ("invoice", invoice.invoice_id)
    assert (found.document.amount, found.document.carrying, found.revalued) == (
        100000,
        90000,
        95000,
    )
    assert found.difference == 5000 and found.rate == Decimal("0.95")
    entry = found.entry
    assert entry.kind == REVALUATION_KIND and entry.date == PERIOD_END
    assert entry.entry_id == f"reval:2026-01-31:{invoice.invoice_id}"
    assert (entry.invoice_id, entry.customer_id, entry.document_number) == (
        invoice.invoice_id,
        "c1",
        "INV-USD-1",
    )
    # functional-only lines, as postings.py writes FX and rounding: document currency, amount 0
    assert [
        (x.role, x.account, x.currency, x.amount, x.functional_amount) for x in entry.lines
    ] == [
        (AccountRole.RECEIVABLES, AR, "USD", 0, 5000),
        (AccountRole.FX_UNREALIZED_GAIN, GAIN, "USD", 0, -5000),
    ]
    post(journal, [found])
    assert balance_on(journal, AR, "USD", PERIOD_END) == (100000, 95000)
    assert balance_on(journal, GAIN, "USD", PERIOD_END) == (0, -5000)


def test_a_rate_fall_revalues_an_open_receivable_at_an_unrealized_loss() -> None:
    journal = eur_journal("0.8500")
    usd_invoice(journal)
    [found] = revalue(journal)

    assert found.difference == -5000
    assert [(x.account, x.amount, x.functional_amount) for x in found.entry.lines] == [
        (AR, 0, -5000),
        (LOSS, 0, 5000),
    ]
    post(journal, [found])
    assert balance_on(journal, AR, "USD", PERIOD_END) == (100000, 85000)
    assert balance_on(journal, LOSS, "USD", PERIOD_END) == (0, 5000)


def test_the_reversal_on_the_next_day_brings_the_receivable_back_to_its_carrying_value() -> None:
    journal = eur_journal("0.9500")
    invoice = usd_invoice(journal)
    [found] = revalue(journal)
    post(journal, [found])

    reversal = found.reversal
    assert reversal.kind == REVERSAL_KIND
    assert reversal.date == NEXT == reversal_date(PERIOD_END)
    assert reversal.entry_id == f"reval-reversal:2026-01-31:{invoice.invoice_id}"
    assert reversal.lines == tuple(line.negated() for line in found.entry.lines)
    assert reversal.source_event_id != found.entry.source_event_id
    assert balance_on(journal, AR, "USD", NEXT) == (100000, 90000)
    assert balance_on(journal, GAIN, "USD", NEXT) == (0, 0)


@pytest.mark.parametrize("rate", ["0.9500", "0.8500"])
def test_a_later_payment_realizes_fx_exactly_as_without_the_revaluation(rate: str) -> None:
    revalued, control = eur_journal(rate), eur_journal(rate)
    invoice = issued("c1", 100000, 0, "USD", ISSUE, "INV-USD-1")
    revalued.post(invoice)
    control.post(invoice)
    post(revalued, revalue(revalued))
    # the projector refolds a document's books from all its rows, revaluations included
    assert Books().after(revalued.entries) == revalued.books == control.books

    payday = date(2026, 2, 12)  # USD at 0.93: 930.00 EUR against 900.00 carried
    cash = received(100000, "USD", "c1", payday)
    allocated, applied = allocation(cash, invoice, 100000, on=payday)
    posted = {}
    for journal in (revalued, control):
        journal.books = Books().after(journal.entries)
        posted[id(journal)] = [
            [(x.account, x.currency, x.amount, x.functional_amount) for x in e.lines]
            for event in (cash, allocated, applied)
            for e in journal.post(event, "c1")
        ]
    assert posted[id(revalued)] == posted[id(control)]
    for journal in (revalued, control):
        assert journal.balance(AR, "USD") == (0, 0)
        assert journal.balance("Income:FX:RealizedGain", "USD") == (0, -3000)
    for account in (GAIN, LOSS):  # unrealized only at the period end
        assert revalued.balance(account, "USD") == (0, 0)
    assert balance_on(revalued, AR, "USD", PERIOD_END) != balance_on(control, AR, "USD", PERIOD_END)


def test_a_partly_paid_receivable_is_revalued_on_what_is_still_open() -> None:
    journal = eur_journal("0.9500")
    invoice = usd_invoice(journal)
    paid_on = date(2026, 1, 20)  # still 0.90
    cash = received(40000, "USD", "c1", paid_on)
    journal.post(cash, "c1")
    for event in allocation(cash, invoice, 40000, on=paid_on):
        journal.post(event, "c1")
    [found] = revalue(journal)
    assert (found.document.amount, found.document.carrying, found.revalued) == (
        60000,
        54000,
        57000,
    )


# ---------------------------------------------------------------------- payments


def test_unapplied_foreign_cash_is_revalued_too_a_rate_rise_being_a_loss() -> None:
    journal = eur_journal("0.9500")
    cash = received(50000, "USD", "c2", ISSUE)
    journal.post(cash, "c2")
    [found] = revalue(journal)

    assert (found.document.kind, found.document.role) == ("payment", AccountRole.UNAPPLIED_CASH)
    assert (found.document.amount, found.document.carrying, found.revalued) == (
        -50000,
        -45000,
        -47500,
    )
    assert found.entry.payment_id == cash.payment_id and found.entry.invoice_id is None
    assert [(x.account, x.amount, x.functional_amount) for x in found.entry.lines] == [
        (UNAPPLIED, 0, -2500),
        (LOSS, 0, 2500),
    ]
    post(journal, [found])
    assert balance_on(journal, UNAPPLIED, "USD", PERIOD_END) == (-50000, -47500)
    assert balance_on(journal, UNAPPLIED, "USD", NEXT) == (-50000, -45000)


def test_cash_refunded_after_a_revaluation_leaves_nothing_in_functional_currency() -> None:
    journal = eur_journal("0.9500")
    cash = received(50000, "USD", "c2", ISSUE)
    journal.post(cash, "c2")
    post(journal, revalue(journal))
    journal.books = Books().after(journal.entries)
    journal.post(
        pay.PaymentRefunded(
            payment_id=cash.payment_id,
            amount=money(50000, "USD"),
            refunded_on=date(2026, 2, 3),
            reason="sent twice",
        ),
        "c2",
    )
    assert journal.balance(UNAPPLIED, "USD") == (0, 0)
    assert journal.balance("Assets:Bank", "USD") == (0, 0)


# ------------------------------------------------------------------ left alone


def test_documents_settled_or_closed_by_the_period_end_are_not_revalued() -> None:
    journal = eur_journal("0.9500")
    paid = usd_invoice(journal)
    cash = received(100000, "USD", "c1", date(2026, 1, 20))
    journal.post(cash, "c1")
    for event in allocation(cash, paid, 100000, on=date(2026, 1, 20)):
        journal.post(event, "c1")
    written_off = issued("c3", 20000, 0, "USD", ISSUE, "INV-USD-2")
    voided = issued("c3", 30000, 0, "USD", ISSUE, "INV-USD-3")
    credited = issued("c3", 40000, 0, "USD", ISSUE, "INV-USD-4")
    for invoice in (written_off, voided, credited):
        journal.post(invoice)
    journal.post(
        inv.InvoiceWrittenOff(
            invoice_id=written_off.invoice_id,
            amount=money(20000, "USD"),
            reason="gone",
            written_off_on=date(2026, 1, 25),
        )
    )
    journal.post(
        inv.InvoiceVoided(invoice_id=voided.invoice_id, reason="duplicate", voided_on=ISSUE)
    )
    journal.post(
        inv.CreditNoteIssued(
            invoice_id=credited.invoice_id,
            credit_note_id=uuid.uuid4(),
            number="CN-1",
            amount=money(40000, "USD"),
            reason="all returned",
            issued_on=date(2026, 1, 28),
        )
    )
    assert revalue(journal) == []


def test_functional_currency_documents_unmoved_rates_and_later_documents_post_nothing() -> None:
    journal = eur_journal("0.9000")  # the period-end rate is the issue rate
    usd_invoice(journal)
    journal.post(issued("c4", 5000, 0, "EUR", ISSUE, "INV-EUR-1"))
    journal.post(received(7000, "EUR", "c4", ISSUE), "c4")
    journal.post(issued("c5", 5000, 0, "USD", NEXT + timedelta(days=3), "INV-USD-9"))
    books = books_as_of(journal.entries, PERIOD_END)
    assert [d.currency for d in open_documents(books, "EUR")] == ["USD"]
    assert revalue(journal) == []


def test_a_second_run_yields_the_same_entries_and_ids() -> None:
    journal = eur_journal("0.9500")
    invoice = usd_invoice(journal)
    journal.post(received(50000, "USD", "c2", ISSUE), "c2")
    first = revalue(journal)
    post(journal, first)
    again = revalue(journal)  # the revaluation entries are not in the books
    assert [(r.entry, r.reversal) for r in again] == [(r.entry, r.reversal) for r in first]
    assert {r.entry.entry_id for r in first} >= {entry_ids(PERIOD_END, invoice.invoice_id)[0]}
    assert len({e.entry_id for e in journal.entries}) == len(journal.entries)
    assert len({e.source_event_id for e in journal.entries}) == len(journal.entries)


def test_revaluations_render_to_beancount_that_bean_check_accepts(tmp_path: Path) -> None:
    journal = eur_journal("0.9500")
    usd_invoice(journal)
    journal.post(received(50000, "USD", "c2", ISSUE), "c2")
    post(journal, revalue(journal))
    chunk = render_beancount(journal.entries, operating_currency="EUR", cursor="c")
    assert bean_check(tmp_path, chunk.text) == ""
    assert GAIN in chunk.open_accounts and LOSS in chunk.open_accounts
    assert "50.00 EUR" in chunk.text


# ----------------------------------------------------------------------- property


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_journal_revalues_and_reverses_to_the_carrying_values_and_keeps_posting_right(
    data: st.DataObject,
) -> None:
    """USD functional, EUR and JPY documents (rates move daily): revalue at some day, then go
    on posting. At the period end each revalued account holds the revalued value, the next day
    its carrying value; the books never see the revaluation; a document settled later leaves
    nothing in functional currency, revaluation included."""
    sim = Simulation(data)
    for _ in range(data.draw(st.integers(1, 25))):
        sim.step()
    period_end = sim.day
    found = revalue(sim.journal, period_end)
    post(sim.journal, found)
    for r in found:
        document = r.document.document_id

        def account(
            day: date, role: AccountRole = r.document.role, doc: uuid.UUID = document
        ) -> int:
            return sum(
                line.functional_amount
                for entry in sim.journal.entries
                if entry.date <= day and doc in (entry.invoice_id, entry.payment_id)
                for line in entry.lines
                if line.role is role
            )

        assert account(period_end) == r.revalued
        assert account(reversal_date(period_end)) == r.document.carrying
    assert Books().after(sim.journal.entries) == sim.journal.books
    assert revalue(sim.journal, period_end) == found  # a second run: the same ids, nothing new

    for _ in range(data.draw(st.integers(0, 25))):
        sim.step()
    entries = sim.journal.entries
    assert_balanced(entries)
    assert Books().after(entries) == sim.journal.books
    for invoice in sim.invoices:
        if invoice.open == 0:
            receivable = [
                line.functional_amount
                for entry in entries
                if entry.invoice_id == invoice.event.invoice_id
                for line in entry.lines
                if line.role is AccountRole.RECEIVABLES
            ]
            assert sum(receivable) == 0
