"""Invoice API under /v1: customers, terms templates, invoices and their lifecycle, PDFs."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.adapters.pdf import render_invoice_pdf
from services.invoice.api.schemas import (
    CreditNoteCreate,
    CustomerBody,
    CustomerCreate,
    DisputeCreate,
    DisputeResolve,
    DueDateChange,
    InvoiceCreate,
    InvoicePatch,
    IssueBody,
    ReasonBody,
    TermsTemplateCreate,
)
from services.invoice.application import commands
from services.invoice.application import repository as repo
from services.invoice.application.documents import pdf_view
from services.invoice.application.views import invoice_view
from services.invoice.config import InvoiceSettings
from services.invoice.domain import invoice as invoices
from services.invoice.domain.invoice import InvoiceStatus
from shared.auth import Principal
from shared.db import json_column
from shared.errors import NotFound
from shared.eventstore.store import AppendContext
from shared.money import Money
from shared.web.deps import (
    Requires,
    RequiresAny,
    append_context,
    db_session,
    run_command,
    runtime_of,
)
from shared.web.pagination import MAX_PAGE_SIZE, document_page

READ = "invoices:read"
WRITE = "invoices:write"

router = APIRouter(prefix="/v1", tags=["invoices"])
Reader = Annotated[Principal, Depends(Requires(READ))]
Writer = Annotated[Principal, Depends(Requires(WRITE))]
# The customer portal may open disputes and nothing else that writes.
DisputeWriter = Annotated[Principal, Depends(RequiresAny(WRITE, "disputes:write"))]
Session = Annotated[AsyncSession, Depends(db_session)]
Operation = Callable[[AsyncSession], Awaitable[tuple[int, Any]]]


def _settings(request: Request) -> InvoiceSettings:
    settings = runtime_of(request).settings
    assert isinstance(settings, InvoiceSettings)
    return settings


def _on(day: date | None) -> date:
    return day or commands.today()


# ---- customers -------------------------------------------------------------------------------


@router.post("/customers", status_code=201, tags=["customers"])
async def register_customer(
    request: Request, body: CustomerCreate, principal: Writer
) -> JSONResponse:
    data = commands.CustomerInput(**body.model_dump(exclude={"customer_id"}))
    return await run_command(
        request,
        principal,
        201,
        lambda s, c: commands.register_customer(s, c, body.customer_id, data),
    )


@router.put("/customers/{customer_id}", tags=["customers"])
async def update_customer(
    request: Request, customer_id: str, body: CustomerBody, principal: Writer
) -> JSONResponse:
    data = commands.CustomerInput(**body.model_dump())
    return await run_command(
        request, principal, 200, lambda s, c: commands.update_customer(s, c, customer_id, data)
    )


@router.get("/customers/{customer_id}", tags=["customers"])
async def get_customer(customer_id: str, principal: Reader, session: Session) -> Any:
    return await _document(
        session, "customers", "customer_id", customer_id, principal.tenant_id, "customer"
    )


@router.get("/customers", tags=["customers"])
async def list_customers(
    principal: Reader,
    session: Session,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> dict[str, Any]:
    return await _page(
        session,
        "customers",
        "customer_id",
        principal.tenant_id,
        {},
        cursor,
        limit,
        order_column="updated_at",
    )


# ---- terms templates ---------------------------------------------------------------------------


@router.post("/terms-templates", status_code=201, tags=["terms"])
async def define_terms_template(
    request: Request, body: TermsTemplateCreate, principal: Writer
) -> JSONResponse:
    return await run_command(
        request,
        principal,
        201,
        lambda s, c: commands.define_terms_template(s, c, body.name, body.terms),
    )


@router.get("/terms-templates/{template_id}", tags=["terms"])
async def get_terms_template(template_id: uuid.UUID, principal: Reader, session: Session) -> Any:
    return await repo.load_terms_template(session, principal.tenant_id, template_id)


# ---- invoices ----------------------------------------------------------------------------------


@router.post("/invoices", status_code=201)
async def draft_invoice(request: Request, body: InvoiceCreate, principal: Writer) -> JSONResponse:
    data = commands.DraftInput(
        **body.model_dump(exclude_none=True, exclude={"lines", "terms"}),
        lines=body.lines,
        terms=body.terms,
    )
    return await run_command(
        request, principal, 201, lambda s, c: commands.draft_invoice(s, c, data)
    )


@router.get(
    "/invoices/{invoice_id}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def invoice_pdf(
    request: Request, invoice_id: uuid.UUID, principal: Reader, session: Session
) -> Response:
    state, _ = await repo.load_invoice(session, principal.tenant_id, invoice_id)
    customer = await repo.load_customer(session, principal.tenant_id, state.customer_id)
    pdf = render_invoice_pdf(pdf_view(state, customer, _settings(request)))
    name = state.number or f"draft-{invoice_id}"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


@router.get("/invoices/{invoice_id}")
async def get_invoice(invoice_id: uuid.UUID, principal: Reader, session: Session) -> Any:
    return await _document(
        session, "invoices", "invoice_id", invoice_id, principal.tenant_id, "invoice"
    )


@router.get("/invoices")
async def list_invoices(
    principal: Reader,
    session: Session,
    customer_id: str | None = None,
    status: InvoiceStatus | None = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    due_before: date | None = None,
    due_after: date | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> dict[str, Any]:
    filters = {
        "customer_id": customer_id,
        "status": status.value if status else None,
        "currency": currency,
    }
    ranges = {"due_date <= :due_before": due_before, "due_date >= :due_after": due_after}
    return await _page(
        session,
        "invoices",
        "invoice_id",
        principal.tenant_id,
        filters,
        cursor,
        limit,
        ranges=ranges,
    )


@router.patch("/invoices/{invoice_id}", responses={409: {"description": "not a draft"}})
async def update_draft(
    request: Request, invoice_id: uuid.UUID, body: InvoicePatch, principal: Writer
) -> JSONResponse:
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    return await run_command(
        request, principal, 200, lambda s, c: commands.update_draft(s, c, invoice_id, changes)
    )


@router.post(
    "/invoices/{invoice_id}/issue",
    responses={
        409: {"description": "not a draft"},
        422: {"description": "credit refused"},
        503: {"description": "credit service unavailable"},
    },
)
async def issue_invoice(
    request: Request, invoice_id: uuid.UUID, body: IssueBody, principal: Writer
) -> Any:
    settings = _settings(request)
    credit: CreditCheckClient = request.app.state.credit_client
    token = request.headers["authorization"].split(" ", 1)[1]
    return await commands.issue_invoice(
        runtime_of(request).sessions,
        append_context(principal),
        principal,
        commands.IssueRequest(
            invoice_id, _on(body.issue_date), body.override_credit_check, body.override_reason
        ),
        credit,
        token,
        allow_when_credit_unavailable=settings.issue_when_credit_unavailable,
    )


def _change(
    request: Request,
    principal: Principal,
    invoice_id: uuid.UUID,
    decide: commands.Decide,
    status: int = 200,
) -> Awaitable[JSONResponse]:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return invoice_view(await commands.change_invoice(session, ctx, invoice_id, decide))

    return run_command(request, principal, status, action)


@router.post("/invoices/{invoice_id}/void")
async def void_invoice(
    request: Request, invoice_id: uuid.UUID, body: ReasonBody, principal: Writer
) -> JSONResponse:
    return await _change(
        request,
        principal,
        invoice_id,
        lambda s: invoices.void_invoice(s, body.reason, _on(body.on)),
    )


@router.post("/invoices/{invoice_id}/write-off")
async def write_off(
    request: Request, invoice_id: uuid.UUID, body: ReasonBody, principal: Writer
) -> JSONResponse:
    return await _change(
        request, principal, invoice_id, lambda s: invoices.write_off(s, body.reason, _on(body.on))
    )


@router.post("/invoices/{invoice_id}/credit-notes", status_code=201)
async def issue_credit_note(
    request: Request, invoice_id: uuid.UUID, body: CreditNoteCreate, principal: Writer
) -> JSONResponse:
    return await run_command(
        request,
        principal,
        201,
        lambda s, c: commands.issue_credit_note(
            s, c, invoice_id, body.amount, body.reason, _on(body.on)
        ),
    )


@router.post("/invoices/{invoice_id}/disputes", status_code=201)
async def open_dispute(
    request: Request, invoice_id: uuid.UUID, body: DisputeCreate, principal: DisputeWriter
) -> JSONResponse:
    dispute_id = uuid.uuid4()
    return await _change(
        request,
        principal,
        invoice_id,
        lambda s: invoices.open_dispute(
            s, dispute_id, Money.of_minor(body.amount, s.currency), body.reason, _on(body.on)
        ),
        status=201,
    )


@router.post("/invoices/{invoice_id}/disputes/{dispute_id}/resolve")
async def resolve_dispute(
    request: Request,
    invoice_id: uuid.UUID,
    dispute_id: uuid.UUID,
    body: DisputeResolve,
    principal: Writer,
) -> JSONResponse:
    return await run_command(
        request,
        principal,
        200,
        lambda s, c: commands.resolve_dispute(
            s, c, invoice_id, dispute_id, body.outcome, body.note, _on(body.on)
        ),
    )


@router.post("/invoices/{invoice_id}/due-date")
async def change_due_date(
    request: Request, invoice_id: uuid.UUID, body: DueDateChange, principal: Writer
) -> JSONResponse:
    return await _change(
        request,
        principal,
        invoice_id,
        lambda s: invoices.change_due_date(s, body.due_date, body.reason),
    )


# ---- read-model queries ------------------------------------------------------------------------

_TABLES = {"customers", "invoices"}


async def _document(
    session: AsyncSession, table: str, key: str, value: object, tenant: str, what: str
) -> Any:
    assert table in _TABLES
    row = (
        await session.execute(
            text(f"SELECT document FROM {repo.SCHEMA}.{table} WHERE tenant_id = :t AND {key} = :v"),
            {"t": tenant, "v": value},
        )
    ).first()
    if row is None:
        raise NotFound(f"{what} {value} not found", {key: str(value)})
    return json_column(row.document)


async def _page(
    session: AsyncSession,
    table: str,
    key: str,
    tenant: str,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int,
    *,
    ranges: dict[str, Any] | None = None,
    order_column: str = "created_at",
) -> dict[str, Any]:
    assert table in _TABLES
    return await document_page(
        session,
        f"{repo.SCHEMA}.{table}",
        key,
        tenant,
        filters,
        cursor,
        limit,
        ranges=ranges,
        order_column=order_column,
    )
