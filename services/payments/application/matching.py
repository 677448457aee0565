"""Cash application: run the matching engine on unapplied money, apply what is certain enough,
keep the rest as proposals for a person, and count outcomes for the auto-match rate.

Each payment or statement line's *first* automatic outcome is what the rate counts
(`match_outcomes`), so re-running matching later (a new invoice arrived) does not inflate it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.adapters import SCHEMA
from services.payments.adapters import invoices as balances
from services.payments.application import payments as payment_app
from services.payments.domain.matching import (
    Match,
    MatchingPolicy,
    Remittance,
    find_matches,
    normalize_alias,
)
from services.payments.domain.payment import AllocationRequest
from shared.db import json_column
from shared.errors import NotFound, StateConflict, ValidationFailed
from shared.eventstore.store import AppendContext
from shared.money import Money

ACTOR = "system:payments-matching"


async def aliases_of(session: AsyncSession, tenant_id: str) -> dict[str, str]:
    rows = await session.execute(
        text(f"SELECT alias, customer_id FROM {SCHEMA}.customer_aliases WHERE tenant_id = :t"),
        {"t": tenant_id},
    )
    return {r.alias: r.customer_id for r in rows}


async def add_alias(
    session: AsyncSession, tenant_id: str, name: str, customer_id: str
) -> dict[str, Any]:
    alias = normalize_alias(name)
    if not alias:
        raise ValidationFailed("the alias is empty once normalised", {"field": "name"})
    row = (
        await session.execute(
            text(
                f"""INSERT INTO {SCHEMA}.customer_aliases (tenant_id, alias, display, customer_id)
                    VALUES (:t, :a, :d, :c)
                    ON CONFLICT (tenant_id, alias) DO UPDATE SET alias = EXCLUDED.alias
                    RETURNING customer_id"""
            ),
            {"t": tenant_id, "a": alias, "d": name, "c": customer_id},
        )
    ).one()
    if row.customer_id != customer_id:
        raise StateConflict(
            f"the alias {name!r} already names customer {row.customer_id}",
            {"alias": alias, "customer_id": row.customer_id},
        )
    return {"alias": alias, "name": name, "customer_id": customer_id}


async def record_outcome(
    session: AsyncSession,
    tenant_id: str,
    subject_id: uuid.UUID,
    subject: str,
    outcome: str,
    best: Match | None,
    on: date,
) -> None:
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.match_outcomes
                    (tenant_id, subject_id, subject, outcome, rule, confidence, decided_on)
                VALUES (:t, :s, :kind, :o, :r, :c, :d) ON CONFLICT DO NOTHING"""
        ),
        {
            "t": tenant_id,
            "s": subject_id,
            "kind": subject,
            "o": outcome,
            "r": best.rule if best else None,
            "c": best.confidence if best else None,
            "d": on,
        },
    )


async def replace_proposals(
    session: AsyncSession,
    tenant_id: str,
    matches: Sequence[Match],
    *,
    payment_id: uuid.UUID | None = None,
    line_id: uuid.UUID | None = None,
) -> list[dict[str, Any]]:
    """The subject's pending proposals become these (older ones are superseded)."""
    column = "payment_id" if payment_id is not None else "line_id"
    subject = payment_id if payment_id is not None else line_id
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.match_proposals SET status = 'superseded', decided_at = now()
                WHERE tenant_id = :t AND {column} = :s AND status = 'pending'"""
        ),
        {"t": tenant_id, "s": subject},
    )
    views = []
    for match in matches:
        view = proposal_view(uuid.uuid4(), match, payment_id=payment_id, line_id=line_id)
        await session.execute(
            text(
                f"""INSERT INTO {SCHEMA}.match_proposals (tenant_id, proposal_id, payment_id,
                        line_id, customer_id, rule, confidence, explanation, allocations)
                    VALUES (:t, :id, :p, :l, :c, :r, :conf, :e, CAST(:a AS jsonb))"""
            ),
            {
                "t": tenant_id,
                "id": uuid.UUID(view["proposal_id"]),
                "p": payment_id,
                "l": line_id,
                "c": match.customer_id,
                "r": match.rule,
                "conf": match.confidence,
                "e": match.explanation,
                "a": json.dumps(view["allocations"]),
            },
        )
        views.append(view)
    return views


def proposal_view(
    proposal_id: uuid.UUID,
    match: Match,
    *,
    payment_id: uuid.UUID | None = None,
    line_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "proposal_id": str(proposal_id),
        "payment_id": str(payment_id) if payment_id else None,
        "line_id": str(line_id) if line_id else None,
        "customer_id": match.customer_id,
        "rule": match.rule,
        "confidence": str(match.confidence),
        "explanation": match.explanation,
        "allocations": [
            {"invoice_id": str(a.invoice_id), "amount": a.amount.model_dump()}
            for a in match.allocations
        ],
    }


def requests_for(match: Match) -> list[AllocationRequest]:
    return [
        AllocationRequest(
            invoice_id=a.invoice_id,
            amount=a.amount,
            rule=match.rule,
            confidence=match.confidence,
        )
        for a in match.allocations
    ]


async def match_payment(
    session: AsyncSession,
    ctx: AppendContext,
    payment_id: uuid.UUID,
    policy: MatchingPolicy,
    today: date,
) -> dict[str, Any]:
    """Match one payment's unapplied cash among its customer's open invoices."""
    state, _ = await payment_app.load_payment(session, ctx.tenant_id, payment_id)
    if not payment_app.awaits_review(state):
        return {"outcome": "nothing_to_apply", "applied": [], "proposals": []}
    invoices = await balances.open_invoices(  # discounts as of the day the cash arrived
        session,
        ctx.tenant_id,
        state.currency,
        customer_id=state.customer_id,
        today=state.received_on,
    )
    remittance = Remittance(
        amount=state.unapplied,
        reference=state.reference or "",
        payer_name=state.details.payer_name if state.details else None,
        customer_id=state.customer_id,
        received_on=state.received_on,
    )
    matches = find_matches(remittance, invoices, {}, policy)
    best = matches[0] if matches else None
    if best is not None and policy.auto_applies(best):
        await record_outcome(
            session, ctx.tenant_id, payment_id, "payment", "auto_applied", best, today
        )
        await replace_proposals(session, ctx.tenant_id, [], payment_id=payment_id)
        saved = await payment_app.allocate(
            session, ctx, payment_id, requests_for(best), state.received_on
        )
        return {
            "outcome": "auto_applied",
            "rule": best.rule,
            "confidence": str(best.confidence),
            "explanation": best.explanation,
            "payment": payment_app.payment_view(saved),
            "proposals": [],
        }
    outcome = "proposed" if matches else "unmatched"
    await record_outcome(session, ctx.tenant_id, payment_id, "payment", outcome, best, today)
    proposals = await replace_proposals(session, ctx.tenant_id, matches, payment_id=payment_id)
    return {"outcome": outcome, "payment": payment_app.payment_view(state), "proposals": proposals}


async def unapplied_payments_of(
    session: AsyncSession, tenant_id: str, customer_id: str
) -> list[uuid.UUID]:
    rows = await session.execute(
        text(
            f"""SELECT payment_id FROM {SCHEMA}.payments
                WHERE tenant_id = :t AND customer_id = :c AND needs_review
                ORDER BY received_on, payment_id"""
        ),
        {"t": tenant_id, "c": customer_id},
    )
    return [r.payment_id for r in rows]


async def load_proposal(session: AsyncSession, tenant_id: str, proposal_id: uuid.UUID) -> Any:
    row = (
        await session.execute(
            text(
                f"""SELECT * FROM {SCHEMA}.match_proposals
                    WHERE tenant_id = :t AND proposal_id = :p FOR UPDATE"""
            ),
            {"t": tenant_id, "p": proposal_id},
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"proposal {proposal_id} not found", {"proposal_id": str(proposal_id)})
    if row.status != "pending":
        raise StateConflict(
            f"proposal {proposal_id} is {row.status}",
            {"proposal_id": str(proposal_id), "status": row.status},
        )
    return row


async def decide_proposal(
    session: AsyncSession, tenant_id: str, proposal_id: uuid.UUID, status: str, actor: str
) -> None:
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.match_proposals SET status = :s, decided_by = :a,
                    decided_at = now()
                WHERE tenant_id = :t AND proposal_id = :p"""
        ),
        {"t": tenant_id, "p": proposal_id, "s": status, "a": actor},
    )
    if status == "accepted":  # the subject's other candidates are moot now
        await session.execute(
            text(
                f"""UPDATE {SCHEMA}.match_proposals SET status = 'superseded', decided_at = now()
                    FROM {SCHEMA}.match_proposals AS chosen
                    WHERE chosen.tenant_id = :t AND chosen.proposal_id = :p
                      AND match_proposals.tenant_id = :t AND match_proposals.status = 'pending'
                      AND match_proposals.proposal_id <> :p
                      AND (match_proposals.payment_id = chosen.payment_id
                           OR match_proposals.line_id = chosen.line_id)"""
            ),
            {"t": tenant_id, "p": proposal_id},
        )


def proposal_requests(row: Any) -> list[AllocationRequest]:
    """The proposal's allocations as requests, re-checked against today's open amounts."""
    raw = json_column(row.allocations)
    return [
        AllocationRequest(
            invoice_id=uuid.UUID(a["invoice_id"]),
            amount=Money.model_validate(a["amount"]),
            rule=row.rule,
            confidence=Decimal(row.confidence),
        )
        for a in raw
    ]


async def match_stats(
    session: AsyncSession, tenant_id: str, date_from: date | None, date_to: date | None
) -> dict[str, Any]:
    """The auto-match rate: of the payments and credit lines matching first saw, how many it
    applied on its own, proposed for review, or could not match."""
    rows = (
        await session.execute(
            text(
                f"""SELECT subject, outcome, rule, count(*) AS n FROM {SCHEMA}.match_outcomes
                    WHERE tenant_id = :t
                      AND (CAST(:f AS date) IS NULL OR decided_on >= :f)
                      AND (CAST(:u AS date) IS NULL OR decided_on <= :u)
                    GROUP BY subject, outcome, rule"""
            ),
            {"t": tenant_id, "f": date_from, "u": date_to},
        )
    ).all()
    total = sum(r.n for r in rows)
    by_outcome: dict[str, int] = {"auto_applied": 0, "proposed": 0, "unmatched": 0}
    by_rule: dict[str, int] = {}
    by_subject: dict[str, int] = {}
    for r in rows:
        by_outcome[r.outcome] = by_outcome.get(r.outcome, 0) + r.n
        by_subject[r.subject] = by_subject.get(r.subject, 0) + r.n
        if r.outcome == "auto_applied" and r.rule:
            by_rule[r.rule] = by_rule.get(r.rule, 0) + r.n
    rate = (
        (Decimal(by_outcome["auto_applied"]) / total).quantize(Decimal("0.0001")) if total else None
    )
    return {
        "from": date_from.isoformat() if date_from else None,
        "to": date_to.isoformat() if date_to else None,
        "total": total,
        "outcomes": by_outcome,
        "auto_applied_by_rule": by_rule,
        "by_subject": by_subject,
        "auto_match_rate": str(rate) if rate is not None else None,
    }
