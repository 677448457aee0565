"""Per-invoice exposure, kept from the invoice service's events (a projection in this schema).

Every change is a delta on one invoice's open amount, applied in the consumer's transaction
(whose inbox row makes redelivery harmless). Events of one customer arrive in order on the
invoice topic (key = customer id), so deltas never see an invoice before its InvoiceIssued.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.adapters import SCHEMA, rates
from shared.money import Money, Rounding


@dataclass(frozen=True)
class Exposure:
    open_invoices: Money
    days_overdue: int
    open_invoice_count: int
    unapplied_cash: Money
    rates_used: dict[str, str] = field(default_factory=dict)
    """Currency -> the recorded rate its amounts were converted at."""
    unconvertible: tuple[str, ...] = ()
    """Currencies with open amounts but no recorded rate: the totals leave them out."""

    @property
    def net(self) -> Money:
        """What credit policy weighs: open invoices less cash received but not yet applied."""
        return self.open_invoices - self.unapplied_cash


async def record_issued(
    session: AsyncSession,
    tenant: str,
    invoice_id: uuid.UUID,
    customer_id: str,
    total: Money,
    due_date: date,
    issue_date: date | None = None,
) -> None:
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.invoice_exposure (tenant_id, invoice_id, customer_id, currency,
                    open_minor, due_date, total_minor, issue_date)
                VALUES (:t, :id, :c, :cur, :open, :due, :open, :issued)
                ON CONFLICT (tenant_id, invoice_id) DO NOTHING"""
        ),
        {
            "t": tenant,
            "id": invoice_id,
            "c": customer_id,
            "cur": total.currency,
            "open": total.amount,
            "due": due_date,
            "issued": issue_date or due_date,
        },
    )


async def mark(
    session: AsyncSession,
    tenant: str,
    invoice_id: uuid.UUID,
    *,
    paid_on: date | None = None,
    reopened: bool = False,
    disputed: bool = False,
    reversal: bool = False,
) -> None:
    """Behaviour facts for the risk score: when it was paid, disputes, payment reversals."""
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.invoice_exposure SET
                    paid_on = CASE WHEN :reopened THEN NULL
                                   ELSE COALESCE(CAST(:paid_on AS date), paid_on) END,
                    disputed = disputed OR :disputed,
                    reversals = reversals + CASE WHEN :reversal THEN 1 ELSE 0 END,
                    updated_at = now()
                WHERE tenant_id = :t AND invoice_id = :id"""
        ),
        {
            "t": tenant,
            "id": invoice_id,
            "paid_on": paid_on,
            "reopened": reopened,
            "disputed": disputed,
            "reversal": reversal,
        },
    )


async def adjust_open(
    session: AsyncSession, tenant: str, invoice_id: uuid.UUID, delta: int
) -> None:
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.invoice_exposure SET open_minor = open_minor + :d, updated_at = now()
                WHERE tenant_id = :t AND invoice_id = :id"""
        ),
        {"t": tenant, "id": invoice_id, "d": delta},
    )


async def close(session: AsyncSession, tenant: str, invoice_id: uuid.UUID) -> None:
    """Voided or written off: no longer owed, so no longer exposure."""
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.invoice_exposure SET open_minor = 0, closed = true, updated_at = now()
                WHERE tenant_id = :t AND invoice_id = :id"""
        ),
        {"t": tenant, "id": invoice_id},
    )


async def move_due_date(
    session: AsyncSession, tenant: str, invoice_id: uuid.UUID, due: date
) -> None:
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.invoice_exposure SET due_date = :due, updated_at = now()
                WHERE tenant_id = :t AND invoice_id = :id"""
        ),
        {"t": tenant, "id": invoice_id, "due": due},
    )


async def exposure_of(
    session: AsyncSession, tenant: str, customer_id: str, currency: str, today: date
) -> Exposure:
    """Open invoice amounts less unapplied cash, in `currency`, and how late the oldest open
    invoice is. Amounts in other currencies are converted at the latest recorded rate on or
    before `today` (rounded half-up per currency); without a rate they are listed in
    `unconvertible` and left out, so the caller can refuse rather than under-count."""
    rows = (
        await session.execute(
            text(
                f"""SELECT currency, sum(open_minor) AS amount, 0 AS cash,
                           COALESCE(max(:today - due_date) FILTER (WHERE due_date < :today), 0) AS overdue,
                           count(*) AS n
                    FROM {SCHEMA}.invoice_exposure
                    WHERE tenant_id = :t AND customer_id = :c AND NOT closed AND open_minor > 0
                    GROUP BY currency
                    UNION ALL
                    SELECT currency, 0, sum(unapplied_minor), 0, 0 FROM {SCHEMA}.payment_cash
                    WHERE tenant_id = :t AND customer_id = :c AND currency IS NOT NULL
                    GROUP BY currency"""
            ),
            {"t": tenant, "c": customer_id, "today": today},
        )
    ).all()
    open_total, cash_total = Money.zero(currency), Money.zero(currency)
    overdue = count = 0
    rates_used: dict[str, str] = {}
    unconvertible: set[str] = set()
    for row in rows:
        overdue, count = max(overdue, int(row.overdue)), count + int(row.n)
        amounts = [
            Money.of_minor(int(row.amount), row.currency),
            Money.of_minor(int(row.cash), row.currency),
        ]
        if row.currency != currency:
            if not any(m.amount for m in amounts):
                continue
            rate = await rates.latest(session, tenant, row.currency, currency, today)
            if rate is None:
                unconvertible.add(row.currency)
                continue
            rates_used[row.currency] = format(rate.normalize(), "f")
            amounts = [m.convert(currency, rate, Rounding.HALF_UP) for m in amounts]
        open_total, cash_total = open_total + amounts[0], cash_total + amounts[1]
    return Exposure(
        open_total, overdue, count, cash_total, rates_used, tuple(sorted(unconvertible))
    )


async def payment_cash(
    session: AsyncSession,
    tenant: str,
    payment_id: uuid.UUID,
    delta: int,
    *,
    customer_id: str | None = None,
    currency: str | None = None,
) -> None:
    """Move one payment's unapplied cash by `delta` (minor units of the payment's currency).

    Order-insensitive: deltas add up whatever order they arrive in, and the customer and
    currency are filled in when PaymentReceived arrives.
    """
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.payment_cash AS p
                    (tenant_id, payment_id, customer_id, currency, unapplied_minor)
                VALUES (:t, :id, :c, :cur, :d)
                ON CONFLICT (tenant_id, payment_id) DO UPDATE SET
                    unapplied_minor = p.unapplied_minor + EXCLUDED.unapplied_minor,
                    customer_id = COALESCE(p.customer_id, EXCLUDED.customer_id),
                    currency = COALESCE(p.currency, EXCLUDED.currency),
                    updated_at = now()"""
        ),
        {"t": tenant, "id": payment_id, "c": customer_id, "cur": currency, "d": delta},
    )
