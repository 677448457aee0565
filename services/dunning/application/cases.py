"""Dunning cases: load (event stream), decide (pure domain), save (events + read models).

Saving appends the case's events and, in the same transaction, queues what they mean outside:
an e-mail in `outbox_messages` for each e-mail ReminderScheduled (the mailer sends it), a call
task for a phone step, an escalation row for the hand-off export. So a step is either recorded
and queued, or neither.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.dunning.adapters import SCHEMA
from services.dunning.domain import case as cases
from services.dunning.domain.case import CaseState, InvoiceFacts
from services.dunning.domain.policy import PaymentBehaviour, Policy, resolve_policy
from shared.contracts.dunning import (
    AccountEscalated,
    DunningPolicyDefined,
    ReminderScheduled,
)
from shared.db import json_column
from shared.events.registry import EventPayload, registry
from shared.eventstore.store import AppendContext, EventStore
from shared.money import Money

store = EventStore(SCHEMA)
SYSTEM = "system:dunning-scheduler"


def case_stream(tenant_id: str, customer_id: str) -> str:
    return f"dunning_case-{tenant_id}:{customer_id}"


def now() -> datetime:
    return datetime.now(UTC)


async def load_case(
    session: AsyncSession, tenant_id: str, customer_id: str
) -> tuple[CaseState, int]:
    envelopes = await store.read_stream(
        session, case_stream(tenant_id, customer_id), tenant_id=tenant_id
    )
    state = cases.replay(customer_id, (registry.decode(e) for e in envelopes))
    return state, len(envelopes)


async def save_case(
    session: AsyncSession,
    state: CaseState,
    version: int,
    events: Sequence[EventPayload],
    ctx: AppendContext,
) -> CaseState:
    if not events:
        return state
    new_state = state
    for event in events:
        new_state = cases.evolve(new_state, event)
    appended = await store.append(
        session,
        case_stream(ctx.tenant_id, state.customer_id),
        version,
        [registry.new_event(e) for e in events],
        ctx.for_customer(state.customer_id),
    )
    for event, envelope in zip(events, appended, strict=True):
        if isinstance(event, ReminderScheduled):
            await _queue(session, ctx.tenant_id, state.customer_id, event)
        elif isinstance(event, AccountEscalated):
            await _record_escalation(session, ctx.tenant_id, envelope.event_id, event)
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.cases (tenant_id, customer_id, version, document)
                VALUES (:t, :c, :v, CAST(:d AS jsonb))
                ON CONFLICT (tenant_id, customer_id) DO UPDATE SET version = EXCLUDED.version,
                    document = EXCLUDED.document, updated_at = now()"""
        ),
        {
            "t": ctx.tenant_id,
            "c": state.customer_id,
            "v": new_state.version,
            "d": json.dumps(case_view(new_state)),
        },
    )
    return new_state


async def _queue(
    session: AsyncSession, tenant_id: str, customer_id: str, event: ReminderScheduled
) -> None:
    content = {
        "template": event.template,
        "scheduled_on": event.scheduled_on.isoformat(),
        "invoice_ids": [str(s.invoice_id) for s in event.steps],
        "steps": [s.model_dump(mode="json") for s in event.steps],
        "timing_notes": event.timing_notes,
    }
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.outbox_messages
                    (tenant_id, message_id, customer_id, channel, status, content)
                VALUES (:t, :m, :c, :ch, :st, CAST(:content AS jsonb))"""
        ),
        {
            "t": tenant_id,
            "m": event.message_id,
            "c": customer_id,
            "ch": event.channel,
            "st": "pending" if event.channel == "email" else "task",
            "content": json.dumps(content),
        },
    )


async def _record_escalation(
    session: AsyncSession, tenant_id: str, event_id: uuid.UUID, event: AccountEscalated
) -> None:
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.escalations (tenant_id, event_id, customer_id, invoice_ids,
                    amount_minor, currency, escalated_on, reason)
                VALUES (:t, :e, :c, :i, :a, :cur, :d, :r)"""
        ),
        {
            "t": tenant_id,
            "e": event_id,
            "c": event.customer_id,
            "i": event.invoice_ids,
            "a": event.amount_due.amount if event.amount_due else None,
            "cur": event.amount_due.currency if event.amount_due else None,
            "d": event.escalated_on,
            "r": event.reason,
        },
    )


def case_view(state: CaseState) -> dict[str, Any]:
    return {
        "customer_id": state.customer_id,
        "last_email_on": state.last_email_on.isoformat() if state.last_email_on else None,
        "steps_done": sorted(f"{i}:{s}" for i, s in state.done),
        "pauses": [
            {
                "pause_id": str(k),
                "invoice_id": str(p.invoice_id) if p.invoice_id else None,
                "until": p.until.isoformat() if p.until else None,
                "reason": p.reason,
            }
            for k, p in state.pauses.items()
        ],
        "promises": [
            {
                "promise_id": str(k),
                "invoice_ids": [str(i) for i in p.invoice_ids],
                "amount": p.amount.model_dump(),
                "promised_date": p.promised_date.isoformat(),
                "grace_days": p.grace_days,
            }
            for k, p in state.promises.items()
        ],
        "escalated_invoices": sorted(str(i) for i in state.escalated),
        "messages": {str(k): v for k, v in state.messages.items()},
        "version": state.version,
    }


# ---- the facts a run decides on -------------------------------------------------------------


async def invoice_facts(
    session: AsyncSession, tenant_id: str, customer_id: str
) -> list[InvoiceFacts]:
    rows = await session.execute(
        text(
            f"""SELECT invoice_id, number, currency, status, issue_date, due_date, open_minor,
                       disputed_minor
                FROM {SCHEMA}.invoices
                WHERE tenant_id = :t AND customer_id = :c AND status <> 'draft'"""
        ),
        {"t": tenant_id, "c": customer_id},
    )
    return [
        InvoiceFacts(
            invoice_id=r.invoice_id,
            number=r.number or str(r.invoice_id),
            issue_date=r.issue_date,
            due_date=r.due_date,
            open_amount=Money.of_minor(max(r.open_minor, 0), r.currency.strip()),
            disputed=Money.of_minor(max(r.disputed_minor, 0), r.currency.strip()),
            open=r.status == "open",
        )
        for r in rows
    ]


async def behaviour_of(
    session: AsyncSession, tenant_id: str, customer_id: str
) -> PaymentBehaviour | None:
    row = (
        await session.execute(
            text(
                f"""SELECT paid_count, on_time_count, days_late_sum FROM {SCHEMA}.customers
                    WHERE tenant_id = :t AND customer_id = :c"""
            ),
            {"t": tenant_id, "c": customer_id},
        )
    ).one_or_none()
    if row is None or row.paid_count == 0:
        return None
    return PaymentBehaviour(
        invoices_paid=row.paid_count,
        average_days_late=(Decimal(row.days_late_sum) / row.paid_count).quantize(Decimal("0.1")),
        on_time_rate=(Decimal(row.on_time_count) / row.paid_count).quantize(Decimal("0.01")),
    )


async def policy_for(session: AsyncSession, tenant_id: str, customer_id: str) -> Policy:
    rows = await session.execute(
        text(f"SELECT scope, document FROM {SCHEMA}.policies WHERE tenant_id = :t"),
        {"t": tenant_id},
    )
    policies = {
        r.scope: Policy.from_event(DunningPolicyDefined.model_validate(json_column(r.document)))
        for r in rows
    }
    segment = (
        await session.execute(
            text(
                f"SELECT segment FROM {SCHEMA}.customers WHERE tenant_id = :t AND customer_id = :c"
            ),
            {"t": tenant_id, "c": customer_id},
        )
    ).scalar_one_or_none()
    return resolve_policy(policies, customer_id, segment)


async def approved_steps(
    session: AsyncSession, tenant_id: str, customer_id: str
) -> set[tuple[uuid.UUID, str]]:
    rows = await session.execute(
        text(
            f"""SELECT invoice_id, step_id FROM {SCHEMA}.approvals
                WHERE tenant_id = :t AND customer_id = :c AND status = 'approved'"""
        ),
        {"t": tenant_id, "c": customer_id},
    )
    return {(r.invoice_id, r.step_id) for r in rows}


async def run_customer(
    session: AsyncSession,
    ctx: AppendContext,
    customer_id: str,
    today: date,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """One scheduler run for one customer (or its preview, with `dry_run`)."""
    state, version = await load_case(session, ctx.tenant_id, customer_id)
    facts = await invoice_facts(session, ctx.tenant_id, customer_id)
    policy = await policy_for(session, ctx.tenant_id, customer_id)
    behaviour = await behaviour_of(session, ctx.tenant_id, customer_id)
    result = cases.run(
        state,
        facts,
        policy,
        behaviour,
        today,
        approved=await approved_steps(session, ctx.tenant_id, customer_id),
    )
    if not dry_run:
        await save_case(session, state, version, result.events, ctx)
        for waiting in result.awaiting_approval:
            await session.execute(
                text(
                    f"""INSERT INTO {SCHEMA}.approvals (tenant_id, customer_id, invoice_id, step_id)
                        VALUES (:t, :c, :i, :s) ON CONFLICT DO NOTHING"""
                ),
                {
                    "t": ctx.tenant_id,
                    "c": customer_id,
                    "i": waiting.invoice_id,
                    "s": waiting.step_id,
                },
            )
    return {
        "customer_id": customer_id,
        "policy": policy.name,
        "events": [
            {"event_type": e.event_type, **e.model_dump(mode="json")} for e in result.events
        ],
        "awaiting_approval": [w.model_dump(mode="json") for w in result.awaiting_approval],
        "emails_deferred_until": result.deferred_until.isoformat()
        if result.deferred_until
        else None,
    }
