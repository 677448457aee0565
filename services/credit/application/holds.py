"""Automatic holds: placed while a rule's condition holds, released when it clears.

Rules:
- `overdue`: an open invoice is more than the account's `max_days_overdue` late.
- `escalated`: dunning escalated the account to collections; it clears once nothing is overdue
  any more (the debt was collected or settled).
Evaluated whenever the customer's invoices change (the invoice consumer) and by a periodic
sweeper, because an invoice becomes overdue by the calendar, not by an event.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.credit.adapters import SCHEMA
from services.credit.adapters import exposure as exposure_store
from services.credit.application import accounts, risk
from services.credit.domain import account as domain
from shared.events.registry import EventPayload
from shared.eventstore.store import AppendContext, retry_on_conflict
from shared.web.runtime import ServiceRuntime, every

log = logging.getLogger(__name__)

OVERDUE = "overdue"
ESCALATED = "escalated"
SYSTEM = "system:credit-hold-rules"


def _rule_held(state: domain.CreditAccountState, rule: str) -> bool:
    return any(h.kind == "automatic" and h.rule == rule for h in state.holds.values())


async def evaluate(
    session: AsyncSession, ctx: AppendContext, customer_id: str, today: date
) -> None:
    """Place or release the `overdue` hold, and release `escalated` once nothing is overdue."""
    state, version = await accounts.find_account(session, ctx.tenant_id, customer_id)
    if state is None or state.currency is None:
        return  # no credit account: nothing to hold
    exp = await exposure_store.exposure_of(
        session, ctx.tenant_id, customer_id, state.currency, today
    )
    events: list[EventPayload] = []
    if exp.days_overdue > state.max_days_overdue and not _rule_held(state, OVERDUE):
        events = domain.place_hold(
            state,
            uuid.uuid4(),
            "automatic",
            f"an invoice is {exp.days_overdue} days overdue (policy allows {state.max_days_overdue})",
            SYSTEM,
            rule=OVERDUE,
        )
    elif exp.days_overdue <= state.max_days_overdue and _rule_held(state, OVERDUE):
        events = domain.release_automatic_holds(
            state, OVERDUE, "no invoice is overdue beyond policy", by=SYSTEM
        )
    if exp.days_overdue == 0 and _rule_held(state, ESCALATED):
        after = state
        for e in events:
            after = domain.evolve(after, e)
        events += domain.release_automatic_holds(
            after, ESCALATED, "nothing overdue any more: collected", by=SYSTEM
        )
    await accounts.save_account(session, state, version, events, ctx, customer_id)


async def hold_for_escalation(
    session: AsyncSession, ctx: AppendContext, customer_id: str, reason: str
) -> None:
    state, version = await accounts.find_account(session, ctx.tenant_id, customer_id)
    if state is None:
        state = domain.CreditAccountState(customer_id=customer_id)
    if _rule_held(state, ESCALATED):
        return
    events = domain.place_hold(state, uuid.uuid4(), "automatic", reason, SYSTEM, rule=ESCALATED)
    await accounts.save_account(session, state, version, events, ctx, customer_id)


async def sweep(sessions: async_sessionmaker[AsyncSession], today: date) -> int:
    """Evaluate every customer that has an overdue open invoice or an automatic hold."""
    async with sessions() as session:
        rows = (
            await session.execute(
                text(
                    f"""SELECT DISTINCT tenant_id, customer_id FROM {SCHEMA}.invoice_exposure
                        WHERE NOT closed AND open_minor > 0 AND due_date < :today
                        UNION
                        SELECT tenant_id, customer_id FROM {SCHEMA}.accounts WHERE on_hold"""
                ),
                {"today": today},
            )
        ).all()
    for row in rows:
        ctx = AppendContext(tenant_id=row.tenant_id, actor=SYSTEM, customer_id=row.customer_id)

        async def once(customer: str = row.customer_id, c: AppendContext = ctx) -> None:
            async with sessions() as session, session.begin():
                await evaluate(session, c, customer, today)
                await risk.reassess(session, c, customer, today)  # lateness grows by the day

        await retry_on_conflict(once)
    return len(rows)


class HoldSweeper:
    """The periodic evaluation, as a service worker (safe with several instances: rule holds are
    idempotent and every append is version-checked)."""

    name = "credit hold sweeper"

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds

    async def run(self, runtime: ServiceRuntime) -> None:
        async def job() -> None:
            await sweep(runtime.sessions, accounts.now().date())

        await every(runtime, self.interval_seconds, job, self.name)
