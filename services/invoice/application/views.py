"""JSON views of the invoice service's aggregates: what the API returns and the read model stores."""

from __future__ import annotations

from typing import Any

from services.invoice.domain.customer import CustomerState
from services.invoice.domain.invoice import InvoiceState
from shared.money import Money


def _money(m: Money | None) -> dict[str, Any] | None:
    return None if m is None else m.model_dump()


def invoice_view(state: InvoiceState) -> dict[str, Any]:
    totals = state.totals
    return {
        "invoice_id": str(state.invoice_id),
        "customer_id": state.customer_id,
        "number": state.number,
        "status": state.status.value,
        "currency": state.currency,
        "series": state.series,
        "description": state.description,
        "po_reference": state.po_reference,
        "notes": state.notes,
        "accepted_payment_methods": [m.value for m in state.accepted_payment_methods],
        "terms": state.terms.model_dump(mode="json"),
        "terms_text": state.terms.describe(),
        "lines": [
            {**line.model_dump(mode="json"), "totals": lt.model_dump(mode="json")}
            for line, lt in zip(state.lines, totals.lines, strict=True)
        ],
        "subtotal": _money(totals.subtotal),
        "discount_total": _money(totals.discount_total),
        "tax_by_code": {code: m.model_dump() for code, m in totals.tax_by_code.items()},
        "tax_total": _money(totals.tax_total),
        "total": _money(state.total),
        "late_fees": _money(state.late_fees_total),
        "total_due": _money(state.total_due),
        "paid": _money(state.paid),
        "discounts_taken": _money(state.discounts_taken),
        "credited": _money(state.credited),
        "written_off": _money(state.written_off_amount),
        "open_amount": _money(state.open_amount),
        "disputed_amount": _money(state.disputed_amount),
        "collectible_amount": _money(state.collectible_amount),
        "issue_date": state.issue_date.isoformat() if state.issue_date else None,
        "due_date": state.due_date.isoformat() if state.due_date else None,
        "installments": [i.model_dump(mode="json") for i in state.installments],
        "credit_check": state.credit_check.model_dump(mode="json") if state.credit_check else None,
        "disputes": [
            {
                "dispute_id": str(d.dispute_id),
                "amount": d.amount.model_dump(),
                "reason": d.reason,
                "status": d.status.value,
                "opened_on": d.opened_on.isoformat(),
                "resolved_on": d.resolved_on.isoformat() if d.resolved_on else None,
                "credit_note_id": str(d.credit_note_id) if d.credit_note_id else None,
            }
            for d in state.disputes.values()
        ],
        "credit_notes": [
            {"credit_note_id": str(k), "amount": v.model_dump()}
            for k, v in state.credit_notes.items()
        ],
        "payments": [
            {"allocation_id": str(k), "amount": v.model_dump()} for k, v in state.payments.items()
        ],
        "paid_on": state.paid_on.isoformat() if state.paid_on else None,
        "version": state.version,
    }


def customer_view(state: CustomerState) -> dict[str, Any]:
    return {
        "customer_id": state.customer_id,
        "name": state.name,
        "email": state.email,
        "currency": state.currency,
        "billing_address": state.billing_address.model_dump(mode="json"),
        "tax_id": state.tax_id,
        "default_terms": state.default_terms.model_dump(mode="json")
        if state.default_terms
        else None,
        "terms_template_id": str(state.terms_template_id) if state.terms_template_id else None,
        "version": state.version,
    }
