"""Automatic holds on the real Postgres: placed while a rule holds, released when it clears."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.credit.adapters import exposure
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
