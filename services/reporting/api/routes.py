"""Reporting API under /v1: every report as JSON or CSV, the reporting currency and exchange
rates; and the dashboard page. Every query is scoped to the caller's tenant."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.application import reports
from services.reporting.application.reads import Scope
from services.reporting.domain.aging import Basis, parse_boundaries
from services.reporting.projections.tables import Tables
from shared.auth import Principal
from shared.contracts.fields import FIRST_DAY, LAST_DAY
from shared.errors import ValidationFailed
from shared.money import Money, currency_exponent
from shared.web.deps import Requires, db_session, runtime_of
from shared.web.spreadsheet import safe_cell

router = APIRouter(prefix="/v1", tags=["reporting"])
pages = APIRouter(tags=["dashboard"])
Reader = Annotated[Principal, Depends(Requires("reporting:read"))]
Admin = Annotated[Principal, Depends(Requires("reporting:admin"))]
Session = Annotated[AsyncSession, Depends(db_session)]
Format = Literal["json", "csv"]
_DASHBOARD = Path(__file__).parent / "static" / "dashboard.html"
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _known_currency(code: str) -> str:
    currency_exponent(code)  # raises for a code that is not ISO 4217
    return code


CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(_known_currency)]
CustomerFilter = Annotated[
    str | None, Query(pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="Only this customer.")
]
CurrencyFilter = Annotated[
    CurrencyCode | None, Query(description="Only this currency (no conversion).")
]
_DAYS = f"{FIRST_DAY} to {LAST_DAY}"
AsOf = Annotated[
    date | None,
    Query(ge=FIRST_DAY, le=LAST_DAY, description=f"Report date ({_DAYS}; default: today, UTC)."),
]
FormatParam = Annotated[Format, Query(description="json (default) or csv.")]


def tables(request: Request) -> Tables:
    return Tables(runtime_of(request).settings.schema_name)


Projection = Annotated[Tables, Depends(tables)]


def _today() -> date:
    return datetime.now(UTC).date()


def _scope(principal: Principal, customer_id: str | None, currency: str | None) -> Scope:
    return Scope(principal.tenant_id, customer_id, currency)


# ---- CSV --------------------------------------------------------------------------------------


def _major(amount: int, currency: str | None) -> str:
    """CSV carries amounts in major units (12.34), as spreadsheets and BI tools expect."""
    if currency is None:
        return str(amount)
    return str(Money.of_minor(amount, currency).to_decimal())


def _cell(value: Any) -> Any:
    """Text is neutralised against formula injection; numbers (also "-1.50") stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and not _NUMBER.match(value):
        return safe_cell(value)
    return value


def csv_response(
    name: str, columns: list[str], rows: list[dict[str, Any]], money: set[str]
) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                _major(row[c], row.get("currency"))
                if c in money and row.get(c) is not None
                else _cell(row.get(c))
                for c in columns
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _respond(
    report: dict[str, Any],
    fmt: Format,
    name: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    money: set[str],
) -> Any:
    return report if fmt == "json" else csv_response(name, columns, rows, money)


# ---- reports ----------------------------------------------------------------------------------


@router.get("/reports/aging", summary="Aging as of any date, per customer and currency")
async def aging_report(
    principal: Reader,
    session: Session,
    t: Projection,
    as_of: AsOf = None,
    basis: Basis = Basis.DUE_DATE,
    buckets: Annotated[
        str | None,
        Query(max_length=120, description="Bucket boundaries in days, e.g. 30,60,90 (default)."),
    ] = None,
    customer_id: CustomerFilter = None,
    currency: CurrencyFilter = None,
    detail: Annotated[
        Literal["customers", "totals"],
        Query(description="`totals`: only the company's totals per currency, no customer lines."),
    ] = "customers",
    format: FormatParam = "json",
) -> Any:
    try:
        boundaries = parse_boundaries(buckets)
    except ValueError as exc:
        raise ValidationFailed(str(exc), {"buckets": buckets}) from None
    report = await reports.aging(
        session,
        t,
        _scope(principal, customer_id, currency),
        as_of or _today(),
        basis,
        boundaries,
        customers=detail == "customers",
    )
    keys = [b["key"] for b in report["buckets"]]
    rows = [{**c, **c["buckets"]} for c in report["customers"]] + [
        {"customer_id": "TOTAL", **line, **line["buckets"]} for line in report["totals"]
    ]
    money = {*keys, "disputed", "overdue", "total"}
    columns = ["customer_id", "customer_name", "currency", *keys, "disputed", "overdue", "total"]
    return _respond(report, format, f"aging-{report['as_of']}", rows, columns, money)


@router.get("/reports/aging/invoices", summary="The open items behind an aging report")
async def aging_items(
    principal: Reader,
    session: Session,
    t: Projection,
    as_of: AsOf = None,
    basis: Basis = Basis.DUE_DATE,
    customer_id: CustomerFilter = None,
    currency: CurrencyFilter = None,
    format: FormatParam = "json",
) -> Any:
    report = await reports.aging_invoices(
        session, t, _scope(principal, customer_id, currency), as_of or _today(), basis
    )
    columns = [
        "invoice_id",
        "customer_id",
        "currency",
        "issue_date",
        "due_date",
        "days",
        "open",
        "disputed",
    ]
    name = f"aging-items-{report['as_of']}"
    return _respond(report, format, name, report["items"], columns, {"open", "disputed"})


@router.get("/reports/top-overdue", summary="Customers with the most overdue money")
async def top_overdue(
    principal: Reader,
    session: Session,
    t: Projection,
    as_of: AsOf = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    format: FormatParam = "json",
) -> Any:
    report = await reports.top_overdue(
        session, t, _scope(principal, None, None), as_of or _today(), limit
    )
    columns = [
        "customer_id",
        "customer_name",
        "currency",
        "overdue",
        "total",
        "oldest_days_overdue",
    ]
    return _respond(
        report, format, "top-overdue", report["customers"], columns, {"overdue", "total"}
    )


def _range(start: date | None, end: date | None, default_days: int) -> tuple[date, date]:
    end = end or _today()
    start = start or date.fromordinal(end.toordinal() - default_days + 1)
    return start, end


From = Annotated[
    date | None,
    Query(alias="from", ge=FIRST_DAY, le=LAST_DAY, description=f"First day ({_DAYS}, inclusive)."),
]
To = Annotated[
    date | None,
    Query(
        alias="to",
        ge=FIRST_DAY,
        le=LAST_DAY,
        description=f"Last day ({_DAYS}, inclusive; default today).",
    ),
]


@router.get("/reports/dso", summary="DSO daily series (standard), countback and best possible")
async def dso_report(
    principal: Reader,
    session: Session,
    t: Projection,
    start: From = None,
    end: To = None,
    window_days: Annotated[int, Query(ge=1, le=365)] = 90,
    customer_id: CustomerFilter = None,
    currency: CurrencyFilter = None,
    format: FormatParam = "json",
) -> Any:
    start, end = _range(start, end, 90)
    report = await reports.dso(
        session, t, _scope(principal, customer_id, currency), start, end, window_days
    )
    rows = [{**p, "currency": report["currency"]} for p in report["series"]]
    columns = ["date", "currency", "receivables", "credit_sales", "dso"]
    money = {"receivables", "credit_sales"}
    return _respond(report, format, "dso", rows, columns, money)


@router.get(
    "/reports/collection",
    summary="Per month: CEI, AR turnover, bad-debt ratio, average days to pay and late",
)
async def collection_report(
    principal: Reader,
    session: Session,
    t: Projection,
    start: From = None,
    end: To = None,
    customer_id: CustomerFilter = None,
    currency: CurrencyFilter = None,
    format: FormatParam = "json",
) -> Any:
    start, end = _range(start, end, 365)
    report = await reports.collection(
        session, t, _scope(principal, customer_id, currency), start, end
    )
    rows = [{**p, "currency": report["currency"]} for p in report["periods"]]
    money = {
        "opening_receivables",
        "credit_sales",
        "collections",
        "discounts",
        "write_offs",
        "closing_receivables",
        "closing_current",
    }
    columns = ["start", "end", "currency", *sorted(money), "cei", "ar_turnover"]
    columns += ["bad_debt_ratio", "average_days_to_pay", "average_days_late"]
    return _respond(report, format, "collection", rows, columns, money)


@router.get("/reports/customers", summary="Each customer's payment behaviour")
async def behaviour_report(
    principal: Reader,
    session: Session,
    t: Projection,
    as_of: AsOf = None,
    months: Annotated[int, Query(ge=2, le=36, description="Months of trend history.")] = 6,
    customer_id: CustomerFilter = None,
    format: FormatParam = "json",
) -> Any:
    report = await reports.behaviour(
        session, t, _scope(principal, customer_id, None), as_of or _today(), months
    )
    columns = [
        "customer_id",
        "customer_name",
        "invoices_paid",
        "paid_on_time",
        "on_time_rate",
        "average_days_to_pay",
        "average_days_late",
        "days_late_trend",
        "trend",
        "disputes",
        "open_disputes",
        "reversals",
        "refunds",
    ]
    return _respond(report, format, "customer-behaviour", report["customers"], columns, set())


@router.get("/reports/forecast", summary="Expected collections by week")
async def forecast_report(
    principal: Reader,
    session: Session,
    t: Projection,
    as_of: AsOf = None,
    weeks: Annotated[int, Query(ge=1, le=104)] = 13,
    customer_id: CustomerFilter = None,
    currency: CurrencyFilter = None,
    format: FormatParam = "json",
) -> Any:
    report = await reports.forecast(
        session, t, _scope(principal, customer_id, currency), as_of or _today(), weeks
    )
    rows = [{**w, "currency": report["currency"]} for w in report["weeks"]]
    rows.append(
        {"week_start": "later", "expected": report["later"], "currency": report["currency"]}
    )
    columns = ["week_start", "week_end", "currency", "expected", "items"]
    return _respond(report, format, "forecast", rows, columns, {"expected"})


# ---- settings: reporting currency and exchange rates ---------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SettingsBody(Body):
    reporting_currency: CurrencyCode


class Rate(Body):
    currency: CurrencyCode
    to_currency: CurrencyCode
    rate_date: date
    rate: Annotated[Decimal, Field(gt=0, lt=Decimal("1e12"), max_digits=22, decimal_places=10)]


class RatesBody(Body):
    rates: Annotated[list[Rate], Field(min_length=1, max_length=1000)]


@router.get("/settings", summary="The tenant's reporting currency")
async def get_settings(principal: Reader, session: Session, t: Projection) -> dict[str, Any]:
    row = await session.scalar(
        text(f"SELECT reporting_currency FROM {t.settings} WHERE tenant_id = :t"),
        {"t": principal.tenant_id},
    )
    return {"reporting_currency": row}


@router.put("/settings", summary="Set the tenant's reporting currency")
async def put_settings(
    body: SettingsBody, principal: Admin, session: Session, t: Projection
) -> dict[str, Any]:
    async with session.begin():
        await session.execute(
            text(
                f"""INSERT INTO {t.settings} (tenant_id, reporting_currency) VALUES (:t, :c)
                    ON CONFLICT (tenant_id) DO UPDATE SET
                        reporting_currency = EXCLUDED.reporting_currency, updated_at = now()"""
            ),
            {"t": principal.tenant_id, "c": body.reporting_currency},
        )
    return {"reporting_currency": body.reporting_currency}


@router.put("/fx-rates", summary="Add or correct exchange rates (units of to_currency per unit)")
async def put_rates(
    body: RatesBody, principal: Admin, session: Session, t: Projection
) -> dict[str, Any]:
    same = [r.currency for r in body.rates if r.currency == r.to_currency]
    if same:
        raise ValidationFailed(
            "a rate converts between two different currencies", {"currencies": same}
        )
    async with session.begin():
        await session.execute(
            text(
                f"""INSERT INTO {t.fx_rates} (tenant_id, currency, to_currency, rate_date, rate)
                    VALUES (:t, :currency, :to_currency, :rate_date, :rate)
                    ON CONFLICT (tenant_id, currency, to_currency, rate_date)
                    DO UPDATE SET rate = EXCLUDED.rate"""
            ),
            [{"t": principal.tenant_id, **r.model_dump()} for r in body.rates],
        )
    return {"saved": len(body.rates)}


@router.get("/fx-rates", summary="Exchange rates, newest first")
async def list_rates(
    principal: Reader,
    session: Session,
    t: Projection,
    currency: CurrencyFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await session.execute(
        text(
            f"""SELECT currency, to_currency, rate_date, rate FROM {t.fx_rates}
                WHERE tenant_id = :t AND (CAST(:c AS text) IS NULL OR currency = :c)
                ORDER BY rate_date DESC, currency, to_currency LIMIT :limit"""
        ),
        {"t": principal.tenant_id, "c": currency, "limit": limit},
    )
    return {
        "rates": [
            {
                "currency": r.currency,
                "to_currency": r.to_currency,
                "rate_date": r.rate_date.isoformat(),
                "rate": str(r.rate.normalize()),
            }
            for r in rows
        ]
    }


# ---- the dashboard page -------------------------------------------------------------------------


@pages.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The page holds no data; its script calls the reports with the user's own token."""
    return HTMLResponse(
        _DASHBOARD.read_text(encoding="utf-8"),
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
