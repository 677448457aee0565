"""The posting projection: given events, then journal entries; balanced after every scenario."""

from __future__ import annotations

import inspect
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting.domain.postings import (
    NON_POSTING,
    POSTING_EVENT_TYPES,
    AccountRole,
    Books,
    EventMeta,
    JournalEntry,
    JournalLine,
    MissingDocument,
    RateLookup,
    UnbalancedEntry,
    assert_balanced,
    postings_for,
    postings_for_envelope,
    receivables_by_customer,
    trial_balance,
)
from shared.contracts import credit, dunning
from shared.contracts import invoice as inv
from shared.contracts import payments as pay
from shared.events.registry import EventPayload
from shared.money import Money
from shared.testing import envelope_of

TENANT = "acme"
DAY0 = date(2024, 1, 1)
_BASE_RATES = {"EUR": Decimal("1.0800"), "JPY": Decimal("0.0067"), "KWD": Decimal("3.2500")}


def rate_of(currency: str, on: date) -> Decimal:
    """A rate that moves every day, so FX differences really occur."""
    return _BASE_RATES[currency] * (1 + Decimal((on - DAY0).days % 13) / 100)


def fixed_rate(value: str) -> RateLookup:
    return lambda currency, on: Decimal(value)


def money(amount: int, currency: str = "USD") -> Money:
    return Money.of_minor(amount, currency)


@dataclass
class Journal:
    """Posts events one at a time, keeping the books as a projection would."""

    functional: str = "USD"
    rates: RateLookup = rate_of
    books: Books = field(default_factory=Books)
    entries: list[JournalEntry] = field(default_factory=list)

    def post(self, payload: EventPayload, customer: str | None = None) -> list[JournalEntry]:
        meta = EventMeta(uuid.uuid4(), TENANT, customer)
        posted = postings_for(
            payload.event_type, payload, meta, self.functional, self.rates, self.books
        )
        self.books = self.books.after(posted)
        self.entries.extend(posted)
        assert_balanced(self.entries)
        return posted

    def balance(self, account: str, currency: str) -> tuple[int, int]:
        return trial_balance(self.entries).get((account, currency), (0, 0))


def issued(
    customer: str = "c1",
    subtotal: int = 10000,
    tax: int = 2000,
    currency: str = "USD",
    on: date = DAY0,
    number: str = "INV-1",
    invoice_id: uuid.UUID | None = None,
) -> inv.InvoiceIssued:
    total = money(subtotal + tax, currency)
    return inv.InvoiceIssued(
        invoice_id=invoice_id or uuid.uuid4(),
        customer_id=customer,
        number=number,
        currency=currency,
        issue_date=on,
        due_date=on + timedelta(days=30),
        total=total,
        subtotal=money(subtotal, currency),
        tax_total=money(tax, currency),
        installments=[inv.Installment(due_date=on + timedelta(days=30), amount=total)],
        credit_check=inv.CreditCheckRecord(outcome="passed"),
    )


def received(
    amount: int, currency: str = "USD", customer: str = "c1", on: date = DAY0
) -> pay.PaymentReceived:
    return pay.PaymentReceived(
        payment_id=uuid.uuid4(),
        customer_id=customer,
        amount=money(amount, currency),
        method="bank_transfer",
        received_on=on,
    )


def allocation(
    payment: pay.PaymentReceived,
    invoice: inv.InvoiceIssued,
    amount: int,
    payment_amount: int | None = None,
    discount: int = 0,
    on: date = DAY0,
) -> tuple[pay.PaymentAllocated, inv.PaymentApplied]:
    allocation_id = uuid.uuid4()
    paid = payment_amount if payment_amount is not None else amount
    allocated = pay.PaymentAllocated(
        payment_id=payment.payment_id,
        allocation_id=allocation_id,
        invoice_id=invoice.invoice_id,
        amount=money(amount, invoice.currency),
        payment_amount=money(paid, payment.amount.currency),
        rate=format(Decimal(amount) / Decimal(paid), "f") if paid != amount else "1",
        allocated_on=on,
    )
    applied = inv.PaymentApplied(
        invoice_id=invoice.invoice_id,
        allocation_id=allocation_id,
        payment_id=payment.payment_id,
        amount=money(amount, invoice.currency),
        applied_on=on,
        discount_taken=money(discount, invoice.currency),
    )
    return allocated, applied


def lines_of(entry: JournalEntry) -> list[tuple[str, str, int, int]]:
    return [(x.account, x.currency, x.amount, x.functional_amount) for x in entry.lines]


AR, BANK, SALES = "Assets:AccountsReceivable", "Assets:Bank", "Income:Sales"
TAX, UNAPPLIED = "Liabilities:TaxPayable", "Liabilities:UnappliedCash"
CLEARING = "Assets:CashApplicationClearing"


# ------------------------------------------------------------------------- invoices


def test_an_issued_invoice_debits_receivables_and_credits_revenue_and_tax() -> None:
    journal = Journal()
    invoice = issued(subtotal=10000, tax=2000)
    [entry] = journal.post(invoice, "c1")

    assert lines_of(entry) == [
        (AR, "USD", 12000, 12000),
        (SALES, "USD", -10000, -10000),
        (TAX, "USD", -2000, -2000),
    ]
    assert entry.invoice_id == invoice.invoice_id
    assert entry.document_number == "INV-1"
    assert entry.customer_id == "c1"
    assert entry.date == DAY0
    assert entry.entry_id == f"{entry.source_event_id}:issued"


def test_posting_the_same_event_again_gives_the_same_entries() -> None:
    invoice = issued()
    meta = EventMeta(uuid.uuid4(), TENANT, "c1")
    first = postings_for("InvoiceIssued", invoice, meta, "USD", rate_of)
    again = postings_for("InvoiceIssued", invoice.model_dump(mode="json"), meta, "USD", rate_of)
    assert first == again


def test_a_foreign_invoice_is_valued_at_its_issue_rate_with_rounding_on_its_own_line() -> None:
    journal = Journal(rates=fixed_rate("1.5"))
    [entry] = journal.post(issued(subtotal=1001, tax=1001, currency="EUR"))

    # 10.01 EUR x 1.5 = 15.015 -> 15.02 twice, but 20.02 EUR x 1.5 = 30.03 USD exactly.
    assert lines_of(entry) == [
        (AR, "EUR", 2002, 3003),
        (SALES, "EUR", -1001, -1502),
        (TAX, "EUR", -1001, -1502),
        ("Expenses:FX:Rounding", "EUR", 0, 1),
    ]
    assert entry.rate == Decimal("1.5")


def test_a_credit_note_gives_back_revenue_and_tax_in_the_invoice_proportion() -> None:
    journal = Journal()
    invoice = issued(subtotal=10000, tax=2000)
    journal.post(invoice)
    note = inv.CreditNoteIssued(
        invoice_id=invoice.invoice_id,
        credit_note_id=uuid.uuid4(),
        number="CN-1",
        amount=money(1200),
        reason="damaged",
        issued_on=DAY0 + timedelta(days=3),
    )
    [entry] = journal.post(note)

    assert lines_of(entry) == [
        ("Income:SalesReturns", "USD", 1000, 1000),
        (TAX, "USD", 200, 200),
        (AR, "USD", -1200, -1200),
    ]
    assert "CN-1" in entry.narration and "damaged" in entry.narration
    assert entry.document_number == "INV-1"
    assert journal.balance(AR, "USD") == (10800, 10800)


def test_a_late_fee_raises_the_receivable_against_fee_income() -> None:
    journal = Journal()
    invoice = issued()
    journal.post(invoice)
    fee = inv.LateFeeCharged(
        invoice_id=invoice.invoice_id,
        fee_id=uuid.uuid4(),
        amount=money(500),
        reason="30 days late",
        charged_on=DAY0 + timedelta(days=40),
        debit_note_number="DN-1",
    )
    [entry] = journal.post(fee)
    assert lines_of(entry) == [(AR, "USD", 500, 500), ("Income:LateFees", "USD", -500, -500)]
    assert entry.date == DAY0 + timedelta(days=40)


def test_a_write_off_clears_a_foreign_receivable_in_both_currencies() -> None:
    journal = Journal()
    invoice = issued(subtotal=3333, tax=667, currency="EUR")
    journal.post(invoice)
    journal.post(
        inv.CreditNoteIssued(
            invoice_id=invoice.invoice_id,
            credit_note_id=uuid.uuid4(),
            amount=money(1001, "EUR"),
            reason="goodwill",
            issued_on=DAY0 + timedelta(days=1),
        )
    )
    [entry] = journal.post(
        inv.InvoiceWrittenOff(
            invoice_id=invoice.invoice_id,
            amount=money(2999, "EUR"),
            reason="insolvent",
            written_off_on=DAY0 + timedelta(days=90),
        )
    )
    assert entry.lines[0].account == "Expenses:BadDebt"
    assert journal.balance(AR, "EUR") == (0, 0)


def test_a_void_reverses_the_invoice_and_its_fees_to_the_unit() -> None:
    journal = Journal()
    invoice = issued(subtotal=7777, tax=1555, currency="JPY")
    journal.post(invoice)
    journal.post(
        inv.LateFeeCharged(
            invoice_id=invoice.invoice_id,
            fee_id=uuid.uuid4(),
            amount=money(100, "JPY"),
            reason="late",
            charged_on=DAY0 + timedelta(days=5),
        )
    )
    [entry] = journal.post(
        inv.InvoiceVoided(
            invoice_id=invoice.invoice_id, reason="wrong customer", voided_on=DAY0 + timedelta(9)
        )
    )
    assert entry.kind == "void"
    assert trial_balance(journal.entries) == {}


# ------------------------------------------------------------------------- payments


def test_a_payment_received_is_unapplied_cash_until_allocated() -> None:
    journal = Journal()
    [entry] = journal.post(received(5000), "c1")
    assert lines_of(entry) == [(BANK, "USD", 5000, 5000), (UNAPPLIED, "USD", -5000, -5000)]
    assert entry.payment_id is not None and entry.customer_id == "c1"


def test_an_allocation_moves_cash_to_the_invoice_through_the_clearing_account() -> None:
    journal = Journal()
    invoice, payment = issued(), received(15000)
    journal.post(invoice)
    journal.post(payment)
    allocated, applied = allocation(payment, invoice, 11000, discount=200)

    [moved] = journal.post(allocated)
    assert lines_of(moved) == [(UNAPPLIED, "USD", 11000, 11000), (CLEARING, "USD", -11000, -11000)]
    application, discount = journal.post(applied)
    assert lines_of(application) == [(CLEARING, "USD", 11000, 11000), (AR, "USD", -11000, -11000)]
    assert lines_of(discount) == [("Expenses:Discounts", "USD", 200, 200), (AR, "USD", -200, -200)]
    assert discount.entry_id == f"{application.source_event_id}:discount"

    assert journal.balance(CLEARING, "USD") == (0, 0)
    assert journal.balance(AR, "USD") == (800, 800)
    assert journal.balance(UNAPPLIED, "USD") == (-4000, -4000)  # the over-payment, held


def test_the_two_halves_of_an_allocation_post_in_either_order() -> None:
    journal = Journal()
    invoice, payment = issued(), received(12000)
    journal.post(invoice)
    journal.post(payment)
    allocated, applied = allocation(payment, invoice, 12000)
    journal.post(applied)
    assert journal.balance(CLEARING, "USD") == (12000, 12000)  # in flight
    journal.post(allocated)
    assert journal.balance(CLEARING, "USD") == (0, 0)


def test_paying_a_foreign_invoice_later_realizes_the_fx_difference() -> None:
    journal = Journal()
    invoice = issued(subtotal=10000, tax=0, currency="EUR", on=DAY0)  # at 1.08
    later = DAY0 + timedelta(days=5)  # EUR at 1.08 * 1.05 = 1.134
    payment = received(10000, "EUR", on=later)
    journal.post(invoice)
    journal.post(payment)
    for event in allocation(payment, invoice, 10000, on=later):
        journal.post(event)

    assert journal.balance(AR, "EUR") == (0, 0)
    assert journal.balance(CLEARING, "EUR") == (0, 0)
    assert journal.balance("Income:FX:RealizedGain", "EUR") == (0, -(11340 - 10800))
    assert journal.balance(BANK, "EUR") == (10000, 11340)


def test_cash_in_one_currency_settles_an_invoice_in_another_through_conversions() -> None:
    journal = Journal()
    invoice = issued(subtotal=9000, tax=0, currency="EUR")  # 97.20 USD at 1.08
    payment = received(10000, "USD")
    journal.post(invoice)
    journal.post(payment)
    allocated, applied = allocation(payment, invoice, 9000, payment_amount=9900)
    [moved] = journal.post(allocated)
    journal.post(applied)

    currencies = {line.currency for line in moved.lines}
    assert currencies == {"USD", "EUR"}
    assert journal.balance("Equity:CurrencyConversions", "USD") == (-9900, -9900)
    assert journal.balance("Equity:CurrencyConversions", "EUR") == (9000, 9900)
    assert journal.balance(AR, "EUR") == (0, 0)
    # 99.00 USD of cash settled 97.20 USD of receivable.
    gain = journal.balance("Income:FX:RealizedGain", "EUR")[1]
    assert gain == -(9900 - 9720)


def test_taking_an_allocation_back_reverses_both_halves_exactly() -> None:
    journal = Journal()
    invoice = issued(subtotal=5000, tax=1000, currency="EUR")
    payment = received(6000, "EUR", on=DAY0 + timedelta(days=2))
    journal.post(invoice)
    journal.post(payment)
    before_allocation = trial_balance(journal.entries)
    allocated, applied = allocation(payment, invoice, 5900, discount=100, on=DAY0 + timedelta(2))
    journal.post(allocated)
    journal.post(applied)
    assert journal.balance("Income:FX:RealizedGain", "EUR") != (0, 0)

    unallocated = pay.PaymentUnallocated(
        payment_id=payment.payment_id,
        allocation_id=allocated.allocation_id,
        invoice_id=invoice.invoice_id,
        amount=allocated.amount,
        reason="refund",
        unallocated_on=DAY0 + timedelta(days=7),
    )
    unapplied = inv.PaymentUnapplied(
        invoice_id=invoice.invoice_id,
        allocation_id=allocated.allocation_id,
        amount=applied.amount,
        reason="refund",
        unapplied_on=DAY0 + timedelta(days=7),
        discount_reversed=money(100, "EUR"),
    )
    [reversal] = journal.post(unallocated)
    assert reversal.entry_id.endswith(":reverses_allocated")
    assert len(journal.post(unapplied)) == 2
    assert trial_balance(journal.entries) == before_allocation  # FX included, to the unit


@pytest.mark.parametrize("reversed_", [False, True])
def test_refunds_and_reversals_pay_unapplied_cash_back_out_of_the_bank(reversed_: bool) -> None:
    journal = Journal()
    payment = received(3000, "KWD")
    journal.post(payment)
    event: EventPayload
    if reversed_:
        event = pay.PaymentReversed(
            payment_id=payment.payment_id,
            amount=money(3000, "KWD"),
            reversed_on=DAY0 + timedelta(days=3),
            reason="bounced",
            kind="bounced",
        )
    else:
        event = pay.PaymentRefunded(
            payment_id=payment.payment_id,
            amount=money(1000, "KWD"),
            refunded_on=DAY0 + timedelta(days=3),
            reason="over-payment",
        )
    [entry] = journal.post(event)
    assert [x.account for x in entry.lines][:2] == [UNAPPLIED, BANK]
    left = 0 if reversed_ else 2000
    assert journal.balance(BANK, "KWD")[0] == left
    if reversed_:
        assert trial_balance(journal.entries) == {}


def test_an_event_of_an_unknown_document_asks_to_be_retried() -> None:
    note = inv.CreditNoteIssued(
        invoice_id=uuid.uuid4(),
        credit_note_id=uuid.uuid4(),
        amount=money(100),
        reason="x",
        issued_on=DAY0,
    )
    with pytest.raises(MissingDocument) as caught:
        postings_for(note.event_type, note, EventMeta(uuid.uuid4(), TENANT), "USD", rate_of)
    assert caught.value.ident == note.invoice_id


def test_an_envelope_from_a_topic_is_posted_the_same_way() -> None:
    invoice = issued()
    envelope = envelope_of(
        TENANT, invoice, stream_id=f"invoice-{invoice.invoice_id}", customer_id="c1"
    )
    [entry] = postings_for_envelope(envelope, "USD", rate_of)
    assert entry.source_event_id == envelope.event_id
    assert entry.tenant_id == TENANT


# ------------------------------------------------------------- coverage and checks


def _contract_event_types() -> set[str]:
    types = set()
    for module in (inv, pay, credit, dunning):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, EventPayload) and "event_type" in vars(value):
                types.add(value.event_type)
    return types


def test_every_contract_event_is_classified_as_posting_or_not() -> None:
    contract = _contract_event_types()
    assert contract - POSTING_EVENT_TYPES - NON_POSTING == set()
    assert not POSTING_EVENT_TYPES & NON_POSTING
    assert POSTING_EVENT_TYPES <= contract


@pytest.mark.parametrize("event_type", sorted(NON_POSTING))
def test_non_financial_events_post_nothing(event_type: str) -> None:
    meta = EventMeta(uuid.uuid4(), TENANT)
    assert postings_for(event_type, {}, meta, "USD", rate_of) == []


def test_assert_balanced_names_the_unbalanced_entry() -> None:
    [entry] = postings_for(
        "InvoiceIssued", issued(), EventMeta(uuid.uuid4(), TENANT), "USD", rate_of
    )
    broken = JournalEntry(
        **{
            **entry.__dict__,
            "lines": (*entry.lines, JournalLine(AccountRole.BANK, BANK, "USD", 1, 1)),
        }
    )
    with pytest.raises(UnbalancedEntry, match="USD off by 1"):
        assert_balanced([broken])


# ----------------------------------------------------------------------- property


@dataclass
class _Invoice:
    event: inv.InvoiceIssued
    open: int
    credited: bool = False
    closed: bool = False  # voided or written off
    live_allocations: int = 0


@dataclass
class _Payment:
    event: pay.PaymentReceived
    unapplied: int


CURRENCIES = ("USD", "EUR", "JPY")
# Allocating needs an open invoice and cash of the same customer: drawn more often, so that
# sequences get that far.
ACTIONS: tuple[str, ...] = ("issue", "receive", "allocate") * 3 + ("unallocate",) * 2
ACTIONS += ("fee", "credit", "refund", "reverse", "write_off", "void")
CUSTOMERS = ("c1", "c2")


class Simulation:
    """Draws a valid sequence of financial events (as the services would allow them) and keeps
    what each invoice should still be owed."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.journal = Journal()
        self.day = DAY0
        self.invoices: list[_Invoice] = []
        self.payments: list[_Payment] = []
        self.allocations: list[tuple[pay.PaymentAllocated, inv.PaymentApplied, int]] = []

    def draw_amount(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def step(self) -> None:
        self.day += timedelta(days=self.draw_amount(0, 4))
        action = self.data.draw(st.sampled_from(ACTIONS))
        getattr(self, action)()

    def _open_invoice(self) -> _Invoice | None:
        candidates = [i for i in self.invoices if not i.closed]
        return self.data.draw(st.sampled_from(candidates)) if candidates else None

    def issue(self) -> None:
        currency = self.data.draw(st.sampled_from(CURRENCIES))
        customer = self.data.draw(st.sampled_from(CUSTOMERS))
        subtotal, tax = self.draw_amount(0, 500_000), self.draw_amount(0, 100_000)
        event = issued(customer, subtotal, tax, currency, self.day, f"INV-{len(self.invoices)}")
        self.journal.post(event, customer)
        self.invoices.append(_Invoice(event, subtotal + tax))

    def _on_invoice(self, invoice: _Invoice, payload: EventPayload) -> None:
        self.journal.post(payload, invoice.event.customer_id)

    def fee(self) -> None:
        invoice = self._open_invoice()
        if invoice is None:
            return
        amount = self.draw_amount(1, 5000)
        self._on_invoice(
            invoice,
            inv.LateFeeCharged(
                invoice_id=invoice.event.invoice_id,
                fee_id=uuid.uuid4(),
                amount=money(amount, invoice.event.currency),
                reason="late",
                charged_on=self.day,
            ),
        )
        invoice.open += amount

    def credit(self) -> None:
        invoice = self._open_invoice()
        if invoice is None or invoice.open == 0:
            return
        amount = self.draw_amount(1, invoice.open)
        self._on_invoice(
            invoice,
            inv.CreditNoteIssued(
                invoice_id=invoice.event.invoice_id,
                credit_note_id=uuid.uuid4(),
                amount=money(amount, invoice.event.currency),
                reason="credit",
                issued_on=self.day,
            ),
        )
        invoice.open -= amount
        invoice.credited = True

    def write_off(self) -> None:
        invoice = self._open_invoice()
        if invoice is None or invoice.open == 0:
            return
        self._on_invoice(
            invoice,
            inv.InvoiceWrittenOff(
                invoice_id=invoice.event.invoice_id,
                amount=money(invoice.open, invoice.event.currency),
                reason="bad debt",
                written_off_on=self.day,
            ),
        )
        invoice.open, invoice.closed = 0, True

    def void(self) -> None:
        invoice = self._open_invoice()
        if invoice is None or invoice.credited or invoice.live_allocations:
            return
        self._on_invoice(
            invoice,
            inv.InvoiceVoided(
                invoice_id=invoice.event.invoice_id, reason="void", voided_on=self.day
            ),
        )
        invoice.open, invoice.closed = 0, True

    def receive(self) -> None:
        currency = self.data.draw(st.sampled_from(CURRENCIES))
        customer = self.data.draw(st.sampled_from(CUSTOMERS))
        event = received(self.draw_amount(1, 700_000), currency, customer, self.day)
        self.journal.post(event, customer)
        self.payments.append(_Payment(event, event.amount.amount))

    def allocate(self) -> None:
        pairs = [
            (p, i)
            for p in self.payments
            for i in self.invoices
            if p.unapplied > 0
            and i.open > 0
            and not i.closed
            and p.event.customer_id == i.event.customer_id
        ]
        if not pairs:
            return
        payment, invoice = self.data.draw(st.sampled_from(pairs))
        same = payment.event.amount.currency == invoice.event.currency
        amount = self.draw_amount(1, invoice.open)
        paid = amount if same else self.draw_amount(1, payment.unapplied)
        if same and amount > payment.unapplied:
            amount = paid = payment.unapplied
        discount = self.draw_amount(0, invoice.open - amount)
        allocated, applied = allocation(
            payment.event, invoice.event, amount, paid, discount, self.day
        )
        halves: list[EventPayload] = [allocated, applied]
        if self.data.draw(st.booleans()):
            halves.reverse()  # the two topics arrive in any order
        for half in halves:
            self.journal.post(half, invoice.event.customer_id)
        payment.unapplied -= paid
        invoice.open -= amount + discount
        invoice.live_allocations += 1
        self.allocations.append((allocated, applied, discount))

    def unallocate(self) -> None:
        live = [a for a in self.allocations if not self._invoice(a[0].invoice_id).closed]
        if not live:
            return
        allocated, applied, discount = self.data.draw(st.sampled_from(live))
        self.allocations.remove((allocated, applied, discount))
        invoice = self._invoice(allocated.invoice_id)
        customer = invoice.event.customer_id
        self.journal.post(
            pay.PaymentUnallocated(
                payment_id=allocated.payment_id,
                allocation_id=allocated.allocation_id,
                invoice_id=allocated.invoice_id,
                amount=allocated.amount,
                payment_amount=allocated.payment_amount,
                reason="re-allocation",
                unallocated_on=self.day,
            ),
            customer,
        )
        self.journal.post(
            inv.PaymentUnapplied(
                invoice_id=applied.invoice_id,
                allocation_id=applied.allocation_id,
                amount=applied.amount,
                reason="re-allocation",
                unapplied_on=self.day,
                discount_reversed=applied.discount_taken,
            ),
            customer,
        )
        invoice.open += applied.amount.amount + discount
        invoice.live_allocations -= 1
        payment = next(p for p in self.payments if p.event.payment_id == allocated.payment_id)
        payment.unapplied += allocated.payment_amount.amount

    def _invoice(self, invoice_id: uuid.UUID) -> _Invoice:
        return next(i for i in self.invoices if i.event.invoice_id == invoice_id)

    def _pay_back(self, reversal: bool) -> None:
        candidates = [p for p in self.payments if p.unapplied > 0]
        if not candidates:
            return
        payment = self.data.draw(st.sampled_from(candidates))
        amount = money(self.draw_amount(1, payment.unapplied), payment.event.amount.currency)
        event: EventPayload
        if reversal:
            event = pay.PaymentReversed(
                payment_id=payment.event.payment_id,
                amount=amount,
                reversed_on=self.day,
                reason="chargeback",
                kind="chargeback",
            )
        else:
            event = pay.PaymentRefunded(
                payment_id=payment.event.payment_id,
                amount=amount,
                refunded_on=self.day,
                reason="refund",
            )
        self.journal.post(event, payment.event.customer_id)
        payment.unapplied -= amount.amount

    def refund(self) -> None:
        self._pay_back(reversal=False)

    def reverse(self) -> None:
        self._pay_back(reversal=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_sequence_of_financial_events_posts_a_balanced_reconciling_journal(
    data: st.DataObject,
) -> None:
    sim = Simulation(data)
    for _ in range(data.draw(st.integers(1, 40))):
        sim.step()
    entries = sim.journal.entries
    assert_balanced(entries)  # per entry and overall, both currencies

    expected: dict[tuple[str, str], int] = defaultdict(int)
    for invoice in sim.invoices:
        expected[invoice.event.customer_id, invoice.event.currency] += invoice.open
    receivables = receivables_by_customer(entries)
    assert {k: v[0] for k, v in receivables.items()} == {k: v for k, v in expected.items() if v}

    balances = trial_balance(entries)
    for currency in CURRENCIES:
        assert balances.get((CLEARING, currency), (0, 0)) == (0, 0)
        unapplied = sum(p.unapplied for p in sim.payments if p.event.amount.currency == currency)
        assert -balances.get((UNAPPLIED, currency), (0, 0))[0] == unapplied
    for invoice in sim.invoices:  # a settled receivable leaves nothing in functional currency
        if invoice.open == 0:
            own = [
                line.functional_amount
                for entry in entries
                if entry.invoice_id == invoice.event.invoice_id
                for line in entry.lines
                if line.role is AccountRole.RECEIVABLES
            ]
            assert sum(own) == 0
