"""Ledger API under /v1/ledger: the journal feed and exports after a cursor, the trial
balance, the AR reconciliation, the functional currency, and the period-end revaluation.
Tenant from the token; every query is filtered by it (docs/accounting.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.api.routes import Admin, CurrencyCode, Reader
from services.reporting.application import ledger
from services.reporting.application.revaluation import revalue, validate_period_end
from services.reporting.projections.journal import journal_lock_key
from services.reporting.projections.journal_store import (
    LedgerTables,
    configured_functional_currency,
    has_entries,
)
from shared.contracts.fields import FIRST_DAY, LAST_DAY
from shared.errors import StateConflict
from shared.web.deps import db_session, runtime_of

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
Session = Annotated[AsyncSession, Depends(db_session)]

MAX_PAGE = 5000
After = Annotated[
    int,
    Query(ge=0, le=2**62, description="Journal position already seen (0: from the start)."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many entries.")]
AsOf = Annotated[
    date | None,
    Query(ge=FIRST_DAY, le=LAST_DAY, description="Entry date up to which (default: today, UTC)."),
]


def ledger_tables(request: Request) -> LedgerTables:
    return LedgerTables(runtime_of(request).settings.schema_name)


Tables = Annotated[LedgerTables, Depends(ledger_tables)]


def _today() -> date:
    return datetime.now(UTC).date()


@router.get("/journal", summary="The journal as a JSON feed, after a cursor")
async def journal(
    principal: Reader, session: Session, t: Tables, after: After = 0, limit: Limit = 500
) -> dict[str, Any]:
    page = await ledger.page_after(session, t, principal.tenant_id, after, limit)
    return ledger.feed(page)


@router.get(
    "/export/{fmt}",
    summary="A Beancount, QuickBooks or Xero export of the entries after a cursor",
    response_class=Response,
)
async def export(
    fmt: ledger.ExportFormat,
    principal: Reader,
    session: Session,
    t: Tables,
    after: After = 0,
    limit: Limit = 500,
) -> Response:
    """The body is the file; ``X-Ledger-Next-After`` is the cursor for the next call and
    ``X-Ledger-Has-More`` says whether to make it at once."""
    chunk = await ledger.render_export(session, t, principal.tenant_id, fmt, after, limit)
    extension = {"beancount": "beancount", "json": "json"}.get(fmt, "csv")
    return Response(
        chunk.body,
        media_type=chunk.media_type,
        headers={
            "X-Ledger-After": str(after),
            "X-Ledger-Next-After": str(chunk.page.next_after),
            "X-Ledger-Has-More": "true" if chunk.page.has_more else "false",
            "X-Ledger-Entries": str(len(chunk.page.entries)),
            "Content-Disposition": (
                f'attachment; filename="ledger-{fmt}-{after}-{chunk.page.next_after}.{extension}"'
            ),
        },
    )


@router.get("/trial-balance", summary="Debits and credits per account and currency")
async def trial_balance(
    principal: Reader, session: Session, t: Tables, as_of: AsOf = None
) -> dict[str, Any]:
    return await ledger.trial_balance(session, t, principal.tenant_id, as_of or _today())


@router.get(
    "/reconciliation", summary="AR subledger per customer against the control account and aging"
)
async def reconciliation(
    principal: Reader,
    session: Session,
    t: Tables,
    as_of: AsOf = None,
    only_differences: Annotated[bool, Query(description="Only rows that disagree.")] = False,
) -> dict[str, Any]:
    today = _today()
    report = await ledger.reconciliation(session, t, principal.tenant_id, as_of or today, today)
    if only_differences:
        report["customers"] = [r for r in report["customers"] if r["difference_minor"]]
        report["control"] = [r for r in report["control"] if r["difference_minor"]]
    return report


@router.get("/sync-log", summary="Exports and connector syncs, newest first")
async def sync_log(
    principal: Reader,
    session: Session,
    t: Tables,
    target: Annotated[str | None, Query(max_length=1000, description="Only this target.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return {"runs": await ledger.sync_runs(session, t, principal.tenant_id, target, limit)}


class LedgerSettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    functional_currency: CurrencyCode


@router.get("/settings", summary="The tenant's functional currency")
async def get_settings(principal: Reader, session: Session, t: Tables) -> dict[str, Any]:
    configured = await configured_functional_currency(session, t, principal.tenant_id)
    return {
        "functional_currency": configured
        or await ledger.ledger_currency(session, t, principal.tenant_id),
        "frozen": configured is not None,
    }


@router.put("/settings", summary="Choose the functional currency (only before the first entry)")
async def put_settings(
    body: LedgerSettingsBody, principal: Admin, session: Session, t: Tables
) -> dict[str, Any]:
    """The journal is valued in one currency: once it has entries, changing it would need a
    revaluation of everything, so it is refused."""
    tenant = principal.tenant_id
    async with session.begin():
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": journal_lock_key(t.schema, tenant)},
        )
        current = await configured_functional_currency(session, t, tenant)
        if current != body.functional_currency and await has_entries(session, t, tenant):
            raise StateConflict(
                "the journal already has entries in another functional currency",
                {"functional_currency": current},
            )
        await session.execute(
            text(
                f"""INSERT INTO {t.settings} (tenant_id, functional_currency, chosen_by)
                    VALUES (:t, :c, 'admin')
                    ON CONFLICT (tenant_id) DO UPDATE SET functional_currency = EXCLUDED.functional_currency,
                        chosen_by = 'admin', updated_at = now()"""
            ),
            {"t": tenant, "c": body.functional_currency},
        )
    return {"functional_currency": body.functional_currency, "frozen": True}


class RevaluationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_end: date = Field(
        description="The last day of the period (ISO date); the reversal is dated the day after."
    )


@router.post("/revaluations", summary="Revalue open foreign items at a period end (unrealized FX)")
async def post_revaluation(
    body: RevaluationBody, principal: Admin, session: Session, t: Tables
) -> dict[str, Any]:
    """Posts one revaluation entry per open foreign invoice or unapplied payment, and its
    reversal on the next day; returns what this call posted. Idempotent: the same period end
    again posts nothing. A missing rate is a 422 naming the currency and date (nothing posted)."""
    validate_period_end(body.period_end, _today())
    async with session.begin():
        run = await revalue(session, t, principal.tenant_id, body.period_end)
    return run.as_json()
