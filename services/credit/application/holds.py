"""Automatic holds: placed while a rule's condition holds, released when it clears.

Rules:
- `overdue`: an open invoice is more than the account's `max_days_overdue` late.
- `escalated`: dunning escalated the account to collections; it clears once nothing is overdue
  any more (the debt was collected or settled).
Evaluated whenever the customer's invoices change (the invoice consumer) and by a periodic
sweeper, because an invoice becomes overdue by the calendar, not by an event. The calendar moves
once a day, so the sweeper reviews each account at most once a day (`accounts.swept_on`,
persisted, so a restart does not sweep everyone again), and again only if what the rules read
from the account changed since (a policy or limit update, a hold placed or released by hand:
their routes do not re-evaluate the rules).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
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


async def rule_events(
    session: AsyncSession, tenant: str, state: domain.CreditAccountState, today: date
) -> list[EventPayload]:
    """Place or release the `overdue` hold, and release `escalated` once nothing is overdue."""
    if state.currency is None:
        return []  # no limit yet: nothing to hold against
    exp = await exposure_store.exposure_of(
        session, tenant, state.customer_id, state.currency, today
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
        events += domain.release_automatic_holds(
            _folded(state, events), ESCALATED, "nothing overdue any more: collected", by=SYSTEM
        )
    return events


def _folded(
    state: domain.CreditAccountState, events: list[EventPayload]
) -> domain.CreditAccountState:
    for event in events:
        state = domain.evolve(state, event)
    return state


async def evaluate(
    session: AsyncSession, ctx: AppendContext, customer_id: str, today: date
) -> None:
    """The hold rules alone, for one customer."""
    state, version = await accounts.find_account(session, ctx.tenant_id, customer_id)
    if state is not None:
        events = await rule_events(session, ctx.tenant_id, state, today)
        await accounts.save_account(session, state, version, events, ctx, customer_id)


async def review(
    session: AsyncSession,
    ctx: AppendContext,
    customer_id: str,
    today: date,
    account: accounts.LoadedAccount | None = None,
) -> None:
    """Hold rules and risk score after a change, on one load of the account stream (`account`,
    the state and version the caller has just saved in this transaction, spares even that)."""
    if account is None:
        account = await accounts.find_account(session, ctx.tenant_id, customer_id)
    state, version = account
    if state is None:
        return  # no credit account: nothing to hold or score
    events = await rule_events(session, ctx.tenant_id, state, today)
    held = await accounts.save_account(session, state, version, events, ctx, customer_id)
    scored = await risk.risk_events(session, ctx.tenant_id, held, today)
    await accounts.save_account(
        session, held, version + len(events), scored, replace(ctx, actor=risk.ACTOR), customer_id
    )


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


# What the rules and the score read from the account row. A sweep stamps it; an account whose
# fingerprint moved since (its routes do not re-evaluate the rules) is due again the same day.
_RULE_INPUTS = (
    "md5(jsonb_build_array(currency, limit_minor,"
    " document #> '{policy,max_days_overdue}', document -> 'holds')::text)"
)


async def _due(sessions: async_sessionmaker[AsyncSession], today: date) -> list[tuple[str, str]]:
    """Accounts overdue or on hold that today's sweep has not reviewed yet (a customer without an
    account has nothing to review)."""
    async with sessions() as session:
        rows = await session.execute(
            text(
                f"""SELECT a.tenant_id, a.customer_id FROM {SCHEMA}.accounts a
                    WHERE (a.swept_on IS NULL OR a.swept_on < :today
                           OR a.swept_inputs IS DISTINCT FROM {_RULE_INPUTS})
                      AND (a.on_hold OR EXISTS (
                          SELECT 1 FROM {SCHEMA}.invoice_exposure e
                          WHERE e.tenant_id = a.tenant_id AND e.customer_id = a.customer_id
                            AND NOT e.closed AND e.open_minor > 0 AND e.due_date < :today))"""
            ),
            {"today": today},
        )
        return [(r.tenant_id, r.customer_id) for r in rows]


async def _mark_swept(session: AsyncSession, tenant: str, customer_id: str, today: date) -> None:
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.accounts SET swept_on = :today, swept_inputs = {_RULE_INPUTS}
                WHERE tenant_id = :t AND customer_id = :c"""
        ),
        {"today": today, "t": tenant, "c": customer_id},
    )


async def sweep(sessions: async_sessionmaker[AsyncSession], today: date) -> int:
    """Review every customer overdue or on hold not yet swept `today` (or whose policy, limit or
    holds changed since); returns how many.

    Lateness changes only when the date does, and invoice events are reviewed by the consumer, so
    once a day per account is enough; the mark is set in the review's own transaction.
    """
    due = await _due(sessions, today)
    for tenant, customer in due:
        ctx = AppendContext(tenant_id=tenant, actor=SYSTEM, customer_id=customer)

        async def once(customer: str = customer, c: AppendContext = ctx) -> None:
            async with sessions() as session, session.begin():
                await review(session, c, customer, today)  # lateness grows by the day
                await _mark_swept(session, c.tenant_id, customer, today)

        await retry_on_conflict(once)
    return len(due)


class HoldSweeper:
    """The periodic sweep, as a service worker. It runs every `interval_seconds` so a new day is
    picked up soon after midnight (UTC), but each run reviews only accounts not yet swept that day,
    which keeps a restart or a short interval cheap. Safe with several instances: rule holds are
    idempotent and every append is version-checked."""

    name = "credit hold sweeper"

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds

    async def run(self, runtime: ServiceRuntime) -> None:
        async def job() -> None:
            await sweep(runtime.sessions, accounts.now().date())

        await every(runtime, self.interval_seconds, job, self.name)
