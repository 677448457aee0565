"""Risk scores: assessed from the behaviour facts kept beside exposure, published on change.

Recomputed after the customer's invoice events (the invoice consumer, once per customer per
transaction) and by the periodic sweeper, because lateness grows with the calendar as well as
with events.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.adapters import SCHEMA
from services.credit.application import accounts
from services.credit.domain import risk
from services.credit.domain.account import CreditAccountState
from shared.events.registry import EventPayload
from shared.eventstore.store import AppendContext
from shared.money import Money

ACTOR = "system:credit-risk"


async def behaviour(
    session: AsyncSession, tenant: str, customer_id: str, currency: str
) -> list[risk.InvoiceBehaviour]:
    rows = await session.execute(
        text(
            f"""SELECT invoice_id, COALESCE(total_minor, open_minor) AS total_minor,
                       COALESCE(issue_date, due_date) AS issue_date, due_date, paid_on, open_minor,
                       disputed, reversals
                FROM {SCHEMA}.invoice_exposure
                WHERE tenant_id = :t AND customer_id = :c AND currency = :cur AND NOT closed"""
        ),
        {"t": tenant, "c": customer_id, "cur": currency},
    )
    facts = []
    for r in rows:
        still_open = max(int(r.open_minor), 0)
        facts.append(
            risk.InvoiceBehaviour(
                invoice_id=r.invoice_id,
                amount=Money.of_minor(int(r.total_minor), currency),
                issue_date=r.issue_date,
                due_date=r.due_date,
                paid_on=r.paid_on if still_open == 0 else None,
                open_amount=Money.of_minor(still_open, currency),
                disputed=r.disputed,
                reversals=r.reversals,
            )
        )
    return facts


async def assess(
    session: AsyncSession, tenant: str, customer_id: str, today: date
) -> risk.RiskAssessment | None:
    state, _ = await accounts.find_account(session, tenant, customer_id)
    if state is None or state.currency is None:
        return None
    facts = await behaviour(session, tenant, customer_id, state.currency)
    return risk.score(facts, as_of=today, limit=state.limit, currency=state.currency)


async def risk_events(
    session: AsyncSession, tenant: str, state: CreditAccountState, today: date
) -> list[EventPayload]:
    """RiskScoreChanged when the score or band changed or the recommended limit moved far
    enough to be news (risk.reassess), else nothing."""
    if state.currency is None:
        return []  # no limit yet: no currency to score in
    facts = await behaviour(session, tenant, state.customer_id, state.currency)
    assessment = risk.score(facts, as_of=today, limit=state.limit, currency=state.currency)
    return risk.reassess(state.last_risk, assessment, state.customer_id)


async def reassess(
    session: AsyncSession, ctx: AppendContext, customer_id: str, today: date
) -> None:
    """The risk score alone, for one customer."""
    state, version = await accounts.find_account(session, ctx.tenant_id, customer_id)
    if state is not None:
        events = await risk_events(session, ctx.tenant_id, state, today)
        await accounts.save_account(session, state, version, events, ctx, customer_id)


def assessment_view(a: risk.RiskAssessment) -> dict[str, Any]:
    return {
        "score": a.score,
        "band": a.band,
        "as_of": a.as_of.isoformat(),
        "factors": [f.to_record().model_dump(mode="json") for f in a.factors],
        "recommended_limit": a.recommended_limit.model_dump() if a.recommended_limit else None,
        "current_limit": a.current_limit.model_dump() if a.current_limit else None,
        "monthly_volume": a.monthly_volume.model_dump() if a.monthly_volume else None,
        "limit_explanation": a.limit_explanation,
    }
