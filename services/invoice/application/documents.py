"""Turning an invoice into its PDF view (the renderer itself is adapters/pdf.py)."""

from __future__ import annotations

from services.invoice.adapters.pdf import InstallmentView, InvoicePdfView, LineView, PartyView
from services.invoice.config import InvoiceSettings
from services.invoice.domain.customer import CustomerState
from services.invoice.domain.invoice import InvoiceState
from shared.money import Money


def pdf_view(
    state: InvoiceState, customer: CustomerState, settings: InvoiceSettings
) -> InvoicePdfView:
    address = customer.billing_address
    buyer_lines = [
        address.line1,
        *([address.line2] if address.line2 else []),
        f"{address.postal_code} {address.city}",
        *([address.region] if address.region else []),
        address.country,
    ]
    totals = state.totals
    rates = {t.code: t.percent for line in state.lines for t in line.taxes}
    return InvoicePdfView(
        kind="INVOICE",
        number=state.number,
        issue_date=state.issue_date,
        due_date=state.due_date,
        seller=PartyView(
            settings.seller_name,
            list(settings.seller_address_lines),
            settings.seller_tax_id,
            settings.seller_email,
        ),
        buyer=PartyView(customer.name, buyer_lines, customer.tax_id, customer.email),
        currency=state.currency,
        lines=[
            LineView(
                line.description,
                line.quantity,
                Money.of_minor(line.unit_price, state.currency),
                line.discount_percent,
                [t.code for t in line.taxes],
                lt.net,
            )
            for line, lt in zip(state.lines, totals.lines, strict=True)
        ],
        subtotal=totals.subtotal,
        discount_total=totals.discount_total,
        tax_by_code=dict(totals.tax_by_code),
        tax_rates=rates,
        total=state.total_due,
        paid=state.paid,
        credited=state.credited,
        open_amount=state.open_amount,
        terms_text=state.terms.describe(),
        installments=[InstallmentView(i.due_date, i.amount) for i in state.installments],
        accepted_payment_methods=[
            m.value.replace("_", " ") for m in state.accepted_payment_methods
        ],
        po_reference=state.po_reference,
        notes=state.notes,
        status=state.status.value,
    )
