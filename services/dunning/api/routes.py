"""Dunning API under /v1: policies, per-customer state and history, pauses, promises to pay,
approvals, call tasks, escalations (with the hand-off export), the outbox, and a preview of
what would go out today."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.dunning.adapters import SCHEMA
from services.dunning.application import cases
from services.dunning.application.scheduler import due_customers
from services.dunning.domain import case as domain
from services.dunning.domain.policy import DEFAULT_POLICY, Policy, validate_steps
from services.dunning.domain.statements import StatementFrequency
from shared.auth import Principal
from shared.contracts.dunning import DunningPolicyDefined, DunningPolicyRemoved, DunningStep
from shared.contracts.fields import FIRST_DAY, LAST_DAY
from shared.db import json_column
from shared.errors import NotFound
from shared.events.registry import build_event, registry
from shared.eventstore.store import AppendContext
from shared.money import Money
from shared.web.deps import Action, Requires, RequiresAny, db_session, run_command
from shared.web.spreadsheet import safe_cell

router = APIRouter(prefix="/v1", tags=["dunning"])
Reader = Annotated[Principal, Depends(Requires("dunning:read"))]
Writer = Annotated[Principal, Depends(Requires("dunning:write"))]
# The customer portal may record promises to pay and write nothing else here.
PromiseWriter = Annotated[Principal, Depends(RequiresAny("dunning:write", "promises:write"))]
Session = Annotated[AsyncSession, Depends(db_session)]
CustomerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Scope = Annotated[
    str, Field(pattern=r"^(tenant|segment:[A-Za-z0-9._-]{1,40}|customer:[A-Za-z0-9._:-]{1,64})$")
]
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyBody(Body):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    steps: Annotated[list[DunningStep], Field(min_length=1, max_length=20)]
    min_interval_days: Annotated[int, Field(ge=0, le=60)] = 3
    adapt_to_behaviour: bool = True


class SettingsBody(Body):
    segment: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,40}$")] | None = None
    # Statements of account by e-mail, each covering the previous week or calendar month.
    statement_frequency: StatementFrequency = "none"


class PauseBody(Body):
    reason: Reason
    invoice_id: uuid.UUID | None = None
    until: date | None = None


class ResumeBody(Body):
    pause_id: uuid.UUID
    reason: Reason


class PromiseBody(Body):
    invoice_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=100)]
    amount: Money
    # bounded: every run adds the grace days to it
    promised_date: Annotated[date, Field(le=LAST_DAY)]
    grace_days: Annotated[int, Field(ge=0, le=30)] = 2
    note: Annotated[str, Field(max_length=1000)] | None = None


class RemoveBody(Body):
    reason: Reason


def _today() -> date:
    return datetime.now(UTC).date()


def _policy_stream(tenant_id: str, scope: str) -> str:
    return f"dunning_policy-{tenant_id}:{scope}"


# ---- policies -----------------------------------------------------------------------------------


@router.put("/policies/{scope}")
async def define_policy(
    request: Request, scope: Scope, body: PolicyBody, principal: Writer
) -> JSONResponse:
    """Create or replace the policy of a scope: `tenant`, `segment:<name>` or `customer:<id>`."""
    steps = validate_steps(body.steps)

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        event = build_event(
            DunningPolicyDefined,
            scope=scope,
            name=body.name,
            steps=list(steps),
            min_interval_days=body.min_interval_days,
            adapt_to_behaviour=body.adapt_to_behaviour,
        )
        version = await _policy_version(session, ctx.tenant_id, scope)
        await cases.store.append(
            session,
            _policy_stream(ctx.tenant_id, scope),
            version,
            [registry.new_event(event)],
            ctx,
        )
        document = event.model_dump(mode="json")
        await session.execute(
            text(
                f"""INSERT INTO {SCHEMA}.policies (tenant_id, scope, document, version)
                    VALUES (:t, :s, CAST(:d AS jsonb), :v)
                    ON CONFLICT (tenant_id, scope) DO UPDATE SET document = EXCLUDED.document,
                        version = EXCLUDED.version, updated_at = now()"""
            ),
            {"t": ctx.tenant_id, "s": scope, "d": json.dumps(document), "v": version + 1},
        )
        return {**document, "version": version + 1}

    return await run_command(request, principal, 200, action)


async def _policy_version(session: AsyncSession, tenant_id: str, scope: str) -> int:
    return await cases.store.stream_version(
        session, _policy_stream(tenant_id, scope), tenant_id=tenant_id
    )


@router.get("/policies")
async def list_policies(principal: Reader, session: Session) -> dict[str, Any]:
    rows = await session.execute(
        text(
            f"SELECT document, version FROM {SCHEMA}.policies WHERE tenant_id = :t ORDER BY scope"
        ),
        {"t": principal.tenant_id},
    )
    items = [{**json_column(r.document), "version": r.version} for r in rows]
    return {"items": items, "builtin": _policy_document(DEFAULT_POLICY)}


@router.get("/policies/{scope}")
async def get_policy(scope: Scope, principal: Reader, session: Session) -> Any:
    row = (
        await session.execute(
            text(
                f"""SELECT document, version FROM {SCHEMA}.policies
                    WHERE tenant_id = :t AND scope = :s"""
            ),
            {"t": principal.tenant_id, "s": scope},
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no policy for scope {scope}", {"scope": scope})
    return {**json_column(row.document), "version": row.version}


@router.delete("/policies/{scope}")
async def remove_policy(
    request: Request, scope: Scope, body: RemoveBody, principal: Writer
) -> JSONResponse:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        deleted = await session.execute(
            text(f"DELETE FROM {SCHEMA}.policies WHERE tenant_id = :t AND scope = :s"),
            {"t": ctx.tenant_id, "s": scope},
        )
        if getattr(deleted, "rowcount", 0) == 0:
            raise NotFound(f"no policy for scope {scope}", {"scope": scope})
        event = build_event(DunningPolicyRemoved, scope=scope, reason=body.reason)
        version = await _policy_version(session, ctx.tenant_id, scope)
        await cases.store.append(
            session, _policy_stream(ctx.tenant_id, scope), version, [registry.new_event(event)], ctx
        )
        return {"scope": scope, "removed": True}

    return await run_command(request, principal, 200, action)


def _policy_document(policy: Policy) -> dict[str, Any]:
    return {
        "scope": policy.scope,
        "name": policy.name,
        "steps": [s.model_dump(mode="json") for s in policy.steps],
        "min_interval_days": policy.min_interval_days,
        "adapt_to_behaviour": policy.adapt_to_behaviour,
    }


# ---- customers ----------------------------------------------------------------------------------


@router.put("/customers/{customer_id}/dunning-settings")
async def customer_settings(
    request: Request, customer_id: CustomerId, body: SettingsBody, principal: Writer
) -> JSONResponse:
    """The customer's segment (which policy applies) and statement_frequency (`none`,
    `weekly`, `monthly`: statements of account e-mailed with PDF and CSV). Replaces both."""

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        await session.execute(
            text(
                f"""INSERT INTO {SCHEMA}.customers
                        (tenant_id, customer_id, segment, statement_frequency)
                    VALUES (:t, :c, :s, :f)
                    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET segment = EXCLUDED.segment,
                        statement_frequency = EXCLUDED.statement_frequency"""
            ),
            {
                "t": ctx.tenant_id,
                "c": customer_id,
                "s": body.segment,
                "f": body.statement_frequency,
            },
        )
        return {
            "customer_id": customer_id,
            "segment": body.segment,
            "statement_frequency": body.statement_frequency,
        }

    return await run_command(request, principal, 200, action)


@router.get("/customers/{customer_id}/dunning")
async def customer_dunning(customer_id: str, principal: Reader, session: Session) -> Any:
    """The case (steps done, pauses, promises, escalation), the invoices it decides on, the
    policy that applies, the payment behaviour, and the full history of the case."""
    tenant = principal.tenant_id
    state, _ = await cases.load_case(session, tenant, customer_id)
    facts = await cases.invoice_facts(session, tenant, customer_id)
    policy = await cases.policy_for(session, tenant, customer_id)
    behaviour = await cases.behaviour_of(session, tenant, customer_id)
    history = await cases.store.read_stream(
        session, cases.case_stream(tenant, customer_id), tenant_id=tenant
    )
    settings = (
        await session.execute(
            text(
                f"""SELECT segment, statement_frequency FROM {SCHEMA}.customers
                    WHERE tenant_id = :t AND customer_id = :c"""
            ),
            {"t": tenant, "c": customer_id},
        )
    ).one_or_none()
    return {
        **cases.case_view(state),
        "settings": {
            "segment": settings.segment if settings else None,
            "statement_frequency": settings.statement_frequency if settings else "none",
        },
        "policy": _policy_document(policy),
        "behaviour": None
        if behaviour is None
        else {
            "invoices_paid": behaviour.invoices_paid,
            "average_days_late": str(behaviour.average_days_late),
            "on_time_rate": str(behaviour.on_time_rate),
        },
        "invoices": [
            {
                "invoice_id": str(f.invoice_id),
                "number": f.number,
                "due_date": f.due_date.isoformat(),
                "open_amount": f.open_amount.model_dump(),
                "disputed": f.disputed.model_dump(),
                "open": f.open,
            }
            for f in facts
        ],
        "schedule": [
            {
                "invoice_id": str(p.invoice_id),
                "number": p.number,
                "step_id": p.step_id,
                "due_on": p.due_on.isoformat(),
                "timing_note": p.timing_note,
                "held": p.held,
            }
            for p in domain.planned(state, facts, policy, behaviour)
        ],
        "history": [
            {
                "event_type": e.event_type,
                "recorded_at": e.recorded_at.isoformat(),
                "actor": e.actor,
                "payload": e.payload,
            }
            for e in history
        ],
    }


Decide = Callable[[domain.CaseState, list[domain.InvoiceFacts]], list[Any]]


def _on_case(customer_id: str, decide: Decide) -> Action:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        state, version = await cases.load_case(session, ctx.tenant_id, customer_id)
        facts = await cases.invoice_facts(session, ctx.tenant_id, customer_id)
        saved = await cases.save_case(session, state, version, decide(state, facts), ctx)
        return cases.case_view(saved)

    return action


@router.post("/customers/{customer_id}/dunning/pause")
async def pause(
    request: Request, customer_id: CustomerId, body: PauseBody, principal: Writer
) -> JSONResponse:
    """Stop follow-ups for the customer, or for one invoice (`invoice_id`), optionally until a date."""
    pause_id = uuid.uuid4()

    def decide(state: domain.CaseState, facts: list[domain.InvoiceFacts]) -> list[Any]:
        if body.invoice_id is not None and body.invoice_id not in {f.invoice_id for f in facts}:
            raise NotFound(f"invoice {body.invoice_id} is not the customer's", {})
        return domain.pause(
            state, pause_id, body.reason, _today(), invoice_id=body.invoice_id, until=body.until
        )

    return await run_command(request, principal, 200, _on_case(customer_id, decide))


@router.post("/customers/{customer_id}/dunning/resume")
async def resume(
    request: Request, customer_id: CustomerId, body: ResumeBody, principal: Writer
) -> JSONResponse:
    def decide(state: domain.CaseState, _: list[domain.InvoiceFacts]) -> list[Any]:
        return domain.resume(state, body.pause_id, body.reason, _today())

    return await run_command(request, principal, 200, _on_case(customer_id, decide))


@router.post("/customers/{customer_id}/promises", status_code=201)
async def promise_to_pay(
    request: Request, customer_id: CustomerId, body: PromiseBody, principal: PromiseWriter
) -> JSONResponse:
    """Dunning of the named invoices waits until the promised date plus grace days."""
    promise_id = uuid.uuid4()

    def decide(state: domain.CaseState, facts: list[domain.InvoiceFacts]) -> list[Any]:
        by_id = {f.invoice_id: f for f in facts}
        missing = [str(i) for i in body.invoice_ids if i not in by_id]
        if missing:
            raise NotFound("invoices not known for this customer", {"invoice_ids": missing})
        return domain.promise_to_pay(
            state,
            promise_id,
            [by_id[i] for i in body.invoice_ids],
            body.amount,
            body.promised_date,
            _today(),
            grace_days=body.grace_days,
            note=body.note,
        )

    return await run_command(request, principal, 201, _on_case(customer_id, decide))


@router.get("/customers/{customer_id}/dunning/preview")
async def preview_customer(customer_id: str, principal: Reader, session: Session) -> Any:
    """What a run would record for this customer today; nothing is recorded."""
    ctx = AppendContext(tenant_id=principal.tenant_id, actor=principal.actor)
    return await cases.run_customer(session, ctx, customer_id, _today(), dry_run=True)


# The run's arithmetic (the scheduling horizon, grace days) must stay inside Python's dates.
PreviewDay = Annotated[
    date | None,
    Query(ge=FIRST_DAY, le=LAST_DAY, description="default: today (UTC)"),
]


@router.get("/dunning/preview")
async def preview_today(
    principal: Reader, session: Session, on: PreviewDay = None
) -> dict[str, Any]:
    """Everything a run would do today (or on `on`) across the tenant's customers."""
    day = on or _today()
    ctx = AppendContext(tenant_id=principal.tenant_id, actor=principal.actor)
    customers = [c for _, c in await due_customers(session, day, principal.tenant_id)]
    results = [await cases.run_customer(session, ctx, c, day, dry_run=True) for c in customers]
    return {
        "on": day.isoformat(),
        "customers": [r for r in results if r["events"] or r["awaiting_approval"]],
    }


# ---- approvals, tasks, messages, escalations ----------------------------------------------------


@router.get("/approvals")
async def list_approvals(
    principal: Reader,
    session: Session,
    status: Literal["pending", "approved", "rejected"] = "pending",
) -> dict[str, Any]:
    rows = await session.execute(
        text(
            f"""SELECT customer_id, invoice_id, step_id, status, decided_by, created_at
                FROM {SCHEMA}.approvals WHERE tenant_id = :t AND status = :s
                ORDER BY created_at LIMIT 500"""
        ),
        {"t": principal.tenant_id, "s": status},
    )
    return {
        "items": [
            {
                "customer_id": r.customer_id,
                "invoice_id": str(r.invoice_id),
                "step_id": r.step_id,
                "status": r.status,
                "decided_by": r.decided_by,
            }
            for r in rows
        ]
    }


@router.post("/approvals/{invoice_id}/{step_id}/{decision}")
async def decide_approval(
    request: Request,
    invoice_id: uuid.UUID,
    step_id: str,
    decision: Literal["approve", "reject"],
    principal: Writer,
) -> JSONResponse:
    """An approved step fires on the next run; a rejected one never does."""

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        row = (
            await session.execute(
                text(
                    f"""UPDATE {SCHEMA}.approvals SET status = :s, decided_by = :a,
                            decided_at = now()
                        WHERE tenant_id = :t AND invoice_id = :i AND step_id = :st
                          AND status = 'pending'
                        RETURNING customer_id"""
                ),
                {
                    "t": ctx.tenant_id,
                    "i": invoice_id,
                    "st": step_id,
                    "s": "approved" if decision == "approve" else "rejected",
                    "a": ctx.actor,
                },
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no pending approval for that invoice and step", {"step_id": step_id})
        return {"invoice_id": str(invoice_id), "step_id": step_id, "status": decision + "d"}

    return await run_command(request, principal, 200, action)


@router.get("/messages")
async def list_messages(
    principal: Reader,
    session: Session,
    status: Literal["pending", "sending", "sent", "failed", "cancelled", "task"] | None = None,
    customer_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The outbox: e-mails and call tasks with their delivery status (`failed` needs a person)."""
    rows = await session.execute(
        text(
            f"""SELECT message_id, customer_id, channel, status, content, attempts, last_error,
                       created_at, sent_at, kind, period_key, portal_link_id,
                       portal_link_expires_at
                FROM {SCHEMA}.outbox_messages
                WHERE tenant_id = :t AND (CAST(:s AS text) IS NULL OR status = :s)
                  AND (CAST(:c AS text) IS NULL OR customer_id = :c)
                ORDER BY created_at DESC LIMIT :n"""
        ),
        {"t": principal.tenant_id, "s": status, "c": customer_id, "n": limit},
    )
    return {
        "items": [
            {
                "message_id": str(r.message_id),
                "customer_id": r.customer_id,
                "channel": r.channel,
                "kind": r.kind,
                "status": r.status,
                "template": json_column(r.content)["template"],
                "invoice_ids": json_column(r.content)["invoice_ids"],
                "attempts": r.attempts,
                "last_error": r.last_error,
                "created_at": r.created_at.isoformat(),
                "sent_at": r.sent_at.isoformat() if r.sent_at else None,
                "period": _period(json_column(r.content)) if r.period_key else None,
                # what ops revoke in the portal; the link's token is kept nowhere
                "portal_link_id": str(r.portal_link_id) if r.portal_link_id else None,
                "portal_link_expires_at": r.portal_link_expires_at.isoformat()
                if r.portal_link_expires_at
                else None,
            }
            for r in rows
        ]
    }


def _period(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "frequency": content["frequency"],
        "from_date": content["from_date"],
        "to_date": content["to_date"],
    }


@router.post("/tasks/{message_id}/done")
async def task_done(request: Request, message_id: uuid.UUID, principal: Writer) -> JSONResponse:
    """A call task was carried out."""

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        row = (
            await session.execute(
                text(
                    f"""UPDATE {SCHEMA}.outbox_messages SET status = 'sent', sent_at = now(),
                            last_error = :a
                        WHERE tenant_id = :t AND message_id = :m AND status = 'task'
                        RETURNING message_id"""
                ),
                {"t": ctx.tenant_id, "m": message_id, "a": f"done by {ctx.actor}"},
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"no open call task {message_id}", {"message_id": str(message_id)})
        return {"message_id": str(message_id), "status": "done"}

    return await run_command(request, principal, 200, action)


@router.get("/escalations")
async def list_escalations(principal: Reader, session: Session) -> dict[str, Any]:
    rows = await session.execute(
        text(
            f"""SELECT event_id, customer_id, invoice_ids, amount_minor, currency, escalated_on,
                       reason
                FROM {SCHEMA}.escalations WHERE tenant_id = :t ORDER BY escalated_on DESC
                LIMIT 500"""
        ),
        {"t": principal.tenant_id},
    )
    return {
        "items": [
            {
                "escalation_id": str(r.event_id),
                "customer_id": r.customer_id,
                "invoice_ids": [str(i) for i in r.invoice_ids],
                "amount_due": None
                if r.amount_minor is None
                else {"amount": r.amount_minor, "currency": r.currency.strip()},
                "escalated_on": r.escalated_on.isoformat(),
                "reason": r.reason,
            }
            for r in rows
        ]
    }


@router.get("/escalations/{escalation_id}/export")
async def export_escalation(
    escalation_id: uuid.UUID, principal: Reader, session: Session
) -> Response:
    """The hand-off file for the collections agency: one CSV row per escalated invoice."""
    esc = (
        await session.execute(
            text(
                f"""SELECT customer_id, invoice_ids, escalated_on FROM {SCHEMA}.escalations
                    WHERE tenant_id = :t AND event_id = :e"""
            ),
            {"t": principal.tenant_id, "e": escalation_id},
        )
    ).one_or_none()
    if esc is None:
        raise NotFound(
            f"escalation {escalation_id} not found", {"escalation_id": str(escalation_id)}
        )
    customer = (
        await session.execute(
            text(
                f"""SELECT name, email FROM {SCHEMA}.customers
                    WHERE tenant_id = :t AND customer_id = :c"""
            ),
            {"t": principal.tenant_id, "c": esc.customer_id},
        )
    ).one_or_none()
    invoices = await session.execute(
        text(
            f"""SELECT number, issue_date, due_date, currency, open_minor, disputed_minor
                FROM {SCHEMA}.invoices WHERE tenant_id = :t AND invoice_id = ANY(:ids)
                ORDER BY due_date, number"""
        ),
        {"t": principal.tenant_id, "ids": list(esc.invoice_ids)},
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "customer_id",
            "customer_name",
            "email",
            "invoice_number",
            "issue_date",
            "due_date",
            "days_overdue",
            "currency",
            "amount_due",
            "disputed",
            "escalated_on",
        ]
    )
    for i in invoices:
        currency = i.currency.strip()
        writer.writerow(
            [
                esc.customer_id,
                safe_cell(customer.name if customer else ""),
                customer.email if customer else "",
                safe_cell(i.number),
                i.issue_date,
                i.due_date,
                (esc.escalated_on - i.due_date).days,
                currency,
                Money.of_minor(i.open_minor - i.disputed_minor, currency).to_decimal(),
                Money.of_minor(i.disputed_minor, currency).to_decimal(),
                esc.escalated_on,
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="escalation-{escalation_id}.csv"'},
    )
