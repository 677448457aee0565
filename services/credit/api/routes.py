"""Credit API under /v1: limits (maker-checker), policy, holds, accounts, and the credit check."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.adapters import exposure as exposure_store
from services.credit.adapters import rates
from services.credit.application import accounts, defaults, risk
from services.credit.config import CreditSettings
from services.credit.domain import account as domain
from shared.auth import Principal
from shared.contracts.credit import CreditDocument
from shared.errors import NotFound, ValidationFailed
from shared.eventstore.store import AppendContext
from shared.money import Money, UnknownCurrency, currency_exponent
from shared.web.deps import Requires, RequiresAny, db_session, run_command, runtime_of

router = APIRouter(prefix="/v1", tags=["credit"])
Reader = Annotated[Principal, Depends(Requires("credit:read"))]
Writer = Annotated[Principal, Depends(Requires("credit:write"))]
Approver = Annotated[Principal, Depends(Requires("credit:approve"))]
Session = Annotated[AsyncSession, Depends(db_session)]
CustomerIdPath = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitChange(Body):
    limit: Money
    reason: Reason
    review_date: date | None = None


class RequestDecision(Body):
    reason: Reason | None = None


class PolicyBody(Body):
    max_days_overdue: Annotated[int, Field(ge=0, le=3650)] = 60
    allowed_terms: list[Literal["net", "due_on_receipt", "end_of_month", "installments"]] = []
    review_date: date | None = None
    documents: list[CreditDocument] = []
    segment: str | None = None


class HoldBody(Body):
    reason: Reason


class CheckBody(Body):
    customer_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    amount: Money
    reference: Annotated[str, Field(min_length=1, max_length=200)]
    terms_kind: Literal["net", "due_on_receipt", "end_of_month", "installments"] | None = None


def _settings(request: Request) -> CreditSettings:
    settings = runtime_of(request).settings
    assert isinstance(settings, CreditSettings)
    return settings


def _on_account(
    customer_id: str,
    decide: Callable[[domain.CreditAccountState | None], list[Any]],
    *,
    must_exist: bool = True,
) -> Callable[[AsyncSession, AppendContext], Awaitable[Any]]:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        state: domain.CreditAccountState | None
        state, version = await accounts.find_account(session, ctx.tenant_id, customer_id)
        if must_exist and state is None:
            raise NotFound(
                f"no credit account for customer {customer_id}", {"customer_id": customer_id}
            )
        saved = await accounts.save_account(
            session, state, version, decide(state), ctx, customer_id
        )
        return accounts.account_view(saved)

    return action


@router.put("/customers/{customer_id}/credit-limit")
async def change_limit(
    request: Request, customer_id: CustomerIdPath, body: LimitChange, principal: Writer
) -> JSONResponse:
    """Takes effect at once, or (above the approval threshold) waits for a second approver."""
    threshold_minor = _settings(request).limit_approval_threshold_minor
    request_id = uuid.uuid4()

    def decide(state: domain.CreditAccountState | None) -> list[Any]:
        currency = state.currency if state and state.currency else body.limit.currency
        threshold = None if threshold_minor is None else Money.of_minor(threshold_minor, currency)
        return domain.change_limit(
            state,
            customer_id,
            body.limit,
            body.reason,
            principal.actor,
            request_id=request_id,
            approval_threshold=threshold,
            review_date=body.review_date,
        )

    return await run_command(
        request, principal, 200, _on_account(customer_id, decide, must_exist=False)
    )


@router.post("/customers/{customer_id}/credit-limit/requests/{request_id}/approve")
async def approve_limit(
    request: Request, customer_id: CustomerIdPath, request_id: uuid.UUID, principal: Approver
) -> JSONResponse:
    return await run_command(
        request,
        principal,
        200,
        _on_account(
            customer_id,
            lambda s: domain.approve_limit_change(_exists(s), request_id, principal.actor),
        ),
    )


@router.post("/customers/{customer_id}/credit-limit/requests/{request_id}/reject")
async def reject_limit(
    request: Request,
    customer_id: CustomerIdPath,
    request_id: uuid.UUID,
    body: RequestDecision,
    principal: Approver,
) -> JSONResponse:
    return await run_command(
        request,
        principal,
        200,
        _on_account(
            customer_id,
            lambda s: domain.reject_limit_change(
                _exists(s), request_id, principal.actor, body.reason or "rejected"
            ),
        ),
    )


@router.put("/customers/{customer_id}/credit-policy")
async def update_policy(
    request: Request, customer_id: CustomerIdPath, body: PolicyBody, principal: Writer
) -> JSONResponse:
    """Opens the account if needed, so a customer can be put in a segment before any limit."""
    return await run_command(
        request,
        principal,
        200,
        _on_account(
            customer_id,
            lambda s: domain.update_policy(
                s or domain.CreditAccountState(customer_id=customer_id), **body.model_dump()
            ),
            must_exist=False,
        ),
    )


@router.post("/customers/{customer_id}/holds", status_code=201)
async def place_hold(
    request: Request, customer_id: CustomerIdPath, body: HoldBody, principal: Writer
) -> JSONResponse:
    hold_id = uuid.uuid4()
    return await run_command(
        request,
        principal,
        201,
        _on_account(
            customer_id,
            lambda s: domain.place_hold(
                _exists(s), hold_id, "manual", body.reason, principal.actor
            ),
        ),
    )


@router.post("/customers/{customer_id}/holds/{hold_id}/release")
async def release_hold(
    request: Request,
    customer_id: CustomerIdPath,
    hold_id: uuid.UUID,
    body: HoldBody,
    principal: Writer,
) -> JSONResponse:
    return await run_command(
        request,
        principal,
        200,
        _on_account(
            customer_id,
            lambda s: domain.release_hold(_exists(s), hold_id, body.reason, principal.actor),
        ),
    )


class DefaultPolicyBody(Body):
    limit: Money | None = None
    max_days_overdue: Annotated[int, Field(ge=0, le=3650)] = 60
    allowed_terms: list[Literal["net", "due_on_receipt", "end_of_month", "installments"]] = []


def _set_default(
    request: Request, principal: Principal, segment: str | None, body: DefaultPolicyBody
) -> Awaitable[JSONResponse]:
    return run_command(
        request,
        principal,
        200,
        lambda s, c: defaults.set_default(
            s, c, segment, body.limit, body.max_days_overdue, list(body.allowed_terms)
        ),
    )


@router.put("/credit-policies/default", tags=["default policies"])
async def set_tenant_default(
    request: Request, body: DefaultPolicyBody, principal: Writer
) -> JSONResponse:
    """The tenant-wide default for customers without a limit (and without a segment default)."""
    return await _set_default(request, principal, None, body)


@router.put("/credit-policies/segments/{segment}", tags=["default policies"])
async def set_segment_default(
    request: Request,
    segment: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")],
    body: DefaultPolicyBody,
    principal: Writer,
) -> JSONResponse:
    return await _set_default(request, principal, segment, body)


@router.get("/credit-policies", tags=["default policies"])
async def list_default_policies(principal: Reader, session: Session) -> list[dict[str, Any]]:
    return await defaults.list_defaults(session, principal.tenant_id)


@router.get("/customers/{customer_id}/credit")
async def get_account(customer_id: CustomerIdPath, principal: Reader, session: Session) -> Any:
    state, _ = await accounts.load_account(session, principal.tenant_id, customer_id)
    view = accounts.account_view(state)
    if state.currency:
        exp = await exposure_store.exposure_of(
            session, principal.tenant_id, customer_id, state.currency, accounts.now().date()
        )
        view["exposure"] = exp.net.model_dump()
        view["open_invoices"] = exp.open_invoices.model_dump()
        view["unapplied_cash"] = exp.unapplied_cash.model_dump()
        view["days_overdue"] = exp.days_overdue
        view["headroom"] = (
            domain.headroom(state, exp.net, accounts.now()) or Money.zero(state.currency)
        ).model_dump()
    return view


class RateBody(Body):
    from_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    to_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    rate: Annotated[str, Field(pattern=r"^\d{1,12}(\.\d{1,12})?$", description="decimal string")]
    as_of: date


@router.post("/exchange-rates", status_code=201, tags=["exchange rates"])
async def record_rate(request: Request, body: RateBody, principal: Writer) -> JSONResponse:
    """Record a rate for converting exposure in other currencies (newest for a date wins)."""
    if Decimal(body.rate) <= 0 or body.from_currency == body.to_currency:
        raise ValidationFailed(
            "a rate is positive and between two different currencies", {"rate": body.rate}
        )
    for code in (body.from_currency, body.to_currency):
        try:
            currency_exponent(code)
        except UnknownCurrency as exc:
            raise ValidationFailed(str(exc), {"currency": code}) from None

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        await rates.record(
            session,
            ctx.tenant_id,
            body.from_currency,
            body.to_currency,
            body.as_of,
            Decimal(body.rate),
            ctx.actor,
        )
        return body.model_dump(mode="json")

    return await run_command(request, principal, 201, action)


@router.get("/exchange-rates", tags=["exchange rates"])
async def list_rates(principal: Reader, session: Session) -> list[dict[str, Any]]:
    return await rates.listing(session, principal.tenant_id)


@router.get("/customers/{customer_id}/risk")
async def get_risk(customer_id: CustomerIdPath, principal: Reader, session: Session) -> Any:
    """The risk score as of today, with every factor explained, and the last one published."""
    assessment = await risk.assess(session, principal.tenant_id, customer_id, accounts.now().date())
    if assessment is None:
        raise NotFound(
            f"no credit account for customer {customer_id}", {"customer_id": customer_id}
        )
    state, _ = await accounts.load_account(session, principal.tenant_id, customer_id)
    published = state.last_risk.model_dump(mode="json") if state.last_risk else None
    return {**risk.assessment_view(assessment), "last_published": published}


@router.post("/credit-checks", status_code=200, tags=["credit checks"])
async def credit_check(
    request: Request,
    body: CheckBody,
    principal: Annotated[Principal, Depends(RequiresAny("credit:check", "invoices:write"))],
) -> JSONResponse:
    """Passes (and reserves the amount for a while) or fails with reasons. Used by invoicing."""
    ttl = timedelta(seconds=_settings(request).reservation_ttl_seconds)
    check = accounts.CheckRequest(body.customer_id, body.amount, body.reference, body.terms_kind)
    return await run_command(
        request,
        principal,
        200,
        lambda s, c: accounts.check_credit(s, c, check, reservation_ttl=ttl),
    )


def _exists(state: domain.CreditAccountState | None) -> domain.CreditAccountState:
    assert state is not None  # _on_account loads with must_exist=True
    return state
