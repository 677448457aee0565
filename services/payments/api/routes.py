"""Payments API under /v1: payments, allocation, matching and review, refunds and reversals,
bank statements, customer aliases, and the gateway webhook."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.adapters import SCHEMA
from services.payments.adapters import invoices as balances
from services.payments.adapters.statements import CsvColumns, parse_statement
from services.payments.application import gateway, matching, statements
from services.payments.application import payments as payment_app
from services.payments.config import PaymentsSettings
from services.payments.domain import payment as payments
from services.payments.domain.payment import AllocationRequest
from services.payments.domain.webhook import (
    CHECKOUT_REFERENCE_PREFIX,
    interpret,
    parse_event,
    verify_signature,
)
from shared.auth import Principal
from shared.contracts.payments import MethodDetails
from shared.errors import NotFound, ValidationFailed
from shared.eventstore.store import AppendContext, retry_on_conflict
from shared.money import Money
from shared.web.deps import Action, Requires, db_session, run_command, runtime_of
from shared.web.pagination import MAX_PAGE_SIZE, document_page

router = APIRouter(prefix="/v1", tags=["payments"])
Reader = Annotated[Principal, Depends(Requires("payments:read"))]
Writer = Annotated[Principal, Depends(Requires("payments:write"))]
Session = Annotated[AsyncSession, Depends(db_session)]
CustomerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Rate = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=12)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AllocationBody(Body):
    invoice_id: uuid.UUID
    amount: Money  # in the invoice's currency
    rate: Rate = Decimal(1)  # invoice currency per unit of the payment's currency


class PaymentBody(Body):
    customer_id: CustomerId
    amount: Money
    method: Literal["card", "ach", "direct_debit", "bank_transfer", "wallet", "cheque", "cash"]
    received_on: date
    reference: Annotated[str, Field(max_length=500)] | None = None
    details: MethodDetails | None = None
    allocations: Annotated[list[AllocationBody], Field(max_length=200)] = []
    auto_match: bool = True


class AllocateBody(Body):
    allocations: Annotated[list[AllocationBody], Field(min_length=1, max_length=200)]
    allocated_on: date | None = None


class UnallocateBody(Body):
    reason: Reason


class RefundBody(Body):
    amount: Money
    reason: Reason
    refunded_on: date | None = None


class ReversalBody(Body):
    amount: Money | None = None  # default: everything still held
    kind: Literal["chargeback", "bounced", "returned", "other"]
    reason: Reason
    reversed_on: date | None = None


class StatementBody(Body):
    format: Literal["csv", "camt053", "ofx"]
    content: Annotated[str, Field(min_length=1)]
    currency: str | None = None
    csv_columns: CsvColumns | None = None


class LineMatchBody(Body):
    payment_id: uuid.UUID | None = None
    customer_id: CustomerId | None = None
    allocations: Annotated[list[AllocationBody], Field(max_length=200)] = []


class IgnoreBody(Body):
    reason: Reason


class AliasBody(Body):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
    customer_id: CustomerId


def _settings(request: Request) -> PaymentsSettings:
    settings = runtime_of(request).settings
    assert isinstance(settings, PaymentsSettings)
    return settings


def _today() -> date:
    return datetime.now(UTC).date()


def _requests(bodies: list[AllocationBody]) -> list[AllocationRequest]:
    """Ids are fixed before the transaction so a conflict retry re-sends the same allocation."""
    return [
        AllocationRequest(
            invoice_id=b.invoice_id, amount=b.amount, rate=b.rate, allocation_id=uuid.uuid4()
        )
        for b in bodies
    ]


# ---- payments ------------------------------------------------------------------------------------


@router.post("/payments", status_code=201)
async def record_payment(request: Request, body: PaymentBody, principal: Writer) -> JSONResponse:
    """Record money received; apply the given allocations, or let auto-matching try."""
    payment_id = uuid.uuid4()
    requests = _requests(body.allocations)
    policy = _settings(request).matching_policy()

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        ctx = ctx.for_customer(body.customer_id)
        events = payments.receive_payment(
            payment_id=payment_id,
            customer_id=body.customer_id,
            amount=body.amount,
            method=body.method,
            received_on=body.received_on,
            reference=body.reference,
            details=body.details,
        )
        state = await payment_app.save_payment(session, None, 0, events, ctx)
        if requests:
            state = await payment_app.allocate(session, ctx, payment_id, requests, body.received_on)
            return {**payment_app.payment_view(state), "matching": {"outcome": "manual"}}
        if body.auto_match:
            result = await matching.match_payment(session, ctx, payment_id, policy, _today())
            view = result.pop("payment")
            return {**view, "matching": result}
        return payment_app.payment_view(state)

    return await run_command(request, principal, 201, action)


@router.get("/payments/{payment_id}")
async def get_payment(payment_id: uuid.UUID, principal: Reader, session: Session) -> Any:
    state, _ = await payment_app.load_payment(session, principal.tenant_id, payment_id)
    return payment_app.payment_view(state)


@router.get("/payments")
async def list_payments(
    principal: Reader,
    session: Session,
    customer_id: str | None = None,
    status: Literal["unapplied", "partially_applied", "applied", "refunded", "reversed"]
    | None = None,
    method: str | None = None,
    received_from: date | None = None,
    received_to: date | None = None,
    gateway_ref: Annotated[str | None, Query(max_length=200)] = None,
    checkout_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:-]{1,100}$")] = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """`gateway_ref` (the gateway's payment intent) and `checkout_id` (our portal's checkout,
    kept at the end of the reference) find the payment a checkout produced."""
    return await document_page(
        session,
        f"{SCHEMA}.payments",
        "payment_id",
        principal.tenant_id,
        {
            "customer_id": customer_id,
            "status": status,
            "method": method,
            "gateway_ref": gateway_ref,
        },
        cursor,
        limit,
        ranges={
            "received_on >= :received_from": received_from,
            "received_on <= :received_to": received_to,
            "' ' || reference || ' ' LIKE :checkout_like": _checkout_like(checkout_id),
        },
    )


def _checkout_like(checkout_id: str | None) -> str | None:
    """A LIKE pattern for the reference's ``checkout:<id>`` token (``_`` is a LIKE wildcard)."""
    if checkout_id is None:
        return None
    token = f"{CHECKOUT_REFERENCE_PREFIX}{checkout_id}".replace("_", "\\_")
    return f"% {token} %"


@router.get("/customers/{customer_id}/payments")
async def customer_payments(
    customer_id: str,
    principal: Reader,
    session: Session,
    cursor: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """The customer's payments as they happen, with their open unapplied cash."""
    page = await document_page(
        session,
        f"{SCHEMA}.payments",
        "payment_id",
        principal.tenant_id,
        {"customer_id": customer_id},
        cursor,
        limit,
    )
    cash = await payment_app.customer_cash(session, principal.tenant_id, customer_id)
    return {**page, "unapplied": cash["unapplied"]}


@router.get("/customers/{customer_id}/unapplied-cash")
async def unapplied_cash(customer_id: str, principal: Reader, session: Session) -> Any:
    return await payment_app.customer_cash(session, principal.tenant_id, customer_id)


def _on_payment(
    payment_id: uuid.UUID,
    decide: Callable[[payments.PaymentState], list[Any]],
) -> Action:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        state, version = await payment_app.load_payment(session, ctx.tenant_id, payment_id)
        saved = await payment_app.save_payment(session, state, version, decide(state), ctx)
        return payment_app.payment_view(saved)

    return action


@router.post("/payments/{payment_id}/allocations")
async def allocate(
    request: Request, payment_id: uuid.UUID, body: AllocateBody, principal: Writer
) -> JSONResponse:
    """Manual cash application; all allocations apply or none."""
    requests = _requests(body.allocations)

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        on = body.allocated_on or _today()
        state = await payment_app.allocate(session, ctx, payment_id, requests, on)
        return payment_app.payment_view(state)

    return await run_command(request, principal, 200, action)


@router.post("/payments/{payment_id}/allocations/{allocation_id}/unallocate")
async def unallocate(
    request: Request,
    payment_id: uuid.UUID,
    allocation_id: uuid.UUID,
    body: UnallocateBody,
    principal: Writer,
) -> JSONResponse:
    def decide(state: payments.PaymentState) -> list[Any]:
        return payments.unallocate(state, allocation_id, body.reason, _today())

    return await run_command(request, principal, 200, _on_payment(payment_id, decide))


@router.post("/payments/{payment_id}/refunds")
async def refund(
    request: Request, payment_id: uuid.UUID, body: RefundBody, principal: Writer
) -> JSONResponse:
    """Pay cash back; allocations it needs are taken back first (their invoices reopen)."""
    refund_id = uuid.uuid4()

    def decide(state: payments.PaymentState) -> list[Any]:
        on = body.refunded_on or max(_today(), state.received_on)
        return payments.refund(state, body.amount, body.reason, on, refund_id=refund_id)

    return await run_command(request, principal, 200, _on_payment(payment_id, decide))


@router.post("/payments/{payment_id}/reversals")
async def reverse(
    request: Request, payment_id: uuid.UUID, body: ReversalBody, principal: Writer
) -> JSONResponse:
    """Chargeback, bounced cheque, returned debit: the money did not arrive after all."""

    def decide(state: payments.PaymentState) -> list[Any]:
        on = body.reversed_on or max(_today(), state.received_on)
        return payments.reverse(state, body.amount, body.reason, on, kind=body.kind)

    return await run_command(request, principal, 200, _on_payment(payment_id, decide))


@router.post("/payments/{payment_id}/match")
async def match_now(request: Request, payment_id: uuid.UUID, principal: Writer) -> JSONResponse:
    """Run auto-matching on the payment's unapplied cash now."""
    policy = _settings(request).matching_policy()

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return await matching.match_payment(session, ctx, payment_id, policy, _today())

    return await run_command(request, principal, 200, action)


@router.get("/invoices/{invoice_id}/open-amount")
async def invoice_open_amount(invoice_id: uuid.UUID, principal: Reader, session: Session) -> Any:
    """What payments knows of the invoice: its open amount after this service's allocations."""
    found = await balances.balance_view(session, principal.tenant_id, [invoice_id])
    if invoice_id not in found:
        raise NotFound(
            f"invoice {invoice_id} is not known to payments", {"invoice_id": str(invoice_id)}
        )
    return found[invoice_id]


# ---- review --------------------------------------------------------------------------------------


@router.get("/review/payments")
async def payments_awaiting_review(
    principal: Reader, session: Session, cursor: str | None = None, limit: Limit = 50
) -> dict[str, Any]:
    """Payments with unapplied cash, oldest first, each with its pending proposals."""
    page = await document_page(
        session,
        f"{SCHEMA}.payments",
        "payment_id",
        principal.tenant_id,
        {"needs_review": True},
        cursor,
        limit,
    )
    ids = [uuid.UUID(item["payment_id"]) for item in page["items"]]
    rows = await session.execute(
        text(
            f"""SELECT * FROM {SCHEMA}.match_proposals
                WHERE tenant_id = :t AND payment_id = ANY(:p) AND status = 'pending'
                ORDER BY confidence DESC, created_at"""
        ),
        {"t": principal.tenant_id, "p": ids},
    )
    by_payment: dict[str, list[Any]] = {}
    for r in rows:
        by_payment.setdefault(str(r.payment_id), []).append(statements.proposal_row_view(r))
    for item in page["items"]:
        item["proposals"] = by_payment.get(item["payment_id"], [])
    return page


@router.post("/proposals/{proposal_id}/accept")
async def accept_proposal(
    request: Request, proposal_id: uuid.UUID, principal: Writer
) -> JSONResponse:
    """Apply a proposed match as it stands, re-checked against today's open amounts."""

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        row = await matching.load_proposal(session, ctx.tenant_id, proposal_id)
        await matching.decide_proposal(session, ctx.tenant_id, proposal_id, "accepted", ctx.actor)
        if row.line_id is not None:
            return await statements.accept_line_proposal(session, ctx, row)
        requests = matching.proposal_requests(row)
        state, _ = await payment_app.load_payment(session, ctx.tenant_id, row.payment_id)
        saved = await payment_app.allocate(
            session,
            ctx.for_customer(state.customer_id),
            row.payment_id,
            requests,
            state.received_on,
        )
        return payment_app.payment_view(saved)

    return await run_command(request, principal, 200, action)


@router.post("/proposals/{proposal_id}/reject")
async def reject_proposal(
    request: Request, proposal_id: uuid.UUID, principal: Writer
) -> JSONResponse:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        await matching.load_proposal(session, ctx.tenant_id, proposal_id)
        await matching.decide_proposal(session, ctx.tenant_id, proposal_id, "rejected", ctx.actor)
        return {"proposal_id": str(proposal_id), "status": "rejected"}

    return await run_command(request, principal, 200, action)


@router.get("/matching/stats")
async def matching_stats(
    principal: Reader,
    session: Session,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """The auto-match rate over payments and incoming statement lines."""
    return await matching.match_stats(session, principal.tenant_id, date_from, date_to)


# ---- aliases ---------------------------------------------------------------------------------


@router.post("/customer-aliases", status_code=201)
async def add_alias(request: Request, body: AliasBody, principal: Writer) -> JSONResponse:
    """A payer name seen on bank statements that means this customer."""

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return await matching.add_alias(session, ctx.tenant_id, body.name, body.customer_id)

    return await run_command(request, principal, 201, action)


@router.get("/customer-aliases")
async def list_aliases(
    principal: Reader, session: Session, customer_id: str | None = None
) -> dict[str, Any]:
    rows = await session.execute(
        text(
            f"""SELECT alias, display, customer_id FROM {SCHEMA}.customer_aliases
                WHERE tenant_id = :t AND (CAST(:c AS text) IS NULL OR customer_id = :c)
                ORDER BY alias LIMIT 1000"""
        ),
        {"t": principal.tenant_id, "c": customer_id},
    )
    return {
        "items": [{"alias": r.alias, "name": r.display, "customer_id": r.customer_id} for r in rows]
    }


@router.delete("/customer-aliases/{alias}", status_code=204)
async def delete_alias(alias: str, principal: Writer, session: Session) -> None:
    async with session.begin():
        result = await session.execute(
            text(f"DELETE FROM {SCHEMA}.customer_aliases WHERE tenant_id = :t AND alias = :a"),
            {"t": principal.tenant_id, "a": alias},
        )
    if getattr(result, "rowcount", 0) == 0:
        raise NotFound(f"alias {alias!r} not found", {"alias": alias})


# ---- bank statements -----------------------------------------------------------------------------


@router.post("/bank-statements", status_code=201)
async def import_statement(
    request: Request, body: StatementBody, principal: Writer
) -> JSONResponse:
    """Import a statement (CSV, camt.053, OFX); new incoming lines are matched at once."""
    settings = _settings(request)
    if len(body.content.encode()) > settings.max_statement_bytes:
        raise ValidationFailed(
            f"the statement is larger than {settings.max_statement_bytes} bytes",
            {"field": "content"},
        )
    parsed = parse_statement(
        body.content, body.format, currency=body.currency, csv_columns=body.csv_columns
    )
    policy = settings.matching_policy()

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return await statements.import_statement(session, ctx, parsed, policy, _today())

    return await run_command(request, principal, 201, action)


@router.get("/bank-statements/{statement_id}")
async def get_statement(statement_id: uuid.UUID, principal: Reader, session: Session) -> Any:
    row = (
        await session.execute(
            text(
                f"""SELECT document FROM {SCHEMA}.statements
                    WHERE tenant_id = :t AND statement_id = :s"""
            ),
            {"t": principal.tenant_id, "s": statement_id},
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"statement {statement_id} not found", {"statement_id": str(statement_id)})
    return row.document


@router.get("/statement-lines")
async def list_statement_lines(
    principal: Reader,
    session: Session,
    statement_id: uuid.UUID | None = None,
    status: Literal["unmatched", "matched", "ignored", "outgoing"] | None = None,
    cursor: uuid.UUID | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """`status=unmatched` is the review list of incoming lines nobody has accounted for."""
    return await statements.list_lines(
        session,
        principal.tenant_id,
        statement_id=statement_id,
        status=status,
        after=cursor,
        limit=limit,
    )


@router.post("/statement-lines/{line_id}/match")
async def match_line(
    request: Request, line_id: uuid.UUID, body: LineMatchBody, principal: Writer
) -> JSONResponse:
    """Account for a line by hand: an existing payment, or a new one for a customer (with
    optional allocations)."""
    if (body.payment_id is None) == (body.customer_id is None):
        raise ValidationFailed(
            "give either payment_id or customer_id", {"fields": ["payment_id", "customer_id"]}
        )
    if body.payment_id is not None and body.allocations:
        raise ValidationFailed(
            "allocations go with customer_id (a new payment)", {"field": "allocations"}
        )
    requests = _requests(body.allocations)

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return await statements.match_line_manually(
            session,
            ctx,
            line_id,
            payment_id=body.payment_id,
            customer_id=body.customer_id,
            requests=requests,
        )

    return await run_command(request, principal, 200, action)


@router.post("/statement-lines/{line_id}/ignore")
async def ignore_line(
    request: Request, line_id: uuid.UUID, body: IgnoreBody, principal: Writer
) -> JSONResponse:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return await statements.ignore_line(session, ctx, line_id, body.reason)

    return await run_command(request, principal, 200, action)


# ---- gateway webhook ---------------------------------------------------------------------------


@router.post("/webhooks/gateway/{tenant_id}", tags=["webhooks"])
async def gateway_webhook(tenant_id: str, request: Request) -> JSONResponse:
    """Stripe-style events, authenticated by the HMAC signature (no bearer token)."""
    settings = _settings(request)
    body = await request.body()
    secrets = [s.get_secret_value() for s in settings.webhook_secrets.get(tenant_id, [])]
    verify_signature(
        request.headers.get("ledgerline-signature"),
        body,
        secrets,
        now=int(time.time()),
        tolerance_seconds=settings.webhook_tolerance_seconds,
    )
    event = parse_event(body)
    action = interpret(event)
    policy = settings.matching_policy()
    ctx = AppendContext(tenant_id=tenant_id, actor=f"gateway:{gateway.GATEWAY}")
    runtime = runtime_of(request)

    async def attempt() -> dict[str, Any]:
        async with runtime.sessions() as session, session.begin():
            return await gateway.handle(session, ctx, event, action, policy, _today())

    return JSONResponse(await retry_on_conflict(attempt))
