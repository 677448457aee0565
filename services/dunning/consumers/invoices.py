"""What dunning learns from the invoice service: each invoice's open and disputed amounts and
status, the customer's name and e-mail, and how the customer pays (for smarter timing).

Events of one invoice arrive in order (one topic, keyed by customer), so each is a delta on
the invoice's row. Payments and credit notes lower the open amount, and the next scheduler run
decides on the new facts; paid, void and written-off invoices are closed and never dunned;
a dispute takes its amount out of what is dunned until it is resolved.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.dunning.adapters import SCHEMA
from shared.consumer import MessageContext
from shared.contracts import invoice as inv
from shared.events.envelope import EventEnvelope
from shared.events.registry import registry

#: What dunning reads: the consumer group passes over the rest (drafts, sends, ...) unparsed.
INVOICE_EVENTS = frozenset(
    t.event_type
    for t in (
        inv.CustomerRegistered,
        inv.CustomerUpdated,
        inv.InvoiceIssued,
        inv.PaymentApplied,
        inv.PaymentUnapplied,
        inv.CreditNoteIssued,
        inv.LateFeeCharged,
        inv.InvoiceWrittenOff,
        inv.InvoiceVoided,
        inv.InvoiceReopened,
        inv.InvoicePaid,
        inv.DisputeOpened,
        inv.DisputeResolved,
        inv.InvoiceDueDateChanged,
    )
)


async def on_invoice_event(
    session: AsyncSession, envelope: EventEnvelope, _: MessageContext
) -> None:
    if envelope.event_type not in INVOICE_EVENTS:
        return
    event = registry.decode(envelope)
    t = envelope.tenant_id
    match event:
        case inv.CustomerRegistered() | inv.CustomerUpdated():
            await _execute(
                session,
                f"""INSERT INTO {SCHEMA}.customers (tenant_id, customer_id, name, email)
                    VALUES (:t, :c, :n, :e)
                    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET name = EXCLUDED.name,
                        email = EXCLUDED.email""",
                t=t,
                c=event.customer_id,
                n=event.name,
                e=event.email,
            )
        case inv.InvoiceIssued():
            await _execute(
                session,
                f"""INSERT INTO {SCHEMA}.invoices (tenant_id, invoice_id, customer_id, number,
                        currency, status, issue_date, due_date, open_minor)
                    VALUES (:t, :i, :c, :n, :cur, 'open', :issued, :due, :open)
                    ON CONFLICT (tenant_id, invoice_id) DO UPDATE SET status = 'open',
                        number = EXCLUDED.number, issue_date = EXCLUDED.issue_date,
                        due_date = EXCLUDED.due_date, open_minor = EXCLUDED.open_minor""",
                t=t,
                i=event.invoice_id,
                c=event.customer_id,
                n=event.number,
                cur=event.currency,
                issued=event.issue_date,
                due=event.due_date,
                open=event.total.amount,
            )
        case inv.PaymentApplied():
            await _open_delta(session, t, event, -(event.amount + event.discount_taken).amount)
        case inv.PaymentUnapplied():
            back = event.amount.amount + (
                event.discount_reversed.amount if event.discount_reversed else 0
            )
            await _open_delta(session, t, event, back)
        case inv.CreditNoteIssued():
            await _open_delta(session, t, event, -event.amount.amount)
        case inv.LateFeeCharged():
            await _open_delta(session, t, event, event.amount.amount)
        case inv.InvoiceWrittenOff():
            await _open_delta(session, t, event, -event.amount.amount, status="closed")
        case inv.InvoiceVoided():
            await _open_delta(session, t, event, 0, status="closed")
        case inv.InvoiceReopened():
            await _open_delta(session, t, event, 0, status="open")
        case inv.InvoicePaid():
            await _paid(session, t, event)
        case inv.DisputeOpened():
            await _execute(
                session,
                f"""UPDATE {SCHEMA}.invoices SET disputed_minor = disputed_minor + CAST(:a AS bigint),
                        disputes = disputes || jsonb_build_object(CAST(:d AS text), CAST(:a AS bigint))
                    WHERE tenant_id = :t AND invoice_id = :i
                      AND NOT disputes ? CAST(:d AS text)""",
                t=t,
                i=event.invoice_id,
                d=str(event.dispute_id),
                a=event.amount.amount,
            )
        case inv.DisputeResolved():
            await _execute(
                session,
                f"""UPDATE {SCHEMA}.invoices
                    SET disputed_minor = disputed_minor
                            - COALESCE(CAST(disputes ->> CAST(:d AS text) AS bigint), 0),
                        disputes = disputes - CAST(:d AS text)
                    WHERE tenant_id = :t AND invoice_id = :i""",
                t=t,
                i=event.invoice_id,
                d=str(event.dispute_id),
            )
        case inv.InvoiceDueDateChanged():
            await _execute(
                session,
                f"""UPDATE {SCHEMA}.invoices SET due_date = :d
                    WHERE tenant_id = :t AND invoice_id = :i""",
                t=t,
                i=event.invoice_id,
                d=event.new_due_date,
            )
        case _:
            return


async def _execute(session: AsyncSession, sql: str, **params: Any) -> None:
    await session.execute(text(sql), params)


async def _open_delta(
    session: AsyncSession, tenant: str, event: Any, delta: int, status: str | None = None
) -> None:
    await _execute(
        session,
        f"""UPDATE {SCHEMA}.invoices SET open_minor = open_minor + :d,
                status = COALESCE(CAST(:s AS text), status), updated_at = now()
            WHERE tenant_id = :t AND invoice_id = :i""",
        t=tenant,
        i=event.invoice_id,
        d=delta,
        s=status,
    )


async def _paid(session: AsyncSession, tenant: str, event: inv.InvoicePaid) -> None:
    """Closed, and one more data point of how the customer pays (days after the due date)."""
    row = (
        await session.execute(
            text(
                f"""UPDATE {SCHEMA}.invoices SET status = 'closed', updated_at = now()
                    WHERE tenant_id = :t AND invoice_id = :i RETURNING customer_id, due_date"""
            ),
            {"t": tenant, "i": event.invoice_id},
        )
    ).one_or_none()
    if row is None or row.due_date is None:
        return
    late = (event.paid_on - row.due_date).days
    await _execute(
        session,
        f"""INSERT INTO {SCHEMA}.customers (tenant_id, customer_id, paid_count, on_time_count,
                days_late_sum)
            VALUES (:t, :c, 1, :ontime, :late)
            ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
                paid_count = customers.paid_count + 1,
                on_time_count = customers.on_time_count + EXCLUDED.on_time_count,
                days_late_sum = customers.days_late_sum + EXCLUDED.days_late_sum""",
        t=tenant,
        c=row.customer_id,
        ontime=1 if late <= 0 else 0,
        late=late,
    )
