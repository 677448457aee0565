"""The Invoice aggregate: given events / when a command / then the events it decides."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.invoice.domain.invoice import (
    DisputeStatus,
    InvalidEventSequence,
    InvoiceState,
    InvoiceStatus,
    apply_or_reject_payment,
    apply_payment,
    change_due_date,
    charge_late_fee,
    draft_invoice,
    evolve,
    issue_credit_note,
    issue_invoice,
    open_dispute,
    payment_refusal,
    reject_payment,
    replay,
    resolve_dispute,
    unapply_payment,
    update_draft,
    void_invoice,
    write_off,
)
from shared.contracts import invoice as invoice_events
from shared.contracts.invoice import (
    Address,
    CreditCheckRecord,
    CreditNoteIssued,
    CustomerRegistered,
    CustomerUpdated,
    DisputeOpened,
    DisputeResolved,
    EarlyPaymentDiscount,
    Installment,
    InstallmentSpec,
    InvoiceDrafted,
    InvoiceDraftUpdated,
    InvoiceDueDateChanged,
    InvoiceIssued,
    InvoicePaid,
    InvoiceReopened,
    InvoiceVoided,
    InvoiceWrittenOff,
    LateFeeCharged,
    LineItem,
    PaymentApplicationRejected,
    PaymentApplied,
    PaymentMethod,
    PaymentTerms,
    PaymentTermsTemplateDefined,
    PaymentUnapplied,
    TaxRate,
    TermsKind,
)
from shared.errors import NotFound, StateConflict, ValidationFailed
from shared.events.registry import EventPayload, registry
from shared.money import Money, Rounding

INVOICE = uuid.UUID(int=1)
CUSTOMER = "cust-42"
ISSUED_ON = date(2026, 3, 2)
CHECK = CreditCheckRecord(outcome="passed", check_id="chk-1")
#: Net 30 with 2% off when paid within 10 days of issue.
TERMS = PaymentTerms(
    kind=TermsKind.NET,
    net_days=30,
    early_payment_discount=EarlyPaymentDiscount(percent=Decimal(2), within_days=10),
)
#: 4 x 25.00 EUR + 20% VAT = 100.00 + 20.00 = 120.00 EUR
LINES = [
    LineItem(
        description="Consulting hour",
        quantity=Decimal(4),
        unit_price=2500,
        taxes=[TaxRate(code="VAT", percent=Decimal(20))],
    )
]


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=1000 + n)


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def day(n: int) -> date:
    """``n`` days after the issue date."""
    return ISSUED_ON + timedelta(days=n)


def drafted(lines: list[LineItem] | None = None, terms: PaymentTerms = TERMS) -> list[EventPayload]:
    return draft_invoice(INVOICE, CUSTOMER, "EUR", lines or LINES, terms, "INV")


def issued(lines: list[LineItem] | None = None, terms: PaymentTerms = TERMS) -> list[EventPayload]:
    history = drafted(lines, terms)
    return history + issue_invoice(given(*history), "INV-2026-0001", ISSUED_ON, CHECK)


def given(*events: EventPayload) -> InvoiceState:
    state = replay(events)
    assert state is not None
    return state


def then(state: InvoiceState, events: list[EventPayload]) -> InvoiceState:
    for event in events:
        state = evolve(state, event)
    return state


def paid(allocation: int, amount: int, on: int = 20) -> PaymentApplied:
    return PaymentApplied(
        invoice_id=INVOICE,
        allocation_id=uid(allocation),
        payment_id=uid(100 + allocation),
        amount=eur(amount),
        applied_on=day(on),
        discount_taken=eur(0),
    )


def credited(note: int, amount: int) -> CreditNoteIssued:
    return CreditNoteIssued(
        invoice_id=INVOICE,
        credit_note_id=uid(note),
        amount=eur(amount),
        reason="price correction",
        issued_on=day(1),
    )


def disputed(dispute: int, amount: int) -> DisputeOpened:
    return DisputeOpened(
        invoice_id=INVOICE,
        dispute_id=uid(dispute),
        amount=eur(amount),
        reason="2 hours not worked",
        opened_on=day(3),
    )


# ============================================================================= draft


def test_draft_invoice_records_the_draft() -> None:
    events = draft_invoice(
        INVOICE,
        CUSTOMER,
        "EUR",
        LINES,
        TERMS,
        "INV",
        description="March consulting",
        po_reference="PO-7",
        notes="Thank you",
        accepted_payment_methods=[PaymentMethod.BANK_TRANSFER, PaymentMethod.CARD],
    )
    assert events == [
        InvoiceDrafted(
            invoice_id=INVOICE,
            customer_id=CUSTOMER,
            currency="EUR",
            lines=LINES,
            terms=TERMS,
            description="March consulting",
            po_reference="PO-7",
            notes="Thank you",
            accepted_payment_methods=[PaymentMethod.BANK_TRANSFER, PaymentMethod.CARD],
            series="INV",
        )
    ]
    state = given(*events)
    assert state.status is InvoiceStatus.DRAFT
    assert state.total == eur(12000)  # totals are computed for drafts too
    assert state.totals.subtotal == eur(10000)
    assert state.open_amount == eur(0)  # nothing is owed before issue
    assert state.version == 1


def test_a_draft_accepts_every_payment_method_unless_told_otherwise() -> None:
    (event,) = drafted()
    assert isinstance(event, InvoiceDrafted)
    assert event.accepted_payment_methods == list(PaymentMethod)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"lines": []}, "lines"),
        ({"series": "has space"}, "series"),
        ({"series": ""}, "series"),
        ({"customer_id": ""}, "customer_id"),
        ({"accepted_payment_methods": [PaymentMethod.CARD, PaymentMethod.CARD]}, "accepted"),
        ({"accepted_payment_methods": []}, "accepted"),
        ({"po_reference": "P" * 101}, "po_reference"),
    ],
)
def test_draft_refuses_invalid_content(overrides: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "invoice_id": INVOICE,
        "customer_id": CUSTOMER,
        "currency": "EUR",
        "lines": LINES,
        "terms": TERMS,
        "series": "INV",
    }
    with pytest.raises(ValidationFailed) as refused:
        draft_invoice(**{**args, **overrides})
    assert field in refused.value.message or field in json.dumps(refused.value.details)


def test_update_draft_replaces_the_content_as_a_whole() -> None:
    state = given(*drafted())
    new_lines = [LineItem(description="Audit", quantity=Decimal(1), unit_price=50000)]
    new_terms = PaymentTerms(kind=TermsKind.DUE_ON_RECEIPT)
    events = update_draft(
        state,
        lines=new_lines,
        terms=new_terms,
        series="INV",
        accepted_payment_methods=[PaymentMethod.ACH],
        po_reference="PO-8",
    )
    assert events == [
        InvoiceDraftUpdated(
            invoice_id=INVOICE,
            customer_id=CUSTOMER,
            currency="EUR",
            lines=new_lines,
            terms=new_terms,
            description=None,
            po_reference="PO-8",
            notes=None,
            accepted_payment_methods=[PaymentMethod.ACH],
            series="INV",
        )
    ]
    after = then(state, events)
    assert after.total == eur(50000)
    assert after.lines == tuple(new_lines)
    assert after.accepted_payment_methods == (PaymentMethod.ACH,)
    assert after.version == 2


def test_update_draft_with_the_same_content_is_a_no_op() -> None:
    state = given(*drafted())
    assert update_draft(state, lines=LINES, terms=TERMS, series="INV") == []


def test_update_draft_refuses_invalid_lines() -> None:
    with pytest.raises(ValidationFailed):
        update_draft(given(*drafted()), lines=[], terms=TERMS, series="INV")


@pytest.mark.parametrize("history", ["issued", "void"])
def test_an_issued_or_void_invoice_cannot_be_edited(history: str) -> None:
    events = issued() if history == "issued" else drafted()
    state = given(*events)
    if history == "void":
        state = then(state, void_invoice(state, "duplicate", ISSUED_ON))
    with pytest.raises(StateConflict) as refused:
        update_draft(state, lines=LINES, terms=TERMS, series="INV")
    assert refused.value.status_code == 409
    assert refused.value.details["status"] == history


# ============================================================================= issue


def test_issue_fixes_number_dates_totals_and_schedule() -> None:
    state = given(*drafted())
    events = issue_invoice(state, "INV-2026-0001", ISSUED_ON, CHECK)
    assert events == [
        InvoiceIssued(
            invoice_id=INVOICE,
            customer_id=CUSTOMER,
            number="INV-2026-0001",
            issue_date=ISSUED_ON,
            due_date=date(2026, 4, 1),
            currency="EUR",
            total=eur(12000),
            subtotal=eur(10000),
            tax_total=eur(2000),
            installments=[Installment(due_date=date(2026, 4, 1), amount=eur(12000))],
            credit_check=CHECK,
        )
    ]
    after = then(state, events)
    assert after.status is InvoiceStatus.ISSUED
    assert (after.number, after.issue_date, after.due_date) == (
        "INV-2026-0001",
        ISSUED_ON,
        date(2026, 4, 1),
    )
    assert after.open_amount == after.collectible_amount == after.total_due == eur(12000)
    assert after.credit_check == CHECK


def test_issue_with_installment_terms_schedules_every_installment() -> None:
    terms = PaymentTerms(
        kind=TermsKind.INSTALLMENTS,
        installments=[
            InstallmentSpec(days_after_issue=0, percent=Decimal("33.33")),
            InstallmentSpec(days_after_issue=30, percent=Decimal("33.33")),
            InstallmentSpec(days_after_issue=60, percent=Decimal("33.34")),
        ],
    )
    (event,) = issue_invoice(given(*drafted(terms=terms)), "INV-1", ISSUED_ON, CHECK)
    assert isinstance(event, InvoiceIssued)
    # exact shares of 12000: 3999.6, 3999.6, 4000.8; floors 3999 + 3999 + 4000 = 11998; the
    # 2 cents left go to the largest remainders: the third (.8), then the first (.6, the
    # earlier one wins the tie with the second)
    assert [i.amount for i in event.installments] == [eur(4000), eur(3999), eur(4001)]
    assert [i.due_date for i in event.installments] == [day(0), day(30), day(60)]
    assert event.due_date == day(60)


def test_issuing_again_with_the_same_number_is_a_no_op() -> None:
    state = given(*issued())
    assert issue_invoice(state, "INV-2026-0001", ISSUED_ON, CHECK) == []
    with pytest.raises(StateConflict):
        issue_invoice(state, "INV-2026-0002", ISSUED_ON, CHECK)


def test_an_invoice_totalling_zero_cannot_be_issued() -> None:
    free = [LineItem(description="Goodwill", quantity=Decimal(1), unit_price=0)]
    with pytest.raises(ValidationFailed, match="total"):
        issue_invoice(given(*drafted(free)), "INV-1", ISSUED_ON, CHECK)


def test_a_voided_draft_cannot_be_issued() -> None:
    state = given(*drafted())
    state = then(state, void_invoice(state, "not needed", ISSUED_ON))
    with pytest.raises(StateConflict):
        issue_invoice(state, "INV-1", ISSUED_ON, CHECK)


def test_issue_refuses_a_blank_number() -> None:
    with pytest.raises(ValidationFailed):
        issue_invoice(given(*drafted()), " ", ISSUED_ON, CHECK)


def test_credit_check_records_say_who_overrode_and_why() -> None:
    with pytest.raises(ValidationError):
        CreditCheckRecord(outcome="overridden", reason="key account")
    with pytest.raises(ValidationError):
        CreditCheckRecord(outcome="passed", overridden_by="cfo")
    with pytest.raises(ValidationError):
        CreditCheckRecord.model_validate({"outcome": "failed"})
    override = CreditCheckRecord(outcome="overridden", reason="key account", overridden_by="cfo")
    state = given(*drafted())
    (event,) = issue_invoice(state, "INV-1", ISSUED_ON, override)
    assert then(state, [event]).credit_check == override


# ============================================================================== void


def test_a_draft_can_be_voided() -> None:
    state = given(*drafted())
    events = void_invoice(state, "created by mistake", date(2026, 3, 1))
    assert events == [
        InvoiceVoided(invoice_id=INVOICE, reason="created by mistake", voided_on=date(2026, 3, 1))
    ]
    assert then(state, events).status is InvoiceStatus.VOID


def test_an_issued_invoice_with_nothing_applied_can_be_voided() -> None:
    state = given(*issued())
    events = void_invoice(state, "wrong customer", day(1))
    after = then(state, events)
    assert after.status is InvoiceStatus.VOID
    assert after.open_amount == eur(0)
    assert after.voided_on == day(1)
    assert void_invoice(after, "wrong customer", day(1)) == []  # idempotent


@pytest.mark.parametrize(
    "history",
    [
        [paid(1, 1000)],
        [credited(1, 1000)],
        [paid(1, 12000, on=30), InvoicePaid(invoice_id=INVOICE, paid_on=day(30))],
    ],
    ids=["partially paid", "credited", "paid"],
)
def test_an_invoice_with_money_applied_cannot_be_voided(history: list[EventPayload]) -> None:
    with pytest.raises(StateConflict):
        void_invoice(given(*issued(), *history), "oops", day(40))


def test_void_refuses_a_blank_reason_and_a_date_before_issue() -> None:
    state = given(*issued())
    with pytest.raises(ValidationFailed):
        void_invoice(state, "  ", day(1))
    with pytest.raises(ValidationFailed, match="before the invoice's issue date"):
        void_invoice(state, "oops", day(-1))


# ========================================================================= write off


def test_write_off_writes_off_the_whole_open_amount() -> None:
    state = given(*issued(), paid(1, 5000))
    events = write_off(state, "customer insolvent", day(200))
    assert events == [
        InvoiceWrittenOff(
            invoice_id=INVOICE,
            amount=eur(7000),
            reason="customer insolvent",
            written_off_on=day(200),
        )
    ]
    after = then(state, events)
    assert after.status is InvoiceStatus.WRITTEN_OFF
    assert after.open_amount == eur(0)
    assert after.written_off_amount == eur(7000)
    assert write_off(after, "customer insolvent", day(200)) == []
    # terminal: nothing moves any more
    with pytest.raises(StateConflict):
        apply_payment(after, uid(2), uid(3), eur(100), day(201))
    with pytest.raises(StateConflict):
        void_invoice(after, "oops", day(201))
    with pytest.raises(StateConflict):
        unapply_payment(after, uid(1), "chargeback", day(201))


@pytest.mark.parametrize("history", ["draft", "paid"])
def test_only_an_open_invoice_can_be_written_off(history: str) -> None:
    if history == "draft":
        state = given(*drafted())
    else:
        state = given(*issued(), paid(1, 12000), InvoicePaid(invoice_id=INVOICE, paid_on=day(20)))
    with pytest.raises(StateConflict):
        write_off(state, "bad debt", day(100))


# ====================================================================== credit notes


def test_a_credit_note_reduces_the_open_amount() -> None:
    state = given(*issued())
    events = issue_credit_note(
        state, uid(1), eur(2000), "price correction", day(1), number="CN-0001"
    )
    assert events == [
        CreditNoteIssued(
            invoice_id=INVOICE,
            credit_note_id=uid(1),
            number="CN-0001",
            amount=eur(2000),
            reason="price correction",
            issued_on=day(1),
            dispute_id=None,
        )
    ]
    after = then(state, events)
    assert after.status is InvoiceStatus.PARTIALLY_PAID
    assert after.credited == eur(2000)
    assert after.open_amount == eur(10000)
    assert after.lines == state.lines  # issued lines never change


def test_a_credit_note_for_the_whole_open_amount_settles_the_invoice() -> None:
    state = given(*issued(), paid(1, 2000))
    events = issue_credit_note(state, uid(2), eur(10000), "cancelled order", day(5))
    assert events == [
        CreditNoteIssued(
            invoice_id=INVOICE,
            credit_note_id=uid(2),
            amount=eur(10000),
            reason="cancelled order",
            issued_on=day(5),
        ),
        InvoicePaid(invoice_id=INVOICE, paid_on=day(5)),
    ]
    assert then(state, events).status is InvoiceStatus.PAID


def test_a_credit_note_never_exceeds_the_remaining_amount() -> None:
    state = given(*issued(), paid(1, 5000))
    with pytest.raises(ValidationFailed, match="exceeds the open amount") as refused:
        issue_credit_note(state, uid(2), eur(7001), "too much", day(5))
    assert refused.value.details["open_amount"] == {"amount": 7000, "currency": "EUR"}
    assert refused.value.status_code == 422


def test_a_paid_invoice_has_nothing_left_to_credit() -> None:
    state = given(*issued(), paid(1, 12000), InvoicePaid(invoice_id=INVOICE, paid_on=day(20)))
    with pytest.raises(ValidationFailed, match="exceeds the open amount"):
        issue_credit_note(state, uid(2), eur(1), "goodwill", day(21))


@pytest.mark.parametrize(
    "amount",
    [Money.of_minor(100, "USD"), eur(0), eur(-100)],
    ids=["other currency", "zero", "negative"],
)
def test_a_credit_note_needs_a_positive_amount_in_the_invoice_currency(amount: Money) -> None:
    with pytest.raises(ValidationFailed):
        issue_credit_note(given(*issued()), uid(1), amount, "fix", day(1))


def test_a_draft_gets_no_credit_note() -> None:
    with pytest.raises(StateConflict):
        issue_credit_note(given(*drafted()), uid(1), eur(100), "fix", day(1))


def test_credit_notes_are_idempotent_on_their_id() -> None:
    state = given(*issued(), credited(1, 1000))
    assert issue_credit_note(state, uid(1), eur(1000), "price correction", day(1)) == []
    with pytest.raises(ValidationFailed, match="already recorded"):
        issue_credit_note(state, uid(1), eur(999), "price correction", day(1))


def test_a_credit_note_can_only_cite_an_accepted_dispute() -> None:
    state = given(*issued(), disputed(7, 2000))
    with pytest.raises(ValidationFailed, match="not an accepted dispute"):
        issue_credit_note(state, uid(1), eur(1000), "fix", day(5), dispute_id=uid(7))
    with pytest.raises(ValidationFailed, match="not an accepted dispute"):
        issue_credit_note(state, uid(1), eur(1000), "fix", day(5), dispute_id=uid(8))


# ========================================================================== payments


def test_a_partial_payment_leaves_the_invoice_partially_paid() -> None:
    state = given(*issued())
    events = apply_payment(state, uid(1), uid(101), eur(5000), day(20))
    assert events == [paid(1, 5000, on=20)]
    after = then(state, events)
    assert after.status is InvoiceStatus.PARTIALLY_PAID
    assert after.paid == eur(5000)
    assert after.open_amount == eur(7000)
    assert after.payments == {uid(1): eur(5000)}


def test_the_payment_that_settles_the_invoice_marks_it_paid() -> None:
    state = given(*issued(), paid(1, 5000))
    events = apply_payment(state, uid(2), uid(102), eur(7000), day(25))
    assert events == [paid(2, 7000, on=25), InvoicePaid(invoice_id=INVOICE, paid_on=day(25))]
    after = then(state, events)
    assert after.status is InvoiceStatus.PAID
    assert after.paid_on == day(25)
    assert after.open_amount == eur(0)


def test_over_application_is_refused() -> None:
    state = given(*issued(), paid(1, 5000))
    with pytest.raises(ValidationFailed, match="over-application") as refused:
        apply_payment(state, uid(2), uid(102), eur(7001), day(25))
    assert refused.value.details["amount"] == {"amount": 7001, "currency": "EUR"}


def test_payments_are_idempotent_on_the_allocation_id() -> None:
    state = given(*issued(), paid(1, 5000))
    assert apply_payment(state, uid(1), uid(101), eur(5000), day(20)) == []
    with pytest.raises(ValidationFailed, match="already recorded"):
        apply_payment(state, uid(1), uid(101), eur(4000), day(20))
    # the repeat of the payment that settled the invoice is still a no-op, not a 409
    settled = given(*issued(), paid(1, 12000), InvoicePaid(invoice_id=INVOICE, paid_on=day(20)))
    assert apply_payment(settled, uid(1), uid(101), eur(12000), day(20)) == []


@pytest.mark.parametrize(
    ("amount", "on", "error"),
    [
        (Money.of_minor(100, "GBP"), day(20), ValidationFailed),
        (eur(0), day(20), ValidationFailed),
        (eur(-5), day(20), ValidationFailed),
        (eur(100), day(-1), ValidationFailed),
    ],
    ids=["other currency", "zero", "negative", "before issue"],
)
def test_payments_refuse_bad_amounts_and_dates(
    amount: Money, on: date, error: type[Exception]
) -> None:
    with pytest.raises(error):
        apply_payment(given(*issued()), uid(1), uid(101), amount, on)


def test_payments_apply_only_to_issued_invoices() -> None:
    with pytest.raises(StateConflict):
        apply_payment(given(*drafted()), uid(1), uid(101), eur(100), day(1))
    settled = given(*issued(), paid(1, 12000), InvoicePaid(invoice_id=INVOICE, paid_on=day(20)))
    with pytest.raises(StateConflict):
        apply_payment(settled, uid(2), uid(102), eur(100), day(21))


def test_paying_the_discounted_amount_inside_the_window_takes_the_discount() -> None:
    # 2/10: 2% of 120.00 = 2.40, so 117.60 paid by day 10 settles the invoice
    state = given(*issued())
    events = apply_payment(state, uid(1), uid(101), eur(11760), day(10))
    assert events == [
        PaymentApplied(
            invoice_id=INVOICE,
            allocation_id=uid(1),
            payment_id=uid(101),
            amount=eur(11760),
            applied_on=day(10),
            discount_taken=eur(240),
        ),
        InvoicePaid(invoice_id=INVOICE, paid_on=day(10)),
    ]
    after = then(state, events)
    assert after.discounts_taken == eur(240)
    assert after.open_amount == eur(0)
    assert after.status is InvoiceStatus.PAID


def test_no_discount_after_the_window_or_for_a_payment_that_does_not_settle() -> None:
    state = given(*issued())
    (late,) = apply_payment(state, uid(1), uid(101), eur(11760), day(11))
    assert isinstance(late, PaymentApplied)
    assert late.discount_taken == eur(0)
    assert then(state, [late]).open_amount == eur(240)
    (partial,) = apply_payment(state, uid(1), uid(101), eur(5000), day(2))
    assert isinstance(partial, PaymentApplied)
    assert partial.discount_taken == eur(0)
    full = apply_payment(state, uid(1), uid(101), eur(12000), day(2))
    assert isinstance(full[0], PaymentApplied)
    assert full[0].discount_taken == eur(0)  # paid in full: nothing to discount
    assert isinstance(full[1], InvoicePaid)


def test_the_discount_applies_to_what_remains_after_earlier_payments() -> None:
    # 50.00 paid, 70.00 left: 2% = 1.40, so 68.60 settles it inside the window
    state = given(*issued(), paid(1, 5000, on=1))
    events = apply_payment(state, uid(2), uid(102), eur(6860), day(9))
    assert isinstance(events[0], PaymentApplied)
    assert events[0].discount_taken == eur(140)
    assert events[1] == InvoicePaid(invoice_id=INVOICE, paid_on=day(9))


# ========================================================================= unapplying


def test_unapplying_a_partial_payment_reopens_the_amount() -> None:
    state = given(*issued(), paid(1, 5000))
    events = unapply_payment(state, uid(1), "payment bounced", day(22))
    assert events == [
        PaymentUnapplied(
            invoice_id=INVOICE,
            allocation_id=uid(1),
            amount=eur(5000),
            reason="payment bounced",
            unapplied_on=day(22),
            discount_reversed=eur(0),
        )
    ]
    after = then(state, events)
    assert after.status is InvoiceStatus.ISSUED
    assert after.open_amount == eur(12000)
    assert after.payments == {}


def test_unapplying_from_a_paid_invoice_reopens_it() -> None:
    state = given(
        *issued(),
        paid(1, 4000),
        paid(2, 8000),
        InvoicePaid(invoice_id=INVOICE, paid_on=day(20)),
    )
    events = unapply_payment(state, uid(2), "chargeback", day(40))
    assert events[1:] == [InvoiceReopened(invoice_id=INVOICE, reason="chargeback")]
    after = then(state, events)
    assert after.status is InvoiceStatus.PARTIALLY_PAID
    assert after.open_amount == eur(8000)
    assert after.paid_on is None


def test_unapplying_a_discounted_payment_withdraws_the_discount() -> None:
    state = given(*issued())
    state = then(state, apply_payment(state, uid(1), uid(101), eur(11760), day(5)))
    events = unapply_payment(state, uid(1), "refund", day(15))
    assert isinstance(events[0], PaymentUnapplied)
    assert events[0].discount_reversed == eur(240)
    after = then(state, events)
    assert after.status is InvoiceStatus.ISSUED
    assert after.discounts_taken == eur(0)
    assert after.open_amount == eur(12000)


def test_unapplying_is_idempotent_and_an_allocation_is_never_reapplied() -> None:
    state = given(*issued())
    assert unapply_payment(state, uid(9), "unknown", day(1)) == []
    state = given(*issued(), paid(1, 5000))
    state = then(state, unapply_payment(state, uid(1), "re-allocation", day(21)))
    assert unapply_payment(state, uid(1), "re-allocation", day(21)) == []
    # a redelivered apply of the reversed allocation must not apply it again
    assert apply_payment(state, uid(1), uid(101), eur(5000), day(20)) == []
    assert state.unapplied == {uid(1): eur(5000)}


# =================================================== allocations the invoice cannot take


def rejected(allocation: int, amount: Money, code: str, reason: str) -> PaymentApplicationRejected:
    return PaymentApplicationRejected(
        invoice_id=INVOICE,
        allocation_id=uid(allocation),
        payment_id=uid(100 + allocation),
        amount=amount,
        code=code,
        reason=reason,
        rejected_on=day(25),
    )


def allocate(state: InvoiceState, allocation: int, amount: Money) -> list[EventPayload]:
    """The payments service's allocation ``allocation`` arriving: applied on day 20 or rejected
    on day 25."""
    return apply_or_reject_payment(
        state, uid(allocation), uid(100 + allocation), amount, day(20), day(25)
    )


def _amounts(state: InvoiceState) -> tuple[object, ...]:
    return (
        state.status,
        state.paid,
        state.discounts_taken,
        state.credited,
        state.written_off_amount,
        state.open_amount,
        state.collectible_amount,
        state.payments,
        state.unapplied,
    )


def test_an_allocation_over_the_open_amount_is_rejected_not_refused() -> None:
    # payments saw 70.00 open, then a 50.00 credit note left 20.00: the 70.00 allocation is late
    state = given(*issued(), paid(1, 5000), credited(2, 5000))
    events = allocate(state, 3, eur(7000))
    assert events == [
        rejected(
            3,
            eur(7000),
            "over_application",
            f"allocation of {eur(7000)} exceeds the open amount {eur(2000)} of invoice {INVOICE}",
        )
    ]
    after = then(state, events)
    assert _amounts(after) == _amounts(state)  # nothing applied, no amount moves
    assert after.open_amount == eur(2000)
    assert after.rejected == {uid(3): eur(7000)}
    assert after.version == state.version + 1


@pytest.mark.parametrize(
    "history",
    [
        [InvoiceVoided(invoice_id=INVOICE, reason="duplicate", voided_on=day(1))],
        [
            InvoiceWrittenOff(
                invoice_id=INVOICE, amount=eur(12000), reason="insolvent", written_off_on=day(5)
            )
        ],
        [paid(1, 12000), InvoicePaid(invoice_id=INVOICE, paid_on=day(20))],
    ],
    ids=["void", "written off", "paid"],
)
def test_an_allocation_for_an_invoice_that_takes_no_payments_is_not_receivable(
    history: list[EventPayload],
) -> None:
    state = given(*issued(), *history)
    (event,) = allocate(state, 3, eur(100))
    assert isinstance(event, PaymentApplicationRejected)
    assert event.code == "not_receivable"
    assert event.reason == f"invoice {INVOICE} is {state.status.value}: it takes no payments"
    after = then(state, [event])
    assert _amounts(after) == _amounts(state)
    assert after.rejected == {uid(3): eur(100)}


def test_an_allocation_in_another_currency_is_a_currency_mismatch() -> None:
    state = given(*issued())
    events = allocate(state, 3, Money.of_minor(5000, "GBP"))
    assert events == [
        rejected(
            3,
            Money.of_minor(5000, "GBP"),
            "currency_mismatch",
            f"allocation is in GBP but invoice {INVOICE} is in EUR",
        )
    ]
    after = then(state, events)
    assert _amounts(after) == _amounts(state)
    assert after.open_amount == eur(12000) and after.status is InvoiceStatus.ISSUED


def test_an_allocation_the_invoice_can_take_is_applied_as_before() -> None:
    state = given(*issued(), paid(1, 5000))
    assert payment_refusal(state, eur(7000)) is None
    assert allocate(state, 2, eur(7000)) == apply_payment(
        state, uid(2), uid(102), eur(7000), day(20)
    )
    assert allocate(state, 1, eur(5000)) == []  # a redelivered applied allocation


def test_a_rejection_is_idempotent_on_the_allocation_id() -> None:
    state = given(*issued(), credited(2, 11000))
    state = then(state, allocate(state, 3, eur(5000)))
    assert allocate(state, 3, eur(5000)) == []  # the allocation redelivered
    reason = "allocation of 50.00 EUR exceeds the open amount"
    assert (
        reject_payment(state, uid(3), uid(103), eur(5000), "over_application", reason, day(26))
        == []
    )
    with pytest.raises(ValidationFailed, match="already recorded"):
        allocate(state, 3, eur(4000))  # the same id with another amount is another command


def test_an_allocation_rejected_before_is_never_applied_later() -> None:
    state = given(*issued(), paid(1, 10000))
    state = then(state, allocate(state, 3, eur(5000)))  # 20.00 open: rejected
    # the first payment is refunded: 120.00 open, enough for the rejected allocation now
    state = then(state, unapply_payment(state, uid(1), "refund", day(21)))
    assert state.open_amount == eur(12000)
    assert apply_payment(state, uid(3), uid(103), eur(5000), day(22)) == []
    assert allocate(state, 3, eur(5000)) == []
    # payments takes the rejected allocation back: nothing was applied, nothing to unapply
    assert unapply_payment(state, uid(3), "rejected by the invoice", day(26)) == []


def test_only_an_allocation_never_applied_to_an_issued_invoice_can_be_rejected() -> None:
    reason = "late"
    with pytest.raises(StateConflict, match="draft"):
        reject_payment(
            given(*drafted()), uid(3), uid(103), eur(100), "over_application", reason, day(1)
        )
    # a draft parks its allocations until issue: allocating to one still refuses, as today
    with pytest.raises(StateConflict):
        allocate(given(*drafted()), 3, eur(100))
    assert payment_refusal(given(*drafted()), eur(10**9)) is None
    state = given(*issued(), paid(1, 5000))
    with pytest.raises(StateConflict, match="was applied"):
        reject_payment(state, uid(1), uid(101), eur(5000), "over_application", reason, day(25))
    state = then(state, unapply_payment(state, uid(1), "refund", day(21)))
    with pytest.raises(StateConflict, match="was applied"):
        reject_payment(state, uid(1), uid(101), eur(5000), "over_application", reason, day(25))


@pytest.mark.parametrize(
    ("amount", "on"),
    [(eur(0), day(20)), (eur(-5), day(20)), (eur(100), day(-1))],
    ids=["zero", "negative", "before issue"],
)
def test_allocations_that_are_wrong_rather_than_late_still_raise(amount: Money, on: date) -> None:
    state = given(*issued())
    with pytest.raises(ValidationFailed):
        apply_or_reject_payment(state, uid(3), uid(103), amount, on, day(25))


def test_rejections_replay_and_leave_every_amount_alone() -> None:
    history = [
        *issued(),
        paid(1, 5000),
        rejected(3, eur(9000), "over_application", "too much"),
        rejected(4, Money.of_minor(10, "JPY"), "currency_mismatch", "yen"),
    ]
    state = given(*history)
    assert state.version == len(history)
    assert state.status is InvoiceStatus.PARTIALLY_PAID
    assert state.paid == eur(5000) and state.open_amount == eur(7000)
    assert state.rejected == {uid(3): eur(9000), uid(4): Money.of_minor(10, "JPY")}
    assert _amounts(state) == _amounts(given(*issued(), paid(1, 5000)))


# =========================================================================== disputes


def test_opening_a_dispute_holds_the_amount_out_of_collection() -> None:
    state = given(*issued())
    events = open_dispute(state, uid(7), eur(5000), "2 hours not worked", day(3))
    assert events == [disputed(7, 5000)]
    after = then(state, events)
    assert after.disputed_amount == eur(5000)
    assert after.open_amount == eur(12000)
    assert after.collectible_amount == eur(7000)
    assert after.disputes[uid(7)].status is DisputeStatus.OPEN
    assert after.status is InvoiceStatus.ISSUED
    assert open_dispute(after, uid(7), eur(5000), "2 hours not worked", day(3)) == []


def test_a_dispute_cannot_exceed_the_undisputed_open_amount() -> None:
    state = given(*issued(), paid(1, 2000), disputed(7, 6000))
    with pytest.raises(ValidationFailed, match="exceeds the undisputed open amount"):
        open_dispute(state, uid(8), eur(4001), "more", day(4))
    assert open_dispute(state, uid(8), eur(4000), "more", day(4))


@pytest.mark.parametrize("amount", [eur(0), Money.of_minor(100, "CHF")])
def test_a_dispute_needs_a_positive_amount_in_the_invoice_currency(amount: Money) -> None:
    with pytest.raises(ValidationFailed):
        open_dispute(given(*issued()), uid(7), amount, "no", day(3))


def test_drafts_cannot_be_disputed() -> None:
    with pytest.raises(StateConflict):
        open_dispute(given(*drafted()), uid(7), eur(100), "no", day(3))


def test_a_rejected_dispute_makes_the_amount_collectible_again() -> None:
    state = given(*issued(), disputed(7, 5000))
    events = resolve_dispute(state, uid(7), "rejected", day(10), note="hours confirmed")
    assert events == [
        DisputeResolved(
            invoice_id=INVOICE,
            dispute_id=uid(7),
            outcome="rejected",
            resolution_note="hours confirmed",
            credit_note_id=None,
            resolved_on=day(10),
        )
    ]
    after = then(state, events)
    assert after.disputes[uid(7)].status is DisputeStatus.REJECTED
    assert after.collectible_amount == eur(12000)
    assert after.credited == eur(0)


def test_an_accepted_dispute_is_credited() -> None:
    state = given(*issued(), disputed(7, 5000))
    events = resolve_dispute(
        state, uid(7), "accepted", day(10), credit_note_id=uid(70), credit_note_number="CN-9"
    )
    assert events == [
        DisputeResolved(
            invoice_id=INVOICE,
            dispute_id=uid(7),
            outcome="accepted",
            credit_note_id=uid(70),
            resolved_on=day(10),
        ),
        CreditNoteIssued(
            invoice_id=INVOICE,
            credit_note_id=uid(70),
            number="CN-9",
            amount=eur(5000),
            reason="Dispute accepted: 2 hours not worked",
            issued_on=day(10),
            dispute_id=uid(7),
        ),
    ]
    after = then(state, events)
    assert after.open_amount == after.collectible_amount == eur(7000)
    assert after.disputed_amount == eur(0)
    assert after.status is InvoiceStatus.PARTIALLY_PAID
    assert after.disputes[uid(7)].credit_note_id == uid(70)


def test_accepting_the_last_open_amount_settles_the_invoice() -> None:
    state = given(*issued(), paid(1, 7000), disputed(7, 5000))
    events = resolve_dispute(state, uid(7), "accepted", day(30), credit_note_id=uid(70))
    assert [type(e) for e in events] == [DisputeResolved, CreditNoteIssued, InvoicePaid]
    assert then(state, events).status is InvoiceStatus.PAID


def test_accepting_a_dispute_on_a_settled_invoice_needs_an_unapplication_first() -> None:
    state = given(
        *issued(),
        disputed(7, 5000),
        paid(1, 12000),
        InvoicePaid(invoice_id=INVOICE, paid_on=day(20)),
    )
    with pytest.raises(ValidationFailed, match="unapply payments first"):
        resolve_dispute(state, uid(7), "accepted", day(30), credit_note_id=uid(70))
    state = then(state, unapply_payment(state, uid(1), "refund the disputed part", day(30)))
    events = resolve_dispute(state, uid(7), "accepted", day(30), credit_note_id=uid(70))
    assert then(state, events).open_amount == eur(7000)


def test_dispute_resolution_refusals() -> None:
    state = given(*issued(), disputed(7, 5000))
    with pytest.raises(NotFound):
        resolve_dispute(state, uid(8), "rejected", day(10))
    with pytest.raises(ValidationFailed, match="credit_note_id is required"):
        resolve_dispute(state, uid(7), "accepted", day(10))
    with pytest.raises(ValidationFailed, match="omit credit_note_id"):
        resolve_dispute(state, uid(7), "rejected", day(10), credit_note_id=uid(70))
    with pytest.raises(ValidationFailed, match="outcome"):
        resolve_dispute(state, uid(7), "withdrawn", day(10))
    with pytest.raises(ValidationFailed, match="before the dispute was opened"):
        resolve_dispute(state, uid(7), "rejected", day(2))
    credited_state = then(state, [credited(70, 100)])
    with pytest.raises(ValidationFailed, match="already exists"):
        resolve_dispute(credited_state, uid(7), "accepted", day(10), credit_note_id=uid(70))


def test_only_open_disputes_can_be_resolved() -> None:
    state = given(*issued(), disputed(7, 5000))
    state = then(state, resolve_dispute(state, uid(7), "rejected", day(10)))
    assert resolve_dispute(state, uid(7), "rejected", day(10)) == []  # same resolution again
    with pytest.raises(StateConflict, match="already rejected"):
        resolve_dispute(state, uid(7), "accepted", day(11), credit_note_id=uid(70))


# ========================================================================== late fees


def test_a_late_fee_is_a_debit_note_that_raises_the_amount_due() -> None:
    state = given(*issued(), paid(1, 2000))
    events = charge_late_fee(state, uid(5), eur(1500), "30 days overdue", day(45), "DN-1")
    assert events == [
        LateFeeCharged(
            invoice_id=INVOICE,
            fee_id=uid(5),
            amount=eur(1500),
            reason="30 days overdue",
            charged_on=day(45),
            debit_note_number="DN-1",
        )
    ]
    after = then(state, events)
    assert after.total == eur(12000)  # the issued lines and total are untouched
    assert after.lines == state.lines
    assert after.total_due == eur(13500)
    assert after.late_fees_total == eur(1500)
    assert after.open_amount == eur(11500)
    assert after.status is InvoiceStatus.PARTIALLY_PAID
    assert charge_late_fee(after, uid(5), eur(1500), "30 days overdue", day(45)) == []
    # paying the total plus the fee settles it
    settle = apply_payment(after, uid(2), uid(102), eur(11500), day(50))
    assert then(after, settle).status is InvoiceStatus.PAID


def test_late_fee_refusals() -> None:
    state = given(*issued())
    with pytest.raises(ValidationFailed):
        charge_late_fee(state, uid(5), eur(0), "overdue", day(45))
    with pytest.raises(ValidationFailed):
        charge_late_fee(state, uid(5), Money.of_minor(1, "JPY"), "overdue", day(45))
    with pytest.raises(StateConflict):
        charge_late_fee(given(*drafted()), uid(5), eur(100), "overdue", day(45))
    settled = given(*issued(), paid(1, 12000), InvoicePaid(invoice_id=INVOICE, paid_on=day(20)))
    with pytest.raises(StateConflict):
        charge_late_fee(settled, uid(5), eur(100), "overdue", day(45))
    with_fee = given(*issued(), *charge_late_fee(state, uid(5), eur(100), "overdue", day(45)))
    with pytest.raises(ValidationFailed, match="already recorded"):
        charge_late_fee(with_fee, uid(5), eur(200), "overdue", day(45))


# =========================================================================== due date


def test_the_due_date_can_be_moved() -> None:
    state = given(*issued())
    events = change_due_date(state, date(2026, 4, 30), "agreed extension")
    assert events == [
        InvoiceDueDateChanged(
            invoice_id=INVOICE,
            previous_due_date=date(2026, 4, 1),
            new_due_date=date(2026, 4, 30),
            reason="agreed extension",
        )
    ]
    after = then(state, events)
    assert after.due_date == date(2026, 4, 30)
    assert after.installments == (Installment(due_date=date(2026, 4, 30), amount=eur(12000)),)
    assert change_due_date(after, date(2026, 4, 30), "again") == []


def test_moving_the_due_date_moves_the_last_installment_and_keeps_the_order() -> None:
    terms = PaymentTerms(
        kind=TermsKind.INSTALLMENTS,
        installments=[
            InstallmentSpec(days_after_issue=0, percent=Decimal(50)),
            InstallmentSpec(days_after_issue=30, percent=Decimal(25)),
            InstallmentSpec(days_after_issue=60, percent=Decimal(25)),
        ],
    )
    state = given(*issued(terms=terms))
    after = then(state, change_due_date(state, day(20), "renegotiated"))
    assert [i.due_date for i in after.installments] == [day(0), day(20), day(20)]
    assert sum(i.amount.amount for i in after.installments) == 12000


def test_due_date_refusals() -> None:
    with pytest.raises(ValidationFailed, match="before the invoice's issue date"):
        change_due_date(given(*issued()), day(-1), "oops")
    with pytest.raises(StateConflict):
        change_due_date(given(*drafted()), day(10), "oops")
    settled = given(*issued(), paid(1, 12000), InvoicePaid(invoice_id=INVOICE, paid_on=day(20)))
    with pytest.raises(StateConflict):
        change_due_date(settled, day(40), "oops")


# ============================================================================= evolve


def test_evolve_refuses_events_that_cannot_belong_to_the_stream() -> None:
    (draft,) = drafted()
    with pytest.raises(InvalidEventSequence, match="before InvoiceDrafted"):
        evolve(None, paid(1, 100))
    state = given(draft)
    with pytest.raises(InvalidEventSequence, match="already drafted"):
        evolve(state, draft)
    other = paid(1, 100).model_copy(update={"invoice_id": uuid.UUID(int=2)})
    with pytest.raises(InvalidEventSequence, match="applied to invoice"):
        evolve(state, other)
    template = PaymentTermsTemplateDefined(template_id=uid(1), name="Net 30", terms=TERMS)
    with pytest.raises(InvalidEventSequence):
        evolve(state, template)
    with pytest.raises(InvalidEventSequence, match="never opened"):
        evolve(
            state,
            DisputeResolved(
                invoice_id=INVOICE,
                dispute_id=uid(7),
                outcome="rejected",
                resolved_on=day(1),
            ),
        )


def test_replay_of_nothing_is_nothing_and_version_counts_events() -> None:
    assert replay([]) is None
    history = [*issued(), paid(1, 100), credited(2, 100), disputed(3, 100)]
    assert given(*history).version == len(history) == 5


# ========================================================================= properties

Step = tuple[str, int, int]
Command = Callable[[], list[EventPayload]]

steps = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *["pay", "pay", "pay_all", "allocate", "credit", "credit_all"],
                *["unapply", "unapply", "fee", "dispute", "dispute", "resolve", "repeat"],
            ]
        ),
        st.integers(min_value=1, max_value=14000),
        st.integers(min_value=0, max_value=40),
    ),
    max_size=25,
)


def _raw_open(state: InvoiceState) -> int:
    return (
        state.total_due.amount
        - state.paid.amount
        - state.discounts_taken.amount
        - state.credited.amount
        - state.written_off_amount.amount
    )


def _amount(state: InvoiceState, kind: str, drawn: int) -> Money:
    """``*_all`` steps settle exactly what is open (a payment, when ``drawn`` is odd, net of the
    2% discount); other steps use the drawn amount as is."""
    remaining = state.open_amount
    if not kind.endswith("_all") or remaining.is_zero():
        return eur(drawn)
    if kind == "pay_all" and drawn % 2:
        return remaining - remaining.percentage(2, Rounding.HALF_UP)
    return remaining


def _run(state: InvoiceState, step: Step, n: int) -> tuple[Money, Command]:
    """The amount and the command for one random step (``n`` makes ids unique)."""
    kind, drawn, offset = step
    money, on = _amount(state, kind, drawn), day(offset)
    kind = kind.removesuffix("_all")
    if kind == "pay":
        return money, lambda: apply_payment(state, uid(n), uid(500 + n), money, on)
    if kind == "allocate":  # from the payments service: applied, or rejected if it cannot be
        return money, lambda: apply_or_reject_payment(state, uid(n), uid(500 + n), money, on, on)
    if kind == "credit":
        return money, lambda: issue_credit_note(state, uid(n), money, "adjustment", on)
    if kind == "fee":
        fee = eur(drawn % 3000 + 1)
        return fee, lambda: charge_late_fee(state, uid(n), fee, "late", on)
    if kind == "dispute":
        return money, lambda: open_dispute(state, uid(n), money, "disputed", on)
    return money, _reversal(state, kind, drawn, n, on)


def _reversal(state: InvoiceState, kind: str, drawn: int, n: int, on: date) -> Command:
    live = sorted(state.payments) if kind in ("unapply", "repeat") else []
    if kind == "unapply":
        target = live[drawn % len(live)] if live else uid(n)
        return lambda: unapply_payment(state, target, "reversed", on)
    if kind == "repeat":
        if not live:
            return lambda: []
        target = live[drawn % len(live)]
        return lambda: apply_payment(state, target, uid(1), state.payments[target], on)
    open_ids = sorted(k for k, d in state.disputes.items() if d.status is DisputeStatus.OPEN)
    if not open_ids:
        return lambda: []
    target = open_ids[drawn % len(open_ids)]
    if drawn % 2:
        return lambda: resolve_dispute(state, target, "accepted", on, credit_note_id=uid(900 + n))
    return lambda: resolve_dispute(state, target, "rejected", on)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@hypothesis.given(plan=steps)
def test_random_payments_and_credits_never_overdraw_the_invoice(plan: list[Step]) -> None:
    history = issued()
    state = given(*history)
    for n, step in enumerate(plan, start=1):
        before = state
        kind = step[0].removesuffix("_all")
        amount, command = _run(state, step, n)
        try:
            events = command()
        except ValidationFailed:
            assert kind != "allocate"  # an allocation the invoice cannot take is rejected
            # refusals for amounts are exactly the over-drawing ones
            if kind in ("credit", "pay"):
                assert amount > before.open_amount
            if kind == "dispute":
                assert amount > before.collectible_amount
            continue
        except StateConflict:
            assert kind != "allocate"
            assert before.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID)
            continue
        state = then(state, events)
        history += events
        for event in events:
            if isinstance(event, CreditNoteIssued):
                assert event.amount <= before.open_amount  # never more than what remains
            if isinstance(event, PaymentApplied):
                assert event.amount + event.discount_taken <= before.open_amount
            if isinstance(event, PaymentApplicationRejected):
                receivable = before.status in (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID)
                assert not receivable or event.amount > before.open_amount
        # invariants after every step
        assert _raw_open(state) >= 0
        assert state.open_amount.amount == _raw_open(state)
        assert state.disputed_amount.amount >= 0
        settled = state.paid + state.credited + state.discounts_taken
        if _raw_open(state) == 0:
            assert state.status is InvoiceStatus.PAID
        elif settled.is_positive():
            assert state.status is InvoiceStatus.PARTIALLY_PAID
        else:
            assert state.status is InvoiceStatus.ISSUED
    assert replay(history) == state  # the stream folds to the state built step by step
    for event in history:
        assert type(event).model_validate(event.model_dump(mode="json")) == event


@hypothesis.given(plan=steps)
def test_replay_equals_the_state_built_step_by_step(plan: list[Step]) -> None:
    history = issued()
    state = given(*history)
    snapshots = [state]
    for n, step in enumerate(plan, start=1):
        try:
            events = _run(state, step, n)[1]()
        except (ValidationFailed, StateConflict):
            continue
        for event in events:
            state = evolve(state, event)
            history.append(event)
            snapshots.append(state)
    for i, snapshot in enumerate(snapshots):
        assert replay(history[: len(history) - len(snapshots) + 1 + i]) == snapshot
    assert state.version == len(history)


# ================================================================ event serialization

ADDRESS = Address(line1="1 Main St", city="Lisbon", postal_code="1000-001", country="PT")
SAMPLES: list[EventPayload] = [
    *drafted(),
    InvoiceDraftUpdated(
        invoice_id=INVOICE,
        customer_id=CUSTOMER,
        currency="KWD",
        lines=[
            LineItem(
                description="Fuel",
                quantity=Decimal("12.345678"),
                unit_price=1234,
                discount_percent=Decimal("2.50"),
                taxes=[TaxRate(code="VAT", percent=Decimal("5.000"))],
            )
        ],
        terms=PaymentTerms(
            kind=TermsKind.INSTALLMENTS,
            installments=[
                InstallmentSpec(days_after_issue=0, percent=Decimal("33.333")),
                InstallmentSpec(days_after_issue=30, percent=Decimal("66.667")),
            ],
            early_payment_discount=EarlyPaymentDiscount(percent=Decimal("1.5"), within_days=5),
            late_fee_policy="standard",
        ),
        description="d",
        po_reference="PO",
        notes="n",
        accepted_payment_methods=[PaymentMethod.CHEQUE, PaymentMethod.CASH],
        series="KW-1",
    ),
    issued()[-1],
    InvoiceVoided(invoice_id=INVOICE, reason="dup", voided_on=ISSUED_ON),
    credited(1, 100).model_copy(update={"number": "CN-1", "dispute_id": uid(7)}),
    paid(1, 100).model_copy(update={"discount_taken": eur(3)}),
    PaymentUnapplied(
        invoice_id=INVOICE,
        allocation_id=uid(1),
        amount=eur(100),
        reason="bounced",
        unapplied_on=day(3),
        discount_reversed=eur(3),
    ),
    rejected(2, Money.of_minor(100, "GBP"), "currency_mismatch", "in GBP"),
    InvoicePaid(invoice_id=INVOICE, paid_on=day(3)),
    InvoiceReopened(invoice_id=INVOICE, reason="chargeback"),
    InvoiceWrittenOff(
        invoice_id=INVOICE, amount=eur(100), reason="bad debt", written_off_on=day(9)
    ),
    disputed(7, 100),
    DisputeResolved(
        invoice_id=INVOICE,
        dispute_id=uid(7),
        outcome="accepted",
        resolution_note="ok",
        credit_note_id=uid(70),
        resolved_on=day(4),
    ),
    LateFeeCharged(
        invoice_id=INVOICE,
        fee_id=uid(5),
        amount=Money.of_minor(1500, "JPY"),
        reason="late",
        charged_on=day(40),
        debit_note_number="DN-1",
    ),
    InvoiceDueDateChanged(
        invoice_id=INVOICE,
        previous_due_date=day(30),
        new_due_date=day(45),
        reason="extension",
    ),
    CustomerRegistered(
        customer_id=CUSTOMER,
        name="Acme",
        email="ap@acme.example",
        currency="EUR",
        billing_address=ADDRESS,
        tax_id="PT123",
        default_terms=TERMS,
        terms_template_id=uid(3),
    ),
    CustomerUpdated(
        customer_id=CUSTOMER,
        name="Acme SA",
        email="ap@acme.example",
        currency="EUR",
        billing_address=ADDRESS.model_copy(update={"line2": "Floor 2", "region": "Lisboa"}),
        tax_id=None,
        default_terms=None,
        terms_template_id=None,
    ),
    PaymentTermsTemplateDefined(
        template_id=uid(3),
        name="EOM + 15",
        terms=PaymentTerms(kind=TermsKind.END_OF_MONTH, eom_plus_days=15),
    ),
]


def test_every_event_type_has_a_sample() -> None:
    payload_classes = {
        obj
        for name in invoice_events.__all__
        if isinstance(obj := getattr(invoice_events, name), type) and issubclass(obj, EventPayload)
    }
    assert {type(s) for s in SAMPLES} == payload_classes
    assert len(payload_classes) == 18
    for cls in payload_classes:
        assert registry.spec(cls.event_type).payload_model is cls
        assert cls.schema_version == 1


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.event_type)
def test_event_payloads_round_trip_through_json_exactly(event: EventPayload) -> None:
    new_event = registry.new_event(event)
    wire = json.loads(json.dumps(new_event.payload))  # what the store and Kafka carry
    decoded = registry.spec(new_event.event_type).payload_model.model_validate(wire)
    assert decoded == event
    assert decoded.model_dump(mode="json") == event.model_dump(mode="json")
    assert type(event).model_validate_json(event.model_dump_json()) == event
    assert not list(_floats(wire))  # money and decimals never travel as floats


def _floats(value: object) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return []


def test_decimals_travel_as_strings_with_their_exact_digits() -> None:
    event = SAMPLES[1]
    wire = event.model_dump(mode="json")
    assert wire["lines"][0]["quantity"] == "12.345678"
    assert wire["lines"][0]["discount_percent"] == "2.50"
    assert wire["terms"]["installments"][0]["percent"] == "33.333"
    assert wire["terms"]["early_payment_discount"]["percent"] == "1.5"


def test_event_payloads_refuse_unknown_fields_and_are_immutable() -> None:
    voided = InvoiceVoided(invoice_id=INVOICE, reason="dup", voided_on=ISSUED_ON)
    with pytest.raises(ValidationError):
        InvoiceVoided.model_validate({**voided.model_dump(mode="json"), "extra": 1})
    with pytest.raises(ValidationError):
        voided.reason = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        DisputeResolved(
            invoice_id=INVOICE, dispute_id=uid(7), outcome="accepted", resolved_on=day(1)
        )
