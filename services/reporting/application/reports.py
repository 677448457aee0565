"""The reports: each reads the projection tables for one tenant and returns a JSON-ready dict.

Money stays in integer minor units with its currency. Reports over several currencies either
keep them apart (aging lists each currency) or convert into the tenant's reporting currency
at the latest rate on or before the report's date (see docs/metrics.md, "Currencies").
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.application import reads
from services.reporting.application.reads import PaymentTiming, Scope
from services.reporting.domain import metrics
from services.reporting.domain.aging import (
    Aging,
    AgingLine,
    Basis,
    Bucket,
    InvoicePosition,
    age,
    age_groups,
    buckets_for,
    open_portions,
)
from services.reporting.domain.currency import Converter, MissingRates
from services.reporting.domain.metrics import DailyActivity
from services.reporting.projections.tables import Tables
from shared.errors import ValidationFailed

MAX_RANGE_DAYS = 3 * 366


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def check_range(start: date, end: date, max_days: int = MAX_RANGE_DAYS) -> None:
    if start > end:
        raise ValidationFailed("from must be on or before to", {"from": str(start), "to": str(end)})
    if (end - start).days >= max_days:
        raise ValidationFailed(f"a range may span at most {max_days} days")


# ---- currencies -----------------------------------------------------------------------------


async def _conversion(
    session: AsyncSession, t: Tables, scope: Scope, on: date
) -> tuple[Scope, Converter | None]:
    """The one currency a metric is computed in: the requested one; else the tenant's reporting
    currency (converting the others); else the only currency there is. None: no data at all."""
    if scope.currency is not None:
        return scope, Converter(scope.currency, {})
    present = await reads.currencies(session, t, scope)
    target = await reads.reporting_currency(session, t, scope.tenant_id)
    if target is None:
        if len(present) > 1:
            raise ValidationFailed(
                "the data is in several currencies: pass currency=, or set a reporting "
                "currency (PUT /v1/settings) and exchange rates (PUT /v1/fx-rates)",
                {"currencies": sorted(present)},
            )
        if not present:
            return scope, None
        target = next(iter(present))
    converter = await reads.converter(session, t, scope.tenant_id, target, on)
    try:
        converter.require(present)
    except MissingRates as exc:
        raise ValidationFailed(
            str(exc), {"reporting_currency": target, "missing_rates": exc.currencies}
        ) from None
    return scope, converter


async def _reporting_converter(
    session: AsyncSession, t: Tables, tenant_id: str, on: date
) -> Converter | None:
    """To the tenant's reporting currency, if one is set (rates may still be missing)."""
    target = await reads.reporting_currency(session, t, tenant_id)
    return None if target is None else await reads.converter(session, t, tenant_id, target, on)


def _by_customer(timings: Iterable[PaymentTiming]) -> dict[str, list[PaymentTiming]]:
    grouped: dict[str, list[PaymentTiming]] = defaultdict(list)
    for timing in timings:
        grouped[timing.customer_id].append(timing)
    return grouped


def _converted(activity: dict[str, list[DailyActivity]], conv: Converter) -> list[DailyActivity]:
    fields = [f.name for f in dataclasses.fields(DailyActivity) if f.name != "day"]
    return [
        DailyActivity(
            day=a.day, **{name: conv.convert(getattr(a, name), currency) for name in fields}
        )
        for currency, items in activity.items()
        for a in items
    ]


async def _receivables(
    session: AsyncSession, t: Tables, scope: Scope, conv: Converter, day: date
) -> int:
    by_currency = await reads.receivables_on(session, t, scope, day)
    return sum(conv.convert(amount, currency) for currency, amount in by_currency.items())


async def _activity(
    session: AsyncSession, t: Tables, scope: Scope, conv: Converter, start: date, end: date
) -> list[DailyActivity]:
    return _converted(await reads.daily_activity(session, t, scope, start, end), conv)


async def _current_receivables(
    session: AsyncSession, t: Tables, scope: Scope, conv: Converter, day: date
) -> int:
    """Not yet due on `day` (disputed included: a dispute does not make money overdue)."""
    total = 0
    for position in await reads.positions(session, t, scope, day):
        for portion in open_portions(position):
            if portion.due_date >= day:
                total += conv.convert(portion.undisputed + portion.disputed, portion.currency)
    return total


# ---- aging ----------------------------------------------------------------------------------


def _line(line: AgingLine, buckets: list[Bucket]) -> dict[str, Any]:
    return {
        "currency": line.currency,
        "buckets": {b.key: line.buckets[b.key] for b in buckets},
        "disputed": line.disputed,
        "overdue": line.overdue,
        "total": line.total,
        "invoices": line.invoice_count,
        "oldest_days_overdue": line.oldest_days_overdue,
    }


def _converted_line(
    lines: Iterable[AgingLine], conv: Converter, buckets: list[Bucket]
) -> dict[str, Any]:
    """Each currency's amounts converted, bucket by bucket; the total is the sum of the
    converted parts so the row adds up."""
    lines = list(lines)
    missing = conv.missing(line.currency for line in lines)
    usable = [line for line in lines if line.currency not in missing]
    converted = {
        b.key: sum(conv.convert(line.buckets[b.key], line.currency) for line in usable)
        for b in buckets
    }
    disputed = sum(conv.convert(line.disputed, line.currency) for line in usable)
    overdue = sum(conv.convert(line.overdue, line.currency) for line in usable)
    return {
        "currency": conv.target,
        "buckets": converted,
        "disputed": disputed,
        "overdue": overdue,
        "total": sum(converted.values()) + disputed,
        "missing_rates": missing,
    }


async def _aging_from_open_items(
    session: AsyncSession,
    t: Tables,
    scope: Scope,
    as_of: date,
    basis: Basis,
    buckets: list[Bucket],
    customers: bool,
) -> Aging:
    """Today's aging (any date on or after the tenant's horizon) from the open-items tables:
    the company totals from a few rows per due date, one customer from its own rows."""
    if scope.customer_id is not None:
        groups = await reads.open_groups(session, t, scope, as_of, basis, buckets, by_customer=True)
        return age_groups([*groups, *(replace(g, customer_id=None) for g in groups)], buckets)
    groups = await reads.open_groups(session, t, scope, as_of, basis, buckets, by_customer=False)
    if customers:
        groups += await reads.open_groups(
            session, t, scope, as_of, basis, buckets, by_customer=True
        )
    return age_groups(groups, buckets)


async def aging(
    session: AsyncSession,
    t: Tables,
    scope: Scope,
    as_of: date,
    basis: Basis,
    boundaries: Sequence[int],
    *,
    customers: bool = True,
    open_items: bool = True,
) -> dict[str, Any]:
    """Per customer (unless `customers` is False) and per currency. `open_items=False` forces
    the fold over every invoice, which the tests compare the fast path with."""
    buckets = buckets_for(basis, boundaries)
    horizon = await reads.aging_horizon(session, t, scope.tenant_id) if open_items else None
    if horizon is not None and as_of >= horizon:
        result = await _aging_from_open_items(session, t, scope, as_of, basis, buckets, customers)
    else:
        result = age(await reads.positions(session, t, scope, as_of), as_of, basis, buckets)
    if not customers:
        result = Aging({}, result.totals)
    names = await reads.customer_names(
        session, t, scope.tenant_id, (customer for customer, _ in result.by_customer)
    )
    conv = await _reporting_converter(session, t, scope.tenant_id, as_of)
    reporting_total = None
    if conv is not None and result.totals:
        reporting_total = _converted_line(result.totals.values(), conv, buckets)
    lines = [
        {"customer_id": customer, "customer_name": names.get(customer), **_line(line, buckets)}
        for (customer, _), line in sorted(result.by_customer.items())
    ]
    return {
        "as_of": as_of.isoformat(),
        "basis": basis.value,
        "buckets": [dataclasses.asdict(b) for b in buckets],
        "reporting_currency": conv.target if conv is not None else None,
        "customers": lines,
        "totals": [_line(line, buckets) for _, line in sorted(result.totals.items())],
        "reporting_total": reporting_total,
    }


async def aging_invoices(
    session: AsyncSession, t: Tables, scope: Scope, as_of: date, basis: Basis
) -> dict[str, Any]:
    """The invoice-level detail behind an aging report: each open obligation and its age."""
    positions = await reads.positions(session, t, scope, as_of)
    items = [
        {
            "invoice_id": p.invoice_id,
            "customer_id": p.customer_id,
            "currency": p.currency,
            "issue_date": p.issue_date.isoformat(),
            "due_date": p.due_date.isoformat(),
            "days": (as_of - (p.due_date if basis is Basis.DUE_DATE else p.issue_date)).days,
            "open": p.undisputed,
            "disputed": p.disputed,
        }
        for position in positions
        for p in open_portions(position)
    ]
    items.sort(key=lambda i: (i["customer_id"], i["due_date"], i["invoice_id"]))
    return {"as_of": as_of.isoformat(), "basis": basis.value, "items": items}


async def top_overdue(
    session: AsyncSession, t: Tables, scope: Scope, as_of: date, limit: int
) -> dict[str, Any]:
    """Customers with the most overdue money, compared in the reporting currency where rates
    allow (else each in its own currency)."""
    basis = Basis.DUE_DATE
    buckets = buckets_for(basis)
    result = age(await reads.positions(session, t, scope, as_of), as_of, basis, buckets)
    names = await reads.customer_names(session, t, scope.tenant_id)
    conv = await _reporting_converter(session, t, scope.tenant_id, as_of)
    rows: list[dict[str, Any]] = []
    for (customer, currency), line in result.by_customer.items():
        if line.overdue <= 0:
            continue
        convertible = conv is not None and not conv.missing([currency])
        shown = conv.target if conv is not None and convertible else currency

        def amount(value: int, currency: str = currency, convertible: bool = convertible) -> int:
            return conv.convert(value, currency) if conv is not None and convertible else value

        rows.append(
            {
                "customer_id": customer,
                "customer_name": names.get(customer),
                "currency": shown,
                "overdue": amount(line.overdue),
                "total": amount(line.total),
                "oldest_days_overdue": line.oldest_days_overdue,
            }
        )
    rows.sort(key=lambda r: (-r["overdue"], r["customer_id"]))
    return {"as_of": as_of.isoformat(), "customers": rows[:limit]}


# ---- DSO --------------------------------------------------------------------------------------


async def dso(
    session: AsyncSession,
    t: Tables,
    scope: Scope,
    start: date,
    end: date,
    window_days: int,
    countback_months: int = 12,
) -> dict[str, Any]:
    check_range(start, end)
    scope, conv = await _conversion(session, t, scope, end)
    if conv is None:
        return {
            "currency": None,
            "window_days": window_days,
            "series": [],
            "countback_dso": None,
            "best_possible_dso": None,
        }
    periods = metrics.month_periods(end, countback_months)
    first = min(start - timedelta(days=window_days - 1), periods[-1][0])
    opening_day = first - timedelta(days=1)
    opening = await _receivables(session, t, scope, conv, opening_day)
    activity = await _activity(session, t, scope, conv, first, end)
    window_opening = metrics.balances(opening, activity, first, end).get(
        start - timedelta(days=window_days), opening
    )
    series = metrics.dso_series(
        window_opening,
        [a for a in activity if a.day > start - timedelta(days=window_days)],
        start,
        end,
        window_days,
    )
    last = series[-1]
    period_sales = [
        ((b - a).days + 1, metrics.summed(activity, a, b).net_sales) for a, b in periods
    ]
    current = await _current_receivables(session, t, scope, conv, end)
    return {
        "currency": conv.target,
        "window_days": window_days,
        "series": [
            {
                "date": p.day.isoformat(),
                "receivables": p.receivables,
                "credit_sales": p.credit_sales,
                "dso": _decimal(p.dso),
            }
            for p in series
        ],
        "countback_dso": _decimal(metrics.countback_dso(last.receivables, period_sales)),
        "best_possible_dso": _decimal(
            metrics.best_possible_dso(current, last.credit_sales, window_days)
        ),
        "current_receivables": current,
    }


# ---- collection effectiveness and turnover, per period ------------------------------------------


def month_ranges(start: date, end: date) -> list[tuple[date, date]]:
    """Calendar months clipped to [start, end]."""
    ranges = []
    cursor = start
    while cursor <= end:
        next_month = (cursor.replace(day=1) + timedelta(days=32)).replace(day=1)
        last = min(end, next_month - timedelta(days=1))
        ranges.append((cursor, last))
        cursor = last + timedelta(days=1)
    return ranges


def _weighted(timings: Iterable[PaymentTiming], conv: Converter | None, field: str) -> Any:
    def weight(timing: PaymentTiming) -> int:
        if conv is not None and not conv.missing([timing.currency]):
            return conv.convert(timing.amount, timing.currency)
        return timing.amount

    return metrics.weighted_average_days((weight(x), getattr(x, field)) for x in timings)


async def collection(
    session: AsyncSession, t: Tables, scope: Scope, start: date, end: date
) -> dict[str, Any]:
    check_range(start, end)
    scope, conv = await _conversion(session, t, scope, end)
    if conv is None:
        return {"currency": None, "periods": []}
    opening = await _receivables(session, t, scope, conv, start - timedelta(days=1))
    activity = await _activity(session, t, scope, conv, start, end)
    balance = metrics.balances(opening, activity, start, end)
    timings = await reads.payment_timings(session, t, scope, start, end)
    periods = []
    for a, b in month_ranges(start, end):
        begin = balance.get(a - timedelta(days=1), opening)
        close = balance[b]
        moved = metrics.summed(activity, a, b)
        current = await _current_receivables(session, t, scope, conv, b)
        paid = [x for x in timings if a <= x.received_on <= b]
        periods.append(
            {
                "start": a.isoformat(),
                "end": b.isoformat(),
                "opening_receivables": begin,
                "credit_sales": moved.net_sales,
                "collections": moved.collections,
                "discounts": moved.discounts,
                "write_offs": moved.write_offs,
                "closing_receivables": close,
                "closing_current": current,
                "cei": _decimal(
                    metrics.collection_effectiveness(begin, moved.net_sales, close, current)
                ),
                "ar_turnover": _decimal(metrics.ar_turnover(moved.net_sales, begin, close)),
                "bad_debt_ratio": _decimal(
                    metrics.bad_debt_ratio(moved.write_offs, moved.net_sales)
                ),
                "average_days_to_pay": _decimal(_weighted(paid, conv, "days_to_pay")),
                "average_days_late": _decimal(_weighted(paid, conv, "days_late")),
            }
        )
    return {"currency": conv.target, "periods": periods}


# ---- customers' payment behaviour ---------------------------------------------------------------


def _months_back(as_of: date, months: int) -> list[tuple[date, date]]:
    """The last `months` calendar months up to as_of, oldest first (the last one partial)."""
    first = as_of.replace(day=1)
    for _ in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    return month_ranges(first, as_of)


async def behaviour(
    session: AsyncSession, t: Tables, scope: Scope, as_of: date, months: int
) -> dict[str, Any]:
    months_ = _months_back(as_of, months)
    history_start = months_[0][0]
    timings = await reads.payment_timings(session, t, scope, history_start, as_of)
    records = await reads.customer_records(session, t, scope, as_of)
    names = await reads.customer_names(session, t, scope.tenant_id)
    conv = await _reporting_converter(session, t, scope.tenant_id, as_of)
    positions = await reads.positions(session, t, scope, as_of)
    open_by_customer: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for (customer, currency), line in age(
        positions, as_of, Basis.DUE_DATE, buckets_for(Basis.DUE_DATE)
    ).by_customer.items():
        open_by_customer[customer][currency] = {"total": line.total, "overdue": line.overdue}
    by_customer = _by_customer(timings)
    customers = []
    for customer in sorted(set(records) | set(by_customer) | set(open_by_customer)):
        record = records.get(customer, reads.CustomerRecord())
        paid = by_customer.get(customer, [])
        monthly = [
            _weighted([x for x in paid if a <= x.received_on <= b], conv, "days_late")
            for a, b in months_
        ]
        slope = metrics.trend_slope(monthly)
        customers.append(
            {
                "customer_id": customer,
                "customer_name": names.get(customer),
                "invoices_paid": record.invoices_paid,
                "paid_on_time": record.paid_on_time,
                "on_time_rate": _decimal(
                    (Decimal(record.paid_on_time) / record.invoices_paid).quantize(
                        Decimal("0.0001")
                    )
                    if record.invoices_paid
                    else None
                ),
                "average_days_to_pay": _decimal(_weighted(paid, conv, "days_to_pay")),
                "average_days_late": _decimal(_weighted(paid, conv, "days_late")),
                "days_late_by_month": [
                    {"month": a.strftime("%Y-%m"), "average_days_late": _decimal(value)}
                    for (a, _), value in zip(months_, monthly, strict=True)
                ],
                "days_late_trend": _decimal(slope),
                "trend": metrics.trend_label(slope),
                "disputes": record.disputes,
                "open_disputes": record.open_disputes,
                "reversals": record.reversals,
                "refunds": record.refunds,
                "open": open_by_customer.get(customer, {}),
            }
        )
    return {"as_of": as_of.isoformat(), "months": months, "customers": customers}


# ---- cash-flow forecast -----------------------------------------------------------------------


async def forecast(
    session: AsyncSession, t: Tables, scope: Scope, as_of: date, weeks: int
) -> dict[str, Any]:
    scope, conv = await _conversion(session, t, scope, as_of)
    if conv is None:
        return {"as_of": as_of.isoformat(), "currency": None, "weeks": [], "later": 0}
    positions: list[InvoicePosition] = await reads.positions(session, t, scope, as_of)
    timings = await reads.payment_timings(session, t, scope, as_of - timedelta(days=365), as_of)
    by_customer = _by_customer(timings)
    days_late = {
        customer: value
        for customer, items in by_customer.items()
        if (value := _weighted(items, conv, "days_late")) is not None
    }
    default = _weighted(timings, conv, "days_late") or Decimal(0)
    items, disputed = [], 0
    for position in positions:
        for portion in open_portions(position):
            disputed += conv.convert(portion.disputed, portion.currency)
            if portion.undisputed > 0:
                items.append(
                    metrics.OpenItem(
                        portion.customer_id,
                        portion.due_date,
                        conv.convert(portion.undisputed, portion.currency),
                    )
                )
    result = metrics.forecast_collections(items, days_late, default, as_of, weeks)
    return {
        "as_of": as_of.isoformat(),
        "currency": conv.target,
        "default_days_late": _decimal(default),
        "weeks": [
            {
                "week_start": w.week_start.isoformat(),
                "week_end": w.week_end.isoformat(),
                "expected": w.expected,
                "items": w.items,
            }
            for w in result.weeks
        ],
        "later": result.later,
        "disputed": disputed,
        "total_open": sum(i.amount for i in items) + disputed,
    }
