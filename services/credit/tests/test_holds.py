"""Automatic holds on the real Postgres: placed while a rule holds, released when it clears."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.credit.adapters import SCHEMA, exposure
from services.credit.application import accounts, holds
from services.credit.domain import account as domain
from shared.eventstore.store import AppendContext
from shared.money import Money

pytestmark = pytest.mark.integration
TODAY = date(2026, 11, 24)


async def open_account(
    sessions: async_sessionmaker[AsyncSession], ctx: AppendContext, customer: str
) -> None:
    async with sessions() as s, s.begin():
        events = domain.change_limit(
            None,
            customer,
            Money.of_minor(1_000_000, "EUR"),
            "test",
            "user:analyst",
            request_id=uuid.uuid4(),
            approval_threshold=None,
        )
        await accounts.save_account(s, None, 0, events, ctx, customer)


async def account(
    sessions: async_sessionmaker[AsyncSession], tenant: str, customer: str
) -> domain.CreditAccountState:
    async with sessions() as s:
        state, _ = await accounts.load_account(s, tenant, customer)
    return state


async def test_overdue_hold_is_placed_by_the_sweep_and_released_when_paid(
    credit_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    ctx = AppendContext(tenant_id=tenant, actor="user:analyst")
    await open_account(credit_sessions, ctx, "c1")
    invoice_id = uuid.uuid4()
    async with credit_sessions() as s, s.begin():
        await exposure.record_issued(
            s, tenant, invoice_id, "c1", Money.of_minor(50_000, "EUR"), TODAY - timedelta(days=61)
        )  # policy default: 60 days
    assert await holds.sweep(credit_sessions, TODAY) >= 1
    held = await account(credit_sessions, tenant, "c1")
    [hold] = held.holds.values()
    assert (hold.kind, hold.rule) == ("automatic", "overdue")
    assert "61 days overdue" in hold.reason
    await holds.sweep(credit_sessions, TODAY)  # evaluating again places nothing twice
    assert len((await account(credit_sessions, tenant, "c1")).holds) == 1

    async with credit_sessions() as s, s.begin():
        await exposure.adjust_open(s, tenant, invoice_id, -50_000)  # paid
        await holds.evaluate(s, ctx, "c1", TODAY)
    assert not (await account(credit_sessions, tenant, "c1")).on_hold


async def test_escalation_holds_until_nothing_is_overdue(
    credit_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    ctx = AppendContext(tenant_id=tenant, actor="system:test")
    await open_account(credit_sessions, ctx, "c2")
    invoice_id = uuid.uuid4()
    async with credit_sessions() as s, s.begin():
        await exposure.record_issued(
            s, tenant, invoice_id, "c2", Money.of_minor(9_000, "EUR"), TODAY - timedelta(days=10)
        )
        await holds.hold_for_escalation(s, ctx, "c2", "escalated to collections")
        await holds.hold_for_escalation(s, ctx, "c2", "escalated again")  # one hold per rule
        await holds.evaluate(s, ctx, "c2", TODAY)  # still 10 days overdue: stays held
    state = await account(credit_sessions, tenant, "c2")
    assert [h.rule for h in state.holds.values()] == ["escalated"]
    async with credit_sessions() as s, s.begin():
        await exposure.adjust_open(s, tenant, invoice_id, -9_000)
        await holds.evaluate(s, ctx, "c2", TODAY)
    assert not (await account(credit_sessions, tenant, "c2")).on_hold


async def test_manual_holds_are_left_alone_by_the_rules(
    credit_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    ctx = AppendContext(tenant_id=tenant, actor="user:analyst")
    await open_account(credit_sessions, ctx, "c3")
    async with credit_sessions() as s, s.begin():
        state, version = await accounts.load_account(s, tenant, "c3")
        events = domain.place_hold(state, uuid.uuid4(), "manual", "fraud review", "user:analyst")
        await accounts.save_account(s, state, version, events, ctx, "c3")
        await holds.evaluate(s, ctx, "c3", TODAY)
    assert [h.kind for h in (await account(credit_sessions, tenant, "c3")).holds.values()] == [
        "manual"
    ]


@pytest.fixture
def own_sweeps(monkeypatch: pytest.MonkeyPatch, tenant: str) -> None:
    """Scope the sweep's real selection to this test's tenant: the database is shared, and a
    sweep on another day would re-evaluate every other tenant's accounts as of that day."""
    due = holds._due

    async def own(sessions: async_sessionmaker[AsyncSession], today: date) -> list[tuple[str, str]]:
        return [(t, c) for t, c in await due(sessions, today) if t == tenant]

    monkeypatch.setattr(holds, "_due", own)


async def swept_on(
    sessions: async_sessionmaker[AsyncSession], tenant: str, customer: str
) -> date | None:
    async with sessions() as s:
        found: date | None = await s.scalar(
            text(
                f"SELECT swept_on FROM {SCHEMA}.accounts WHERE tenant_id = :t AND customer_id = :c"
            ),
            {"t": tenant, "c": customer},
        )
    return found


async def set_max_days_overdue(
    sessions: async_sessionmaker[AsyncSession], ctx: AppendContext, customer: str, days: int
) -> None:
    """As the policy route does: the policy events alone, no hold evaluation."""
    async with sessions() as s, s.begin():
        state, version = await accounts.load_account(s, ctx.tenant_id, customer)
        events = domain.update_policy(state, max_days_overdue=days)
        await accounts.save_account(s, state, version, events, ctx, customer)


async def issue_overdue(
    sessions: async_sessionmaker[AsyncSession], tenant: str, customer: str, days: int
) -> None:
    async with sessions() as s, s.begin():
        await exposure.record_issued(
            s, tenant, uuid.uuid4(), customer, Money.of_minor(5_000, "EUR"), TODAY - timedelta(days)
        )


@pytest.mark.usefixtures("own_sweeps")
async def test_the_sweep_reviews_a_customer_once_a_day(
    credit_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    ctx = AppendContext(tenant_id=tenant, actor="user:analyst")
    await open_account(credit_sessions, ctx, "c4")
    await issue_overdue(credit_sessions, tenant, "c4", 60)  # the policy allows 60 days
    await issue_overdue(credit_sessions, tenant, "no-account", 90)  # nothing to review

    assert await holds.sweep(credit_sessions, TODAY) == 1
    assert await swept_on(credit_sessions, tenant, "c4") == TODAY
    assert await holds.sweep(credit_sessions, TODAY) == 0  # e.g. a restart later that day
    assert not (await account(credit_sessions, tenant, "c4")).on_hold

    tomorrow = TODAY + timedelta(days=1)
    assert await holds.sweep(credit_sessions, tomorrow) == 1  # now 61 days late
    [hold] = (await account(credit_sessions, tenant, "c4")).holds.values()
    assert (hold.rule, "61 days overdue" in hold.reason) == ("overdue", True)
    assert await swept_on(credit_sessions, tenant, "c4") == tomorrow


@pytest.mark.usefixtures("own_sweeps")
async def test_a_policy_change_is_swept_again_the_same_day(
    credit_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    ctx = AppendContext(tenant_id=tenant, actor="user:analyst")
    await open_account(credit_sessions, ctx, "c5")
    await set_max_days_overdue(credit_sessions, ctx, "c5", 90)
    await issue_overdue(credit_sessions, tenant, "c5", 61)
    assert await holds.sweep(credit_sessions, TODAY) == 1
    assert not (await account(credit_sessions, tenant, "c5")).on_hold

    await set_max_days_overdue(credit_sessions, ctx, "c5", 30)  # its route evaluates no holds
    assert await holds.sweep(credit_sessions, TODAY) == 1
    assert [h.rule for h in (await account(credit_sessions, tenant, "c5")).holds.values()] == [
        "overdue"
    ]
    assert await holds.sweep(credit_sessions, TODAY) == 0  # its own hold does not re-queue it
