"""The Invoice aggregate as pure decide/evolve functions.

``decide`` functions take the current state and a command's arguments and return the events
that record the decision (an empty list for an idempotent repeat), or raise
``StateConflict`` (409: not allowed in this state) / ``ValidationFailed`` (422: bad amounts,
wrong currency, ...) / ``NotFound`` (404: an unknown dispute). ``evolve`` folds one event into
the state and never refuses a recorded fact, except one that cannot belong to this stream
(``InvalidEventSequence``, a bug or a corrupted stream).

Amounts: ``total_due = total + late fees``; ``open_amount = total_due - paid - discounts taken
- credited - written off`` (zero for drafts and voided invoices); ``collectible_amount =
open_amount - open disputes``. Every decide function keeps ``open_amount >= 0``: payments and
credit notes never exceed it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from enum import StrEnum
from typing import Any

from services.invoice.domain.customer import (
    CustomerState,
    TermsTemplateState,
    define_terms_template,
    evolve_customer,
    evolve_terms_template,
    register_customer,
    replay_customer,
    update_customer,
)
from services.invoice.domain.lines import InvoiceTotals, compute_totals
from services.invoice.domain.terms import due_date as terms_due_date
from services.invoice.domain.terms import early_payment_discount, schedule
from shared.contracts.invoice import (
    CreditCheckRecord,
    CreditNoteIssued,
    DisputeOpened,
    DisputeResolved,
    Installment,
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
    PaymentRejectionCode,
    PaymentTerms,
    PaymentUnapplied,
)
from shared.errors import NotFound, StateConflict, ValidationFailed
from shared.events.registry import EventPayload, build_event
from shared.money import Money, sum_money

__all__ = [
    "CustomerState",
    "Dispute",
    "DisputeStatus",
    "InvalidEventSequence",
    "InvoiceState",
    "InvoiceStatus",
    "TermsTemplateState",
    "apply_or_reject_payment",
    "apply_payment",
    "change_due_date",
    "charge_late_fee",
    "define_terms_template",
    "draft_invoice",
    "evolve",
    "evolve_customer",
    "evolve_terms_template",
    "issue_credit_note",
    "issue_invoice",
    "open_dispute",
    "payment_refusal",
    "register_customer",
    "reject_payment",
    "replay",
    "replay_customer",
    "resolve_dispute",
    "unapply_payment",
    "update_customer",
    "update_draft",
    "void_invoice",
    "write_off",
]


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"
    WRITTEN_OFF = "written_off"


class DisputeStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class InvalidEventSequence(ValueError):
    """An event that cannot follow the stream so far: a bug or a corrupted stream, never user input."""


#: Statuses in which money still moves (payments, credit notes, disputes, late fees).
_RECEIVABLE = (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID)


@dataclasses.dataclass(frozen=True)
class Dispute:
    dispute_id: uuid.UUID
    amount: Money
    reason: str
    opened_on: date
    status: DisputeStatus = DisputeStatus.OPEN
    resolved_on: date | None = None
    resolution_note: str | None = None
    credit_note_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True)
class InvoiceState:
    """An invoice as of ``version`` events. Treat the mappings as read-only."""

    invoice_id: uuid.UUID
    customer_id: str
    currency: str
    status: InvoiceStatus
    lines: tuple[LineItem, ...]
    terms: PaymentTerms
    description: str | None
    po_reference: str | None
    notes: str | None
    accepted_payment_methods: tuple[PaymentMethod, ...]
    series: str
    totals: InvoiceTotals
    """Computed from the lines for drafts too; frozen once issued (issued lines are immutable)."""
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    installments: tuple[Installment, ...] = ()
    credit_check: CreditCheckRecord | None = None
    payments: Mapping[uuid.UUID, Money] = dataclasses.field(default_factory=dict)
    """Applied amount per live allocation."""
    unapplied: Mapping[uuid.UUID, Money] = dataclasses.field(default_factory=dict)
    """Allocations applied and later reversed (kept so a redelivered apply stays a no-op)."""
    rejected: Mapping[uuid.UUID, Money] = dataclasses.field(default_factory=dict)
    """Allocations refused with ``PaymentApplicationRejected``, with the amount they asked for
    (never applied; kept so a redelivered allocation stays refused). Not part of any amount."""
    discounts: Mapping[uuid.UUID, Money] = dataclasses.field(default_factory=dict)
    """Early-payment discount granted with a live allocation (only non-zero ones)."""
    credit_notes: Mapping[uuid.UUID, Money] = dataclasses.field(default_factory=dict)
    written_off: Money | None = None
    late_fees: Mapping[uuid.UUID, Money] = dataclasses.field(default_factory=dict)
    disputes: Mapping[uuid.UUID, Dispute] = dataclasses.field(default_factory=dict)
    paid_on: date | None = None
    voided_on: date | None = None
    written_off_on: date | None = None
    version: int = 0

    # ------------------------------------------------------------------ derived amounts

    def _sum(self, amounts: Iterable[Money]) -> Money:
        return sum_money(amounts, self.currency)

    @property
    def total(self) -> Money:
        return self.totals.total

    @property
    def late_fees_total(self) -> Money:
        return self._sum(self.late_fees.values())

    @property
    def total_due(self) -> Money:
        """The invoice total plus late fees (debit notes)."""
        return self.total + self.late_fees_total

    @property
    def paid(self) -> Money:
        return self._sum(self.payments.values())

    @property
    def discounts_taken(self) -> Money:
        return self._sum(self.discounts.values())

    @property
    def credited(self) -> Money:
        return self._sum(self.credit_notes.values())

    @property
    def written_off_amount(self) -> Money:
        return self.written_off or Money.zero(self.currency)

    @property
    def open_amount(self) -> Money:
        """What the customer still owes; zero for drafts and voided invoices, never negative."""
        if self.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            return Money.zero(self.currency)
        remaining = (
            self.total_due
            - self.paid
            - self.discounts_taken
            - self.credited
            - self.written_off_amount
        )
        return max(remaining, Money.zero(self.currency))

    @property
    def disputed_amount(self) -> Money:
        return self._sum(d.amount for d in self.disputes.values() if d.status is DisputeStatus.OPEN)

    @property
    def collectible_amount(self) -> Money:
        """The open amount not held up by an open dispute (never negative)."""
        return max(self.open_amount - self.disputed_amount, Money.zero(self.currency))


# ============================================================================ evolve


def _progress(state: InvoiceState) -> InvoiceState:
    """issued <-> partially_paid from the amounts; other statuses move only by their own events."""
    if state.status not in _RECEIVABLE:
        return state
    settled = state.paid + state.credited + state.discounts_taken
    status = InvoiceStatus.PARTIALLY_PAID if settled.is_positive() else InvoiceStatus.ISSUED
    return dataclasses.replace(state, status=status)


def _added(
    mapping: Mapping[uuid.UUID, Money], key: uuid.UUID, value: Money
) -> dict[uuid.UUID, Money]:
    return {**mapping, key: value}


def _removed(mapping: Mapping[uuid.UUID, Money], key: uuid.UUID) -> dict[uuid.UUID, Money]:
    return {k: v for k, v in mapping.items() if k != key}


def _draft_content(event: InvoiceDrafted | InvoiceDraftUpdated) -> dict[str, Any]:
    return {
        "lines": tuple(event.lines),
        "terms": event.terms,
        "description": event.description,
        "po_reference": event.po_reference,
        "notes": event.notes,
        "accepted_payment_methods": tuple(event.accepted_payment_methods),
        "series": event.series,
        "totals": compute_totals(event.lines, event.currency),
    }


def _moved_installments(
    installments: tuple[Installment, ...], new_due_date: date
) -> tuple[Installment, ...]:
    """The final instalment moves to the new due date; none may fall after it."""
    if not installments:
        return installments
    *earlier, last = installments
    moved = [i.model_copy(update={"due_date": min(i.due_date, new_due_date)}) for i in earlier]
    return (*moved, last.model_copy(update={"due_date": new_due_date}))


def _apply(state: InvoiceState, event: EventPayload) -> InvoiceState:
    replace = dataclasses.replace
    if isinstance(event, InvoiceDraftUpdated):
        return replace(state, **_draft_content(event))
    if isinstance(event, InvoiceIssued):
        return replace(
            state,
            status=InvoiceStatus.ISSUED,
            number=event.number,
            issue_date=event.issue_date,
            due_date=event.due_date,
            installments=tuple(event.installments),
            credit_check=event.credit_check,
        )
    if isinstance(event, InvoiceVoided):
        return replace(state, status=InvoiceStatus.VOID, voided_on=event.voided_on)
    if isinstance(event, CreditNoteIssued):
        credit_notes = _added(state.credit_notes, event.credit_note_id, event.amount)
        return _progress(replace(state, credit_notes=credit_notes))
    if isinstance(event, PaymentApplied):
        discounts = dict(state.discounts)
        if not event.discount_taken.is_zero():
            discounts[event.allocation_id] = event.discount_taken
        payments = _added(state.payments, event.allocation_id, event.amount)
        return _progress(replace(state, payments=payments, discounts=discounts))
    if isinstance(event, PaymentUnapplied):
        return _progress(
            replace(
                state,
                payments=_removed(state.payments, event.allocation_id),
                discounts=_removed(state.discounts, event.allocation_id),
                unapplied=_added(state.unapplied, event.allocation_id, event.amount),
            )
        )
    if isinstance(event, PaymentApplicationRejected):
        return replace(state, rejected=_added(state.rejected, event.allocation_id, event.amount))
    if isinstance(event, InvoicePaid):
        return replace(state, status=InvoiceStatus.PAID, paid_on=event.paid_on)
    if isinstance(event, InvoiceReopened):
        return _progress(replace(state, status=InvoiceStatus.ISSUED, paid_on=None))
    if isinstance(event, InvoiceWrittenOff):
        return replace(
            state,
            status=InvoiceStatus.WRITTEN_OFF,
            written_off=event.amount,
            written_off_on=event.written_off_on,
        )
    if isinstance(event, DisputeOpened):
        dispute = Dispute(
            dispute_id=event.dispute_id,
            amount=event.amount,
            reason=event.reason,
            opened_on=event.opened_on,
        )
        return replace(state, disputes={**state.disputes, event.dispute_id: dispute})
    if isinstance(event, DisputeResolved):
        try:
            opened = state.disputes[event.dispute_id]
        except KeyError:
            raise InvalidEventSequence(f"dispute {event.dispute_id} was never opened") from None
        resolved = replace(
            opened,
            status=DisputeStatus(event.outcome),
            resolved_on=event.resolved_on,
            resolution_note=event.resolution_note,
            credit_note_id=event.credit_note_id,
        )
        return replace(state, disputes={**state.disputes, event.dispute_id: resolved})
    if isinstance(event, LateFeeCharged):
        return replace(state, late_fees=_added(state.late_fees, event.fee_id, event.amount))
    if isinstance(event, InvoiceDueDateChanged):
        return replace(
            state,
            due_date=event.new_due_date,
            installments=_moved_installments(state.installments, event.new_due_date),
        )
    raise InvalidEventSequence(f"{event.event_type} is not an invoice event")


def evolve(state: InvoiceState | None, event: EventPayload) -> InvoiceState:
    """The state after ``event``. The first event of a stream must be ``InvoiceDrafted``."""
    if isinstance(event, InvoiceDrafted):
        if state is not None:
            raise InvalidEventSequence(f"invoice {state.invoice_id} was already drafted")
        return InvoiceState(
            invoice_id=event.invoice_id,
            customer_id=event.customer_id,
            currency=event.currency,
            status=InvoiceStatus.DRAFT,
            version=1,
            **_draft_content(event),
        )
    if state is None:
        raise InvalidEventSequence(f"{event.event_type} before InvoiceDrafted")
    invoice_id = getattr(event, "invoice_id", None)
    if invoice_id != state.invoice_id:
        raise InvalidEventSequence(
            f"{event.event_type} for invoice {invoice_id} applied to invoice {state.invoice_id}"
        )
    return dataclasses.replace(_apply(state, event), version=state.version + 1)


def replay(events: Iterable[EventPayload]) -> InvoiceState | None:
    """Fold a stream's events from the beginning; ``None`` for an empty stream."""
    state: InvoiceState | None = None
    for event in events:
        state = evolve(state, event)
    return state


# ============================================================================ decide


def _details(state: InvoiceState, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"invoice_id": str(state.invoice_id), "status": state.status.value}
    for key, value in extra.items():
        if isinstance(value, Money):
            details[key] = value.model_dump(mode="json")
        elif isinstance(value, uuid.UUID | date):
            details[key] = str(value)
        else:
            details[key] = value
    return details


def _require_status(state: InvoiceState, action: str, *allowed: InvoiceStatus) -> None:
    if state.status not in allowed:
        raise StateConflict(
            f"cannot {action}: invoice {state.invoice_id} is {state.status.value}",
            _details(state, allowed_statuses=[s.value for s in allowed]),
        )


def _require_amount(state: InvoiceState, amount: Money, what: str) -> None:
    if amount.currency != state.currency:
        raise ValidationFailed(
            f"{what} is in {amount.currency} but invoice {state.invoice_id} is in {state.currency}",
            _details(state, field=what, amount=amount, currency=state.currency),
        )
    if not amount.is_positive():
        raise ValidationFailed(
            f"{what} must be greater than zero, got {amount}",
            _details(state, field=what, amount=amount),
        )


def _require_on_or_after_issue(state: InvoiceState, on: date, what: str) -> None:
    if state.issue_date is not None and on < state.issue_date:
        raise ValidationFailed(
            f"{what} {on} is before the invoice's issue date {state.issue_date}",
            _details(state, field=what, value=on, issue_date=state.issue_date),
        )


def _require_same_repeat(
    state: InvoiceState, what: str, key: uuid.UUID, recorded: Money, requested: Money
) -> None:
    """An id seen before must come back with the same amount, or it is a different command."""
    if recorded != requested:
        raise ValidationFailed(
            f"{what} {key} was already recorded with {recorded}, not {requested}",
            _details(state, field=what, id=key, recorded=recorded, requested=requested),
        )


def _then_paid_if_settled(
    state: InvoiceState, events: list[EventPayload], on: date
) -> list[EventPayload]:
    """Append ``InvoicePaid`` when ``events`` bring the open amount to zero."""
    after = state
    for event in events:
        after = evolve(after, event)
    if after.status in _RECEIVABLE and after.open_amount.is_zero():
        return [*events, InvoicePaid(invoice_id=state.invoice_id, paid_on=on)]
    return events


def _default_methods(methods: Sequence[PaymentMethod] | None) -> list[PaymentMethod]:
    return list(PaymentMethod) if methods is None else list(methods)


def draft_invoice(
    invoice_id: uuid.UUID,
    customer_id: str,
    currency: str,
    lines: Sequence[LineItem],
    terms: PaymentTerms,
    series: str,
    *,
    description: str | None = None,
    po_reference: str | None = None,
    notes: str | None = None,
    accepted_payment_methods: Sequence[PaymentMethod] | None = None,
) -> list[EventPayload]:
    """Start a draft. ``accepted_payment_methods=None`` means every method."""
    compute_totals(lines, currency)
    return [
        build_event(
            InvoiceDrafted,
            invoice_id=invoice_id,
            customer_id=customer_id,
            currency=currency,
            lines=list(lines),
            terms=terms,
            description=description,
            po_reference=po_reference,
            notes=notes,
            accepted_payment_methods=_default_methods(accepted_payment_methods),
            series=series,
        )
    ]


def update_draft(
    state: InvoiceState,
    *,
    lines: Sequence[LineItem],
    terms: PaymentTerms,
    series: str,
    accepted_payment_methods: Sequence[PaymentMethod] | None = None,
    description: str | None = None,
    po_reference: str | None = None,
    notes: str | None = None,
) -> list[EventPayload]:
    """Replace a draft's content as a whole (a PATCH merges onto the current state first).

    Only drafts: an issued invoice is immutable and is corrected with credit notes.
    """
    _require_status(state, "update the draft", InvoiceStatus.DRAFT)
    compute_totals(lines, state.currency)
    event = build_event(
        InvoiceDraftUpdated,
        invoice_id=state.invoice_id,
        customer_id=state.customer_id,
        currency=state.currency,
        lines=list(lines),
        terms=terms,
        description=description,
        po_reference=po_reference,
        notes=notes,
        accepted_payment_methods=_default_methods(accepted_payment_methods),
        series=series,
    )
    unchanged = (
        tuple(event.lines) == state.lines
        and event.terms == state.terms
        and event.description == state.description
        and event.po_reference == state.po_reference
        and event.notes == state.notes
        and tuple(event.accepted_payment_methods) == state.accepted_payment_methods
        and event.series == state.series
    )
    return [] if unchanged else [event]


def issue_invoice(
    state: InvoiceState, number: str, issue_date: date, credit_check: CreditCheckRecord
) -> list[EventPayload]:
    """Issue a draft under ``number`` (allocated gaplessly by the caller for ``state.series``).

    Repeating the issue of an already issued invoice with the same number is a no-op.
    """
    if state.status is not InvoiceStatus.DRAFT and state.number == number:
        return []
    _require_status(state, "issue", InvoiceStatus.DRAFT)
    if not state.total.is_positive():
        raise ValidationFailed(
            f"cannot issue invoice {state.invoice_id} with a total of {state.total}",
            _details(state, field="total", total=state.total),
        )
    return [
        build_event(
            InvoiceIssued,
            invoice_id=state.invoice_id,
            customer_id=state.customer_id,
            number=number,
            issue_date=issue_date,
            due_date=terms_due_date(state.terms, issue_date),
            currency=state.currency,
            total=state.total,
            subtotal=state.totals.subtotal,
            tax_total=state.totals.tax_total,
            installments=schedule(state.terms, issue_date, state.total),
            credit_check=credit_check,
        )
    ]


def void_invoice(state: InvoiceState, reason: str, on: date) -> list[EventPayload]:
    """Void a draft, or an issued invoice nothing has been applied to (no payment, credit note or
    write-off). Anything else is corrected with credit notes instead."""
    if state.status is InvoiceStatus.VOID:
        return []
    _require_status(state, "void", InvoiceStatus.DRAFT, InvoiceStatus.ISSUED)
    if state.payments or state.credit_notes or not state.written_off_amount.is_zero():
        raise StateConflict(
            f"cannot void invoice {state.invoice_id}: payments or credit notes were applied to it",
            _details(state, paid=state.paid, credited=state.credited),
        )
    _require_on_or_after_issue(state, on, "voided_on")
    return [build_event(InvoiceVoided, invoice_id=state.invoice_id, reason=reason, voided_on=on)]


def write_off(state: InvoiceState, reason: str, on: date) -> list[EventPayload]:
    """Write off the whole open amount as bad debt; the invoice is then closed for good."""
    if state.status is InvoiceStatus.WRITTEN_OFF:
        return []
    _require_status(state, "write off", *_RECEIVABLE)
    _require_on_or_after_issue(state, on, "written_off_on")
    amount = state.open_amount
    if amount.is_zero():
        raise StateConflict(
            f"cannot write off invoice {state.invoice_id}: nothing is open",
            _details(state, open_amount=amount),
        )
    return [
        build_event(
            InvoiceWrittenOff,
            invoice_id=state.invoice_id,
            amount=amount,
            reason=reason,
            written_off_on=on,
        )
    ]


def issue_credit_note(
    state: InvoiceState,
    credit_note_id: uuid.UUID,
    amount: Money,
    reason: str,
    on: date,
    number: str | None = None,
    dispute_id: uuid.UUID | None = None,
) -> list[EventPayload]:
    """Credit ``amount`` (> 0, at most the open amount) against an issued invoice.

    ``dispute_id`` ties the note to an accepted dispute. ``InvoicePaid`` follows when nothing
    remains open. Idempotent on ``credit_note_id``.
    """
    recorded = state.credit_notes.get(credit_note_id)
    if recorded is not None:
        _require_same_repeat(state, "credit_note_id", credit_note_id, recorded, amount)
        return []
    _require_status(state, "issue a credit note", *_RECEIVABLE, InvoiceStatus.PAID)
    _require_amount(state, amount, "amount")
    _require_on_or_after_issue(state, on, "issued_on")
    open_amount = state.open_amount
    if amount > open_amount:
        raise ValidationFailed(
            f"credit note of {amount} exceeds the open amount {open_amount} "
            f"of invoice {state.invoice_id}",
            _details(state, field="amount", amount=amount, open_amount=open_amount),
        )
    if dispute_id is not None:
        dispute = state.disputes.get(dispute_id)
        if dispute is None or dispute.status is not DisputeStatus.ACCEPTED:
            raise ValidationFailed(
                f"credit note refers to dispute {dispute_id}, which is not an accepted dispute "
                f"of invoice {state.invoice_id}",
                _details(state, field="dispute_id", dispute_id=dispute_id),
            )
    event = build_event(
        CreditNoteIssued,
        invoice_id=state.invoice_id,
        credit_note_id=credit_note_id,
        number=number,
        amount=amount,
        reason=reason,
        issued_on=on,
        dispute_id=dispute_id,
    )
    return _then_paid_if_settled(state, [event], on)


def apply_payment(
    state: InvoiceState,
    allocation_id: uuid.UUID,
    payment_id: uuid.UUID,
    amount: Money,
    applied_on: date,
) -> list[EventPayload]:
    """Apply ``amount`` of a payment (at most the open amount). Idempotent on ``allocation_id``;
    an allocation rejected before is never applied (``[]``).

    When this payment settles everything that remains once the early-payment discount is taken,
    inside the discount window, the discount is granted with it (``discount_taken``).
    ``InvoicePaid`` follows when nothing remains open.
    """
    recorded = _recorded_allocation(state, allocation_id)
    if recorded is not None:
        _require_same_repeat(state, "allocation_id", allocation_id, recorded, amount)
        return []
    _require_status(state, "apply a payment", *_RECEIVABLE)
    _require_amount(state, amount, "amount")
    _require_on_or_after_issue(state, applied_on, "applied_on")
    open_amount = state.open_amount
    if amount > open_amount:
        raise ValidationFailed(
            f"payment of {amount} exceeds the open amount {open_amount} "
            f"of invoice {state.invoice_id} (over-application)",
            _details(state, field="amount", amount=amount, open_amount=open_amount),
        )
    assert state.issue_date is not None
    discount = early_payment_discount(state.terms, state.issue_date, applied_on, open_amount)
    if discount.is_zero() or amount + discount != open_amount:
        discount = Money.zero(state.currency)
    event = build_event(
        PaymentApplied,
        invoice_id=state.invoice_id,
        allocation_id=allocation_id,
        payment_id=payment_id,
        amount=amount,
        applied_on=applied_on,
        discount_taken=discount,
    )
    return _then_paid_if_settled(state, [event], applied_on)


def _recorded_allocation(state: InvoiceState, allocation_id: uuid.UUID) -> Money | None:
    """The amount an allocation came with if it was seen before (applied, unapplied, rejected)."""
    for seen in (state.payments, state.unapplied, state.rejected):
        if allocation_id in seen:
            return seen[allocation_id]
    return None


def payment_refusal(state: InvoiceState, amount: Money) -> tuple[PaymentRejectionCode, str] | None:
    """Why an issued invoice cannot take a new allocation of ``amount`` as it stands now (code
    and reason), or ``None`` if it can. A draft is not refused: its allocations wait for issue."""
    invoice = state.invoice_id
    if state.status is InvoiceStatus.DRAFT:
        return None
    if state.status not in _RECEIVABLE:
        return "not_receivable", f"invoice {invoice} is {state.status.value}: it takes no payments"
    if amount.currency != state.currency:
        return (
            "currency_mismatch",
            f"allocation is in {amount.currency} but invoice {invoice} is in {state.currency}",
        )
    open_amount = state.open_amount
    if amount > open_amount:
        return (
            "over_application",
            f"allocation of {amount} exceeds the open amount {open_amount} of invoice {invoice}",
        )
    return None


def reject_payment(
    state: InvoiceState,
    allocation_id: uuid.UUID,
    payment_id: uuid.UUID,
    amount: Money,
    code: PaymentRejectionCode,
    reason: str,
    on: date,
) -> list[EventPayload]:
    """Refuse an allocation the payments service decided (``PaymentApplicationRejected``), so
    that it takes the allocation back. Changes no amount. Idempotent on ``allocation_id``.

    An allocation that was applied cannot be rejected (it is unapplied instead), and a draft
    rejects nothing: its allocations wait until it is issued.
    """
    recorded = state.rejected.get(allocation_id)
    if recorded is not None:
        _require_same_repeat(state, "allocation_id", allocation_id, recorded, amount)
        return []
    if allocation_id in state.payments or allocation_id in state.unapplied:
        raise StateConflict(
            f"cannot reject allocation {allocation_id}: it was applied to invoice "
            f"{state.invoice_id}",
            _details(state, allocation_id=allocation_id),
        )
    if state.status is InvoiceStatus.DRAFT:
        raise StateConflict(
            f"cannot reject allocation {allocation_id}: invoice {state.invoice_id} is a draft, "
            "its allocations wait until it is issued",
            _details(state, allocation_id=allocation_id),
        )
    return [
        build_event(
            PaymentApplicationRejected,
            invoice_id=state.invoice_id,
            allocation_id=allocation_id,
            payment_id=payment_id,
            amount=amount,
            code=code,
            reason=reason,
            rejected_on=on,
        )
    ]


def apply_or_reject_payment(
    state: InvoiceState,
    allocation_id: uuid.UUID,
    payment_id: uuid.UUID,
    amount: Money,
    applied_on: date,
    rejected_on: date,
) -> list[EventPayload]:
    """An allocation decided by the payments service on what it knew of this invoice: applied
    (``apply_payment``) if the invoice can still take it, otherwise rejected (``reject_payment``
    with the ``payment_refusal`` code) rather than refused, so the money goes back to the payment.

    A redelivered allocation is a no-op whichever way it went. Refusals that are not the race
    (a draft, a non-positive amount, a date before issue, an id repeated with another amount)
    still raise, as ``apply_payment`` does.
    """
    if _recorded_allocation(state, allocation_id) is None:
        refusal = payment_refusal(state, amount)
        if refusal is not None:
            code, reason = refusal
            return reject_payment(
                state, allocation_id, payment_id, amount, code, reason, rejected_on
            )
    return apply_payment(state, allocation_id, payment_id, amount, applied_on)


def unapply_payment(
    state: InvoiceState, allocation_id: uuid.UUID, reason: str, on: date
) -> list[EventPayload]:
    """Reverse a previous application (refund, chargeback, re-allocation), withdrawing any
    discount granted with it. A paid invoice is reopened. Unknown allocations, and allocations
    that were rejected (never applied), are a no-op."""
    amount = state.payments.get(allocation_id)
    if amount is None:
        return []
    _require_status(state, "unapply a payment", *_RECEIVABLE, InvoiceStatus.PAID)
    _require_on_or_after_issue(state, on, "unapplied_on")
    events: list[EventPayload] = [
        build_event(
            PaymentUnapplied,
            invoice_id=state.invoice_id,
            allocation_id=allocation_id,
            amount=amount,
            reason=reason,
            unapplied_on=on,
            discount_reversed=state.discounts.get(allocation_id, Money.zero(state.currency)),
        )
    ]
    if state.status is InvoiceStatus.PAID:
        events.append(build_event(InvoiceReopened, invoice_id=state.invoice_id, reason=reason))
    return events


def open_dispute(
    state: InvoiceState, dispute_id: uuid.UUID, amount: Money, reason: str, on: date
) -> list[EventPayload]:
    """Dispute ``amount`` (> 0, at most what is open and not already disputed). Idempotent on
    ``dispute_id``."""
    existing = state.disputes.get(dispute_id)
    if existing is not None:
        _require_same_repeat(state, "dispute_id", dispute_id, existing.amount, amount)
        return []
    _require_status(state, "open a dispute", *_RECEIVABLE)
    _require_amount(state, amount, "amount")
    _require_on_or_after_issue(state, on, "opened_on")
    undisputed = state.collectible_amount
    if amount > undisputed:
        raise ValidationFailed(
            f"disputed amount {amount} exceeds the undisputed open amount {undisputed} "
            f"of invoice {state.invoice_id}",
            _details(state, field="amount", amount=amount, undisputed_open_amount=undisputed),
        )
    return [
        build_event(
            DisputeOpened,
            invoice_id=state.invoice_id,
            dispute_id=dispute_id,
            amount=amount,
            reason=reason,
            opened_on=on,
        )
    ]


def resolve_dispute(
    state: InvoiceState,
    dispute_id: uuid.UUID,
    outcome: str,
    on: date,
    credit_note_id: uuid.UUID | None = None,
    note: str | None = None,
    credit_note_number: str | None = None,
) -> list[EventPayload]:
    """Resolve an open dispute.

    ``accepted`` credits the disputed amount with a credit note ``credit_note_id`` (required),
    followed by ``InvoicePaid`` if nothing remains open; ``rejected`` makes the amount
    collectible again. Repeating the same resolution is a no-op.
    """
    dispute = state.disputes.get(dispute_id)
    if dispute is None:
        raise NotFound(
            f"invoice {state.invoice_id} has no dispute {dispute_id}",
            _details(state, dispute_id=dispute_id),
        )
    if outcome not in (DisputeStatus.ACCEPTED, DisputeStatus.REJECTED):
        raise ValidationFailed(
            f"dispute outcome must be 'accepted' or 'rejected', got {outcome!r}",
            _details(state, field="outcome", value=outcome),
        )
    if dispute.status is not DisputeStatus.OPEN:
        if dispute.status == outcome and dispute.credit_note_id == credit_note_id:
            return []
        raise StateConflict(
            f"dispute {dispute_id} of invoice {state.invoice_id} is already {dispute.status.value}",
            _details(state, dispute_id=dispute_id, dispute_status=dispute.status.value),
        )
    if outcome == DisputeStatus.ACCEPTED:
        _require_status(state, "accept a dispute", *_RECEIVABLE, InvoiceStatus.PAID)
        if credit_note_id is None:
            raise ValidationFailed(
                "accepting a dispute issues a credit note: credit_note_id is required",
                _details(state, field="credit_note_id", dispute_id=dispute_id),
            )
        if credit_note_id in state.credit_notes:
            raise ValidationFailed(
                f"credit note {credit_note_id} already exists on invoice {state.invoice_id}",
                _details(state, field="credit_note_id", credit_note_id=credit_note_id),
            )
    else:
        _require_status(
            state,
            "reject a dispute",
            *_RECEIVABLE,
            InvoiceStatus.PAID,
            InvoiceStatus.WRITTEN_OFF,
        )
        if credit_note_id is not None:
            raise ValidationFailed(
                "a rejected dispute issues no credit note: omit credit_note_id",
                _details(state, field="credit_note_id", dispute_id=dispute_id),
            )
    if on < dispute.opened_on:
        raise ValidationFailed(
            f"resolved_on {on} is before the dispute was opened on {dispute.opened_on}",
            _details(state, field="resolved_on", value=on, opened_on=dispute.opened_on),
        )
    resolved = build_event(
        DisputeResolved,
        invoice_id=state.invoice_id,
        dispute_id=dispute_id,
        outcome=str(outcome),
        resolution_note=note,
        credit_note_id=credit_note_id,
        resolved_on=on,
    )
    if credit_note_id is None:
        return [resolved]
    try:
        credit = issue_credit_note(
            evolve(state, resolved),
            credit_note_id,
            dispute.amount,
            f"Dispute accepted: {dispute.reason}",
            on,
            number=credit_note_number,
            dispute_id=dispute_id,
        )
    except ValidationFailed as exc:
        raise ValidationFailed(
            f"cannot accept dispute {dispute_id}: {exc.message} "
            "(unapply payments first to credit an invoice that is already settled)",
            exc.details,
        ) from None
    return [resolved, *credit]


def charge_late_fee(
    state: InvoiceState,
    fee_id: uuid.UUID,
    amount: Money,
    reason: str,
    on: date,
    debit_note_number: str | None = None,
) -> list[EventPayload]:
    """Charge a late fee as a debit note: it raises the amount due, the issued lines stay.
    Idempotent on ``fee_id``."""
    recorded = state.late_fees.get(fee_id)
    if recorded is not None:
        _require_same_repeat(state, "fee_id", fee_id, recorded, amount)
        return []
    _require_status(state, "charge a late fee", *_RECEIVABLE)
    _require_amount(state, amount, "amount")
    _require_on_or_after_issue(state, on, "charged_on")
    return [
        build_event(
            LateFeeCharged,
            invoice_id=state.invoice_id,
            fee_id=fee_id,
            amount=amount,
            reason=reason,
            charged_on=on,
            debit_note_number=debit_note_number,
        )
    ]


def change_due_date(state: InvoiceState, new_due_date: date, reason: str) -> list[EventPayload]:
    """Move the final due date (no earlier than the issue date); no-op if unchanged.

    The last instalment moves with it and no earlier instalment stays after it.
    """
    _require_status(state, "change the due date", *_RECEIVABLE)
    assert state.due_date is not None
    if new_due_date == state.due_date:
        return []
    _require_on_or_after_issue(state, new_due_date, "new_due_date")
    return [
        build_event(
            InvoiceDueDateChanged,
            invoice_id=state.invoice_id,
            previous_due_date=state.due_date,
            new_due_date=new_due_date,
            reason=reason,
        )
    ]
