"""What the payments service knows of invoices (`invoice_balances`).

Amounts come from the invoice stream (issue, late fees, credit notes, write-offs, discounts
taken); `allocated_minor` is this service's own allocations, written in the transaction that
allocates, under the row's lock. So two payments allocating to one invoice at the same time are
serialised, and the second sees what the first took.

    open = total_due - credited - written_off - discount - allocated   (0 unless status 'open')
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.adapters import SCHEMA
from services.payments.domain.matching import OpenInvoice
from services.payments.domain.payment import InvoiceOpen
from shared.money import Money, Rounding

_OPEN = """GREATEST(0, total_due_minor - credited_minor - written_off_minor - discount_minor
                   - allocated_minor)"""
_COLUMNS = f"""invoice_id, customer_id, number, currency, status, issue_date, due_date,
               discount_percent, discount_days, {_OPEN} AS open_minor"""


async def lock_for_allocation(
    session: AsyncSession, tenant_id: str, invoice_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, InvoiceOpen]:
    """Lock the invoices' rows (in id order: no deadlock between two allocators) and read them."""
    ids = sorted(set(invoice_ids))
    rows = (
        await session.execute(
            text(
                f"""SELECT {_COLUMNS} FROM {SCHEMA}.invoice_balances
                    WHERE tenant_id = :t AND invoice_id = ANY(:ids)
                    ORDER BY invoice_id FOR UPDATE"""
            ),
            {"t": tenant_id, "ids": ids},
        )
    ).all()
    return {
        r.invoice_id: InvoiceOpen(
            invoice_id=r.invoice_id,
            customer_id=r.customer_id,
            open_amount=Money.of_minor(r.open_minor, r.currency.strip()),
            receivable=r.status == "open",
            issue_date=r.issue_date,
        )
        for r in rows
    }


async def add_allocated(
    session: AsyncSession, tenant_id: str, invoice_id: uuid.UUID, delta_minor: int
) -> None:
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.invoice_balances SET allocated_minor = allocated_minor + :d,
                    updated_at = now()
                WHERE tenant_id = :t AND invoice_id = :i"""
        ),
        {"t": tenant_id, "i": invoice_id, "d": delta_minor},
    )


async def open_invoices(
    session: AsyncSession,
    tenant_id: str,
    currency: str,
    *,
    customer_id: str | None,
    today: date,
    numbers_in: str | None = None,
    limit: int = 500,
) -> list[OpenInvoice]:
    """Open invoices to match against: the customer's, or (customer unknown) the tenant's whose
    number appears in `numbers_in`, plus the oldest-due ones for amount rules."""
    where = ["tenant_id = :t", "status = 'open'", "currency = :c", f"{_OPEN} > 0"]
    params: dict[str, Any] = {"t": tenant_id, "c": currency, "limit": limit}
    if customer_id is not None:
        where.append("customer_id = :cust")
        params["cust"] = customer_id
    rows = (
        await session.execute(
            text(
                f"""SELECT {_COLUMNS} FROM {SCHEMA}.invoice_balances WHERE {" AND ".join(where)}
                    ORDER BY due_date, number, invoice_id LIMIT :limit"""
            ),
            params,
        )
    ).all()
    found = {r.invoice_id: r for r in rows}
    if customer_id is None and numbers_in:
        # Invoice numbers named in the text may be beyond the oldest-due window: fetch them too.
        named = (
            await session.execute(
                text(
                    f"""SELECT {_COLUMNS} FROM {SCHEMA}.invoice_balances
                        WHERE {" AND ".join(where)}
                          AND (position(upper(regexp_replace(number, '[^A-Za-z0-9]', '', 'g'))
                                        IN :squashed) > 0
                               OR ltrim(substring(number from '(\\d+)\\D*$'), '0') = ANY(:serials))"""
                ),
                {**params, "squashed": _squash(numbers_in), "serials": _serials(numbers_in)},
            )
        ).all()
        found.update({r.invoice_id: r for r in named})
    return [_open_invoice(r, today) for r in found.values()]


def _squash(value: str) -> str:
    return "".join(ch for ch in value.upper() if ch.isalnum())


def _serials(value: str) -> list[str]:
    """Digit runs of the text without leading zeros: "inv 2026/123" may name INV-2026-000123,
    whose serial (its last digit group) is 123. The matcher then decides what really matches."""
    return sorted({run.lstrip("0") for run in re.findall(r"\d+", value) if run.lstrip("0")})


def _open_invoice(row: Row[Any], today: date) -> OpenInvoice:
    currency = row.currency.strip()
    open_amount = Money.of_minor(row.open_minor, currency)
    return OpenInvoice(
        invoice_id=row.invoice_id,
        customer_id=row.customer_id,
        number=row.number or str(row.invoice_id),
        open_amount=open_amount,
        due_date=row.due_date,
        issue_date=row.issue_date,
        discounted_amount=_discounted(row, open_amount, today),
    )


def _discounted(row: Row[Any], open_amount: Money, today: date) -> Money | None:
    """What settles the invoice today when its early-payment discount still applies.

    The discount is a percentage of the open amount, rounded half up, as the invoice service
    grants it (`services/invoice/domain/terms.early_payment_discount`)."""
    if row.discount_percent is None or row.discount_days is None or row.issue_date is None:
        return None
    if today > row.issue_date + timedelta(days=row.discount_days):
        return None
    discount = open_amount.percentage(Decimal(row.discount_percent), Rounding.HALF_UP)
    if discount.is_zero() or discount >= open_amount:
        return None
    return open_amount - discount


async def record_invoice_event(
    session: AsyncSession, tenant_id: str, invoice_id: uuid.UUID, changes: dict[str, Any]
) -> None:
    """Apply one invoice event's effect. `changes` holds column deltas (`*_minor` keys) and
    plain values; the row must exist (created by `upsert_invoice`)."""
    sets = ["updated_at = now()"]
    params: dict[str, Any] = {"t": tenant_id, "i": invoice_id}
    for column, value in changes.items():
        if column.endswith("_minor"):
            sets.append(f"{column} = {column} + :{column}")
        else:
            sets.append(f"{column} = :{column}")
        params[column] = value
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.invoice_balances SET {", ".join(sets)}
                WHERE tenant_id = :t AND invoice_id = :i"""
        ),
        params,
    )


async def upsert_invoice(
    session: AsyncSession,
    tenant_id: str,
    invoice_id: uuid.UUID,
    values: dict[str, Any],
    insert_only: dict[str, Any] | None = None,
) -> None:
    """Create the row on first sight (a draft or an issue), or set `values`' columns;
    `insert_only` columns are written only when the row is new."""
    columns = sorted(values)
    inserted = sorted({**(insert_only or {}), **values})
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.invoice_balances (tenant_id, invoice_id, {", ".join(inserted)})
                VALUES (:t, :i, {", ".join(":" + c for c in inserted)})
                ON CONFLICT (tenant_id, invoice_id) DO UPDATE SET
                    {", ".join(f"{c} = EXCLUDED.{c}" for c in columns)}, updated_at = now()"""
        ),
        {"t": tenant_id, "i": invoice_id, **(insert_only or {}), **values},
    )


async def balance_view(
    session: AsyncSession, tenant_id: str, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    rows = (
        await session.execute(
            text(
                f"""SELECT {_COLUMNS} FROM {SCHEMA}.invoice_balances
                    WHERE tenant_id = :t AND invoice_id = ANY(:ids)"""
            ),
            {"t": tenant_id, "ids": list(invoice_ids)},
        )
    ).all()
    return {
        r.invoice_id: {
            "invoice_id": str(r.invoice_id),
            "number": r.number,
            "status": r.status,
            "open_amount": Money.of_minor(r.open_minor, r.currency.strip()).model_dump(),
        }
        for r in rows
    }
