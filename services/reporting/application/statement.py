"""Reads behind a customer's statement of account, scoped to one tenant.

Every movement comes from the projection tables, dated by its business date: invoices and late
fees (obligations), credit notes, discounts, write-offs and voids (settlements), payments
received and refunded or reversed (payments, payment_returns). Applications of payments to
invoices are not movements of the customer's account (the cash was already counted when it was
received); they only decide which invoices are still open, which the aging part reads through
`reads.positions`, the same fold as the aging report as of any date.

All reads run in one REPEATABLE READ snapshot, so the opening balance, the lines and the aging
describe the same moment even while the projector writes.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.application import reads
from services.reporting.application.reads import Scope
from services.reporting.domain.statement import (
    Movement,
    Statement,
    build_statement,
)
from services.reporting.projections.tables import Tables


def _movements_sql(t: Tables, scope: Scope) -> str:
    """Every movement of the customer's account up to :end, one row each (signed amount).
    Invoice-side facts are reached through the customer's invoices (an index on the customer);
    their rows copy the invoice's customer and currency, so nothing is lost on the way."""
    invoices = f"""FROM {t.invoices} i
        JOIN {{table}} x ON x.tenant_id = i.tenant_id AND x.invoice_id = i.invoice_id
        WHERE i.tenant_id = :t {scope.filters("i")}"""
    return f"""
        SELECT x.arises_on AS on_date, x.currency, 'invoice' AS kind,
               SUM(x.amount_minor) AS amount, CAST(x.invoice_id AS text) AS document_id,
               'invoice:' || CAST(x.invoice_id AS text) AS key, i.number AS reference,
               i.due_date, CAST(NULL AS text) AS detail
        {invoices.format(table=t.obligations)}
              AND x.kind = 'installment' AND x.arises_on <= :end
        GROUP BY x.arises_on, x.currency, x.invoice_id, i.number, i.due_date
        UNION ALL
        SELECT x.arises_on, x.currency, 'late_fee', x.amount_minor,
               CAST(x.invoice_id AS text), x.obligation_key || ':' || CAST(x.invoice_id AS text),
               i.number, x.due_date, NULL
        {invoices.format(table=t.obligations)}
              AND x.kind = 'late_fee' AND x.arises_on <= :end
        UNION ALL
        SELECT x.effective_on, x.currency, x.kind, -x.amount_minor,
               CAST(x.invoice_id AS text), x.kind || ':' || CAST(x.event_id AS text),
               COALESCE(x.document_number, i.number), NULL,
               CASE WHEN x.document_number IS NOT NULL THEN i.number END
        {invoices.format(table=t.settlements)}
              AND x.kind <> 'payment' AND x.effective_on <= :end
        UNION ALL
        SELECT p.received_on, p.currency, 'payment', -p.amount_minor,
               CAST(p.payment_id AS text), 'payment:' || CAST(p.payment_id AS text),
               p.reference, NULL, p.method
        FROM {t.payments} p
        WHERE p.tenant_id = :t AND p.received_on <= :end {scope.filters("p")}
        UNION ALL
        SELECT r.returned_on, r.currency,
               CASE WHEN r.kind = 'refund' THEN 'refund' ELSE 'reversal' END, r.amount_minor,
               CAST(r.payment_id AS text), 'return:' || CAST(r.event_id AS text),
               NULL, NULL, r.kind
        FROM {t.payment_returns} r
        WHERE r.tenant_id = :t AND r.returned_on <= :end {scope.filters("r")}
    """


async def _snapshot(session: AsyncSession) -> None:
    """One consistent read for the whole statement (when the session has not begun yet)."""
    if not session.in_transaction():
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


async def openings(session: AsyncSession, t: Tables, scope: Scope, before: date) -> dict[str, int]:
    """Per currency, the balance at the end of `before` (the day before the period)."""
    rows = await session.execute(
        text(
            f"""SELECT currency, SUM(amount) AS amount FROM ({_movements_sql(t, scope)}) m
                WHERE on_date <= :before GROUP BY currency"""
        ),
        scope.params(end=before, before=before),
    )
    return {r.currency: int(r.amount) for r in rows}


async def movements(
    session: AsyncSession, t: Tables, scope: Scope, start: date, end: date
) -> list[Movement]:
    rows = await session.execute(
        text(f"SELECT * FROM ({_movements_sql(t, scope)}) m WHERE on_date >= :start"),
        scope.params(start=start, end=end),
    )
    return [
        Movement(
            on=r.on_date,
            currency=r.currency,
            kind=r.kind,
            amount=int(r.amount),
            document_id=r.document_id,
            key=r.key,
            reference=r.reference,
            due_date=r.due_date,
            detail=r.detail,
        )
        for r in rows
    ]


async def statement(
    session: AsyncSession,
    t: Tables,
    tenant_id: str,
    customer_id: str,
    start: date,
    end: date,
    currency: str | None = None,
) -> Statement:
    """The statement of one of the tenant's customers. A customer the tenant does not know
    gives the same answer as one without activity: no blocks (or one of zeros for
    `currency`), no name."""
    if start > end:
        raise ValueError("start must be on or before end")
    await _snapshot(session)
    scope = Scope(tenant_id, customer_id, currency)
    names = await reads.customer_names(session, t, tenant_id, [customer_id])
    return build_statement(
        customer_id=customer_id,
        customer_name=names.get(customer_id),
        from_date=start,
        to_date=end,
        openings=await openings(session, t, scope, start - timedelta(days=1)),
        movements=await movements(session, t, scope, start, end),
        positions=await reads.positions(session, t, scope, end),
        currency=currency,
    )


def statement_json(st: Statement) -> dict[str, Any]:
    """The JSON body of GET /v1/customers/{customer_id}/statement (money in minor units)."""
    return {
        "customer_id": st.customer_id,
        "customer_name": st.customer_name,
        "from_date": st.from_date.isoformat(),
        "to_date": st.to_date.isoformat(),
        "currencies": [
            {
                "currency": c.currency,
                "opening_balance_minor": c.opening_balance,
                "lines": [
                    {
                        "date": line.date.isoformat(),
                        "kind": line.kind,
                        "document_id": line.document_id,
                        "reference": line.reference,
                        "description": line.description,
                        "debit_minor": line.debit,
                        "credit_minor": line.credit,
                        "balance_minor": line.balance,
                    }
                    for line in c.lines
                ],
                "debits_minor": c.debits,
                "credits_minor": c.credits,
                "closing_balance_minor": c.closing_balance,
                "aging": dict(c.aging),
            }
            for c in st.currencies
        ],
    }
