"""Queries over the projection tables, every one scoped to one tenant. They return the inputs
of the pure calculations in `domain/`, dated by business date so any past date can be asked."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.domain.aging import (
    Basis,
    Bucket,
    InvoicePosition,
    Obligation,
    OpenGroup,
    bucket_thresholds,
)
from services.reporting.domain.currency import Converter
from services.reporting.domain.metrics import DailyActivity
from services.reporting.projections.tables import Tables


@dataclass(frozen=True)
class Scope:
    """Whose data a report reads: always one tenant, optionally one customer or currency."""

    tenant_id: str
    customer_id: str | None = None
    currency: str | None = None

    def filters(self, alias: str) -> str:
        sql = ""
        if self.customer_id is not None:
            sql += f" AND {alias}.customer_id = :customer_id"
        if self.currency is not None:
            sql += f" AND {alias}.currency = :currency"
        return sql

    def params(self, **more: Any) -> dict[str, Any]:
        return {
            "t": self.tenant_id,
            "customer_id": self.customer_id,
            "currency": self.currency,
            **more,
        }


async def positions(
    session: AsyncSession, t: Tables, scope: Scope, as_of: date
) -> list[InvoicePosition]:
    """Every invoice issued by `as_of` and not closed before it, with its obligations that had
    arisen by then, what was settled by then, and what was under dispute on that date."""
    rows = await session.execute(
        text(
            f"""SELECT i.invoice_id, i.customer_id, i.currency, i.issue_date,
                       o.due_date, o.amount_minor,
                       COALESCE(s.settled, 0) AS settled, COALESCE(d.disputed, 0) AS disputed
                FROM {t.invoices} i
                JOIN {t.obligations} o ON o.tenant_id = i.tenant_id AND o.invoice_id = i.invoice_id
                     AND o.arises_on <= :as_of
                LEFT JOIN LATERAL (
                    SELECT SUM(amount_minor) AS settled FROM {t.settlements} s
                    WHERE s.tenant_id = i.tenant_id AND s.invoice_id = i.invoice_id
                      AND s.effective_on <= :as_of) s ON true
                LEFT JOIN LATERAL (
                    SELECT SUM(amount_minor) AS disputed FROM {t.disputes} d
                    WHERE d.tenant_id = i.tenant_id AND d.invoice_id = i.invoice_id
                      AND d.opened_on <= :as_of
                      AND (d.resolved_on IS NULL OR d.resolved_on > :as_of)) d ON true
                WHERE i.tenant_id = :t AND i.issue_date <= :as_of
                  AND (i.closed_on IS NULL OR i.closed_on > :as_of) {scope.filters("i")}
                ORDER BY i.invoice_id"""
        ),
        scope.params(as_of=as_of),
    )
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row.invoice_id].append(row)
    return [
        InvoicePosition(
            invoice_id=str(invoice_id),
            customer_id=items[0].customer_id,
            currency=items[0].currency,
            issue_date=items[0].issue_date,
            obligations=tuple(Obligation(r.due_date, r.amount_minor) for r in items),
            settled=int(items[0].settled),
            disputed=int(items[0].disputed),
        )
        for invoice_id, items in grouped.items()
    ]


async def aging_horizon(session: AsyncSession, t: Tables, tenant_id: str) -> date | None:
    """The first date the open-items tables answer the aging for, or None if they can't (no
    invoices yet, or invoices projected before those tables existed and not rebuilt since)."""
    row = (
        await session.execute(
            text(f"SELECT latest_on, complete FROM {t.aging_horizons} WHERE tenant_id = :t"),
            {"t": tenant_id},
        )
    ).first()
    return row.latest_on if row is not None and row.complete else None


async def open_groups(
    session: AsyncSession,
    t: Tables,
    scope: Scope,
    as_of: date,
    basis: Basis,
    buckets: list[Bucket],
    *,
    by_customer: bool,
) -> list[OpenGroup]:
    """Open amounts summed by bucket, per customer (from the open items) or for the whole
    tenant (from the open totals); valid for dates on or after the tenant's aging horizon."""
    anchor = "due_date" if basis is Basis.DUE_DATE else "issue_date"
    if by_customer:
        source, customer, invoices = t.open_items, "customer_id", "COUNT(*) FILTER (WHERE seq = 0)"
    else:
        source, customer, invoices = t.open_totals, "NULL", "SUM(invoices)"
    rows = await session.execute(
        text(
            f"""SELECT {customer} AS customer_id, currency,
                       width_bucket(CAST(:as_of AS date) - {anchor}, CAST(:thresholds AS int[]))
                           AS bucket,
                       SUM(undisputed_minor) AS undisputed, SUM(disputed_minor) AS disputed,
                       {invoices} AS invoices,
                       SUM(undisputed_minor) FILTER (WHERE due_date < :as_of) AS overdue,
                       MAX(CAST(:as_of AS date) - due_date)
                           FILTER (WHERE due_date < :as_of AND undisputed_minor > 0) AS oldest
                FROM {source} g
                WHERE g.tenant_id = :t AND (undisputed_minor <> 0 OR disputed_minor <> 0)
                      {scope.filters("g")}
                GROUP BY 1, 2, 3"""
        ),
        scope.params(as_of=as_of, thresholds=bucket_thresholds(buckets)),
    )
    return [
        OpenGroup(
            customer_id=r.customer_id,
            currency=r.currency,
            bucket=buckets[r.bucket].key,
            undisputed=int(r.undisputed),
            disputed=int(r.disputed),
            invoices=int(r.invoices),
            overdue=int(r.overdue or 0),
            oldest_days_overdue=int(r.oldest or 0),
        )
        for r in rows
    ]


async def customer_names(
    session: AsyncSession, t: Tables, tenant_id: str, only: Iterable[str] | None = None
) -> dict[str, str]:
    """Names of the tenant's customers (of those in `only`, if given)."""
    if only is None:
        rows = await session.execute(
            text(f"SELECT customer_id, name FROM {t.customers} WHERE tenant_id = :t"),
            {"t": tenant_id},
        )
    else:
        rows = await session.execute(
            text(
                f"""SELECT customer_id, name FROM {t.customers}
                    WHERE tenant_id = :t AND customer_id = ANY(:ids)"""
            ),
            {"t": tenant_id, "ids": sorted(set(only))},
        )
    return {r.customer_id: r.name for r in rows}


async def currencies(session: AsyncSession, t: Tables, scope: Scope) -> set[str]:
    rows = await session.execute(
        text(
            f"""SELECT DISTINCT currency FROM {t.invoices} i
                WHERE i.tenant_id = :t {scope.filters("i")}"""
        ),
        scope.params(),
    )
    return {r.currency for r in rows}


async def receivables_on(
    session: AsyncSession, t: Tables, scope: Scope, day: date
) -> dict[str, int]:
    """Net receivables at the end of `day`, per currency: obligations arisen minus settlements."""
    rows = await session.execute(
        text(
            f"""SELECT currency, SUM(amount) AS amount FROM (
                    SELECT o.currency, o.amount_minor AS amount FROM {t.obligations} o
                    WHERE o.tenant_id = :t AND o.arises_on <= :day {scope.filters("o")}
                    UNION ALL
                    SELECT s.currency, -s.amount_minor FROM {t.settlements} s
                    WHERE s.tenant_id = :t AND s.effective_on <= :day {scope.filters("s")}
                ) x GROUP BY currency"""
        ),
        scope.params(day=day),
    )
    return {r.currency: int(r.amount) for r in rows}


async def daily_activity(
    session: AsyncSession, t: Tables, scope: Scope, start: date, end: date
) -> dict[str, list[DailyActivity]]:
    """Per currency, what moved the receivables on each day of [start, end]."""
    rows = await session.execute(
        text(
            f"""SELECT day, currency, kind, SUM(amount) AS amount FROM (
                    SELECT o.arises_on AS day, o.currency, o.kind, o.amount_minor AS amount
                    FROM {t.obligations} o
                    WHERE o.tenant_id = :t AND o.arises_on BETWEEN :start AND :end
                          {scope.filters("o")}
                    UNION ALL
                    SELECT s.effective_on, s.currency, s.kind, s.amount_minor
                    FROM {t.settlements} s
                    WHERE s.tenant_id = :t AND s.effective_on BETWEEN :start AND :end
                          {scope.filters("s")}
                ) x GROUP BY day, currency, kind ORDER BY day"""
        ),
        scope.params(start=start, end=end),
    )
    fields = {
        "installment": "invoiced",
        "late_fee": "fees",
        "credit_note": "credit_notes",
        "void": "voids",
        "payment": "collections",
        "discount": "discounts",
        "write_off": "write_offs",
    }
    result: dict[str, list[DailyActivity]] = defaultdict(list)
    for r in rows:
        result[r.currency].append(DailyActivity(day=r.day, **{fields[r.kind]: int(r.amount)}))
    return result


@dataclass(frozen=True)
class PaymentTiming:
    """One allocation of a payment to an invoice, with the dates that say how it was paid."""

    customer_id: str
    currency: str
    amount: int
    received_on: date
    days_to_pay: int  # received date - invoice date
    days_late: int  # max(0, received date - due date)


async def payment_timings(
    session: AsyncSession, t: Tables, scope: Scope, start: date, end: date
) -> list[PaymentTiming]:
    """Allocations of payments received in [start, end] to invoices this projection knows
    (an allocation whose invoice has not arrived yet is counted once it has)."""
    rows = await session.execute(
        text(
            f"""SELECT i.customer_id, a.currency, a.amount_minor, p.received_on,
                       p.received_on - i.issue_date AS days_to_pay,
                       GREATEST(0, p.received_on - i.due_date) AS days_late
                FROM {t.allocations} a
                JOIN {t.payments} p ON p.tenant_id = a.tenant_id AND p.payment_id = a.payment_id
                JOIN {t.invoices} i ON i.tenant_id = a.tenant_id AND i.invoice_id = a.invoice_id
                WHERE a.tenant_id = :t AND a.unallocated_on IS NULL
                  AND p.received_on BETWEEN :start AND :end {scope.filters("i")}"""
        ),
        scope.params(start=start, end=end),
    )
    return [
        PaymentTiming(
            r.customer_id, r.currency, r.amount_minor, r.received_on, r.days_to_pay, r.days_late
        )
        for r in rows
    ]


@dataclass(frozen=True)
class CustomerRecord:
    """Counts behind a customer's payment behaviour, up to the as-of date."""

    invoices_paid: int = 0
    paid_on_time: int = 0
    disputes: int = 0
    open_disputes: int = 0
    reversals: int = 0
    refunds: int = 0


async def customer_records(
    session: AsyncSession, t: Tables, scope: Scope, as_of: date
) -> dict[str, CustomerRecord]:
    rows = await session.execute(
        text(
            f"""SELECT customer_id, SUM(paid) AS paid, SUM(on_time) AS on_time,
                       SUM(disputes) AS disputes, SUM(open_disputes) AS open_disputes,
                       SUM(reversals) AS reversals, SUM(refunds) AS refunds
                FROM (
                    SELECT i.customer_id, 1 AS paid,
                           CASE WHEN i.paid_on <= i.due_date THEN 1 ELSE 0 END AS on_time,
                           0 AS disputes, 0 AS open_disputes, 0 AS reversals, 0 AS refunds
                    FROM {t.invoices} i
                    WHERE i.tenant_id = :t AND i.paid_on <= :as_of {scope.filters("i")}
                    UNION ALL
                    SELECT d.customer_id, 0, 0, 1,
                           CASE WHEN d.resolved_on IS NULL OR d.resolved_on > :as_of
                                THEN 1 ELSE 0 END, 0, 0
                    FROM {t.disputes} d
                    WHERE d.tenant_id = :t AND d.opened_on <= :as_of {scope.filters("d")}
                    UNION ALL
                    SELECT r.customer_id, 0, 0, 0, 0,
                           CASE WHEN r.kind = 'refund' THEN 0 ELSE 1 END,
                           CASE WHEN r.kind = 'refund' THEN 1 ELSE 0 END
                    FROM {t.payment_returns} r
                    WHERE r.tenant_id = :t AND r.returned_on <= :as_of {scope.filters("r")}
                ) x GROUP BY customer_id"""
        ),
        scope.params(as_of=as_of),
    )
    return {
        r.customer_id: CustomerRecord(
            int(r.paid),
            int(r.on_time),
            int(r.disputes),
            int(r.open_disputes),
            int(r.reversals),
            int(r.refunds),
        )
        for r in rows
    }


async def reporting_currency(session: AsyncSession, t: Tables, tenant_id: str) -> str | None:
    value = await session.scalar(
        text(f"SELECT reporting_currency FROM {t.settings} WHERE tenant_id = :t"),
        {"t": tenant_id},
    )
    return str(value) if value is not None else None


async def converter(
    session: AsyncSession, t: Tables, tenant_id: str, target: str, on: date
) -> Converter:
    """The latest rate on or before `on` from each currency to `target`."""
    rows = await session.execute(
        text(
            f"""SELECT DISTINCT ON (currency) currency, rate FROM {t.fx_rates}
                WHERE tenant_id = :t AND to_currency = :target AND rate_date <= :on
                ORDER BY currency, rate_date DESC"""
        ),
        {"t": tenant_id, "target": target, "on": on},
    )
    return Converter(target, {r.currency: Decimal(r.rate) for r in rows})
