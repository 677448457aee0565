"""GET /v1/customers/{customer_id}/statement: a customer's statement of account as JSON, CSV or
PDF. Tenant from the token; a customer the tenant does not know gets the same empty statement as
one without activity, so the answer never tells whether another tenant has that customer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.reporting.api.routes import CurrencyFilter, Projection, Reader, Session
from services.reporting.application import statement as statements
from services.reporting.application.statement_render import filename, render_csv, render_pdf
from shared.contracts.fields import FIRST_DAY, LAST_DAY
from shared.errors import ValidationFailed

router = APIRouter(prefix="/v1", tags=["reporting"])

_DAYS = f"{FIRST_DAY} to {LAST_DAY}"
CustomerId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
FromDate = Annotated[
    date | None,
    Query(
        ge=FIRST_DAY,
        le=LAST_DAY,
        description=f"First day of the period ({_DAYS}; default: the first of to_date's month).",
    ),
]
ToDate = Annotated[
    date | None,
    Query(
        ge=FIRST_DAY,
        le=LAST_DAY,
        description=f"Last day of the period ({_DAYS}, inclusive; default: today, UTC).",
    ),
]
StatementFormat = Annotated[
    Literal["json", "csv", "pdf"], Query(description="json (default), csv or pdf.")
]


class StatementLineOut(BaseModel):
    date: date
    kind: str = Field(
        description="invoice, late_fee, payment, refund, reversal, credit_note, discount, "
        "write_off or void"
    )
    document_id: str = Field(description="The invoice (or payment) the line belongs to.")
    reference: str | None = Field(description="The invoice number, where there is one.")
    description: str
    debit_minor: int
    credit_minor: int
    balance_minor: int = Field(description="Running balance after this line.")


class CurrencyStatementOut(BaseModel):
    currency: str
    opening_balance_minor: int = Field(description="Balance owed at the end of from_date - 1.")
    lines: list[StatementLineOut]
    debits_minor: int
    credits_minor: int
    closing_balance_minor: int = Field(description="opening + debits - credits.")
    aging: dict[str, int] = Field(
        description="As of to_date: the aging report's buckets (by due date), `disputed`, and "
        "`on_account` (balance not in an open invoice, e.g. unapplied cash, negative). "
        "They add up to the closing balance."
    )


class StatementOut(BaseModel):
    customer_id: str
    customer_name: str | None
    from_date: date
    to_date: date
    currencies: list[CurrencyStatementOut]


def _today() -> date:
    return datetime.now(UTC).date()


@router.get(
    "/customers/{customer_id}/statement",
    summary="A customer's statement of account for a period",
    response_model=StatementOut,
    responses={200: {"content": {"text/csv": {}, "application/pdf": {}}}},
)
async def customer_statement(
    customer_id: CustomerId,
    principal: Reader,
    session: Session,
    t: Projection,
    from_date: FromDate = None,
    to_date: ToDate = None,
    currency: CurrencyFilter = None,
    format: StatementFormat = "json",
) -> Any:
    """Opening balance, every invoice, late fee, payment received, refund, reversal, credit
    note, discount, write-off and void of the period with a running balance, the closing
    balance and its aging, per currency. Money in integer minor units (major units in CSV)."""
    end = to_date or _today()
    start = from_date or end.replace(day=1)
    if start > end:
        raise ValidationFailed(
            "from_date must be on or before to_date",
            {"from_date": start.isoformat(), "to_date": end.isoformat()},
        )
    st = await statements.statement(
        session, t, principal.tenant_id, customer_id, start, end, currency
    )
    if format == "csv":
        return Response(
            render_csv(st),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename(st, "csv")}"'},
        )
    if format == "pdf":
        return Response(
            render_pdf(st),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{filename(st, "pdf")}"'},
        )
    return statements.statement_json(st)
