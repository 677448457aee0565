"""Risk scores follow the invoice stream: published on change, explained, not repeated."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.credit.application import accounts, risk
from services.credit.consumers.invoices import on_invoice_event
from services.credit.tests.test_api import auth, check, set_limit
from services.invoice.domain import invoice as inv
from shared.consumer import MessageContext
from shared.contracts.invoice import CreditCheckRecord, LineItem, PaymentTerms
from shared.events.registry import EventPayload
from shared.eventstore.store import AppendContext
from shared.money import Money
from shared.testing import envelope_of

pytestmark = pytest.mark.integration
CTX = MessageContext("ar.invoice.invoice.v1", 0, 0, "test")


def paid_late(
    customer: str,
    n: int,
    issued: date,
    late_days: int,
    *,
    disputed: bool = False,
    chargeback: bool = False,
) -> list[EventPayload]:
    lines = [LineItem(description="work", quantity=Decimal(1), unit_price=100_000)]
    events = inv.draft_invoice(
        uuid.uuid4(), customer, "EUR", lines, PaymentTerms(kind="net", net_days=30), "INV"
    )
    state = inv.replay(events)
    assert state is not None

    def run(step: list[EventPayload]) -> None:
        nonlocal state, events
        for e in step:
            state = inv.evolve(state, e)
        events = events + step

    run(
        inv.issue_invoice(
            state, f"INV-{n}", issued, CreditCheckRecord(outcome="passed", check_id="c")
        )
    )
    assert state is not None and state.due_date is not None
    if disputed:
        run(
            inv.open_dispute(
                state,
                uuid.uuid4(),
                Money.of_minor(10_000, "EUR"),
                "wrong qty",
                issued + timedelta(days=1),
            )
        )
        run(
            inv.resolve_dispute(
                state, next(iter(state.disputes)), "rejected", issued + timedelta(days=2)
            )
        )
    allocation = uuid.uuid4()
    paid_on = state.due_date + timedelta(days=late_days)
    run(inv.apply_payment(state, allocation, uuid.uuid4(), state.open_amount, paid_on))
    if chargeback:
        run(inv.unapply_payment(state, allocation, "chargeback", paid_on + timedelta(days=3)))
        run(
            inv.apply_payment(
                state, uuid.uuid4(), uuid.uuid4(), state.open_amount, paid_on + timedelta(days=10)
            )
        )
    return events


async def feed(
    sessions: async_sessionmaker[AsyncSession],
    tenant: str,
    customer: str,
    events: list[EventPayload],
) -> None:
    async with sessions() as s, s.begin():
        for version, e in enumerate(events, start=1):
            await on_invoice_event(
                s,
                envelope_of(
                    tenant,
                    e,
                    stream_id=f"invoice-{e.model_dump()['invoice_id']}",
                    customer_id=customer,
                    stream_version=version,
                ),
                CTX,
            )


async def test_late_payers_get_a_published_explained_score(
    api: httpx.AsyncClient,
    credit_sessions: async_sessionmaker[AsyncSession],
    tenant: str,
) -> None:
    await set_limit(api, tenant, "slow-co", 1_000_000)
    today = datetime.now(UTC).date()
    start = today - timedelta(days=200)
    for n in range(4):
        await feed(
            credit_sessions,
            tenant,
            "slow-co",
            paid_late(
                "slow-co",
                n,
                start + timedelta(days=30 * n),
                late_days=20 + 5 * n,
                disputed=n == 1,
                chargeback=n == 2,
            ),
        )
    r = await api.get("/v1/customers/slow-co/risk", headers=auth(tenant))
    assert r.status_code == 200, r.text
    body = r.json()
    factors = {f["code"]: f for f in body["factors"]}
    assert factors["late_share"]["explanation"].startswith("4 of 4 invoices (100%)")
    assert factors["reversals"]["points"] > 0 and factors["disputes"]["points"] > 0
    assert body["score"] == sum(f["points"] for f in body["factors"]) or body["score"] == 100
    assert body["last_published"]["score"] == body["score"]  # published by the consumer

    async with credit_sessions() as s:
        before, version = await accounts.load_account(s, tenant, "slow-co")
    async with credit_sessions() as s, s.begin():  # same facts again: nothing new published
        await risk.reassess(
            s, AppendContext(tenant_id=tenant, actor="system:test"), "slow-co", today
        )
    async with credit_sessions() as s:
        after, version_after = await accounts.load_account(s, tenant, "slow-co")
    assert version_after == version and after.last_risk == before.last_risk


async def test_prompt_payers_score_low(
    api: httpx.AsyncClient,
    credit_sessions: async_sessionmaker[AsyncSession],
    tenant: str,
) -> None:
    await set_limit(api, tenant, "fast-co", 1_000_000)
    start = datetime.now(UTC).date() - timedelta(days=120)
    for n in range(4):
        await feed(
            credit_sessions,
            tenant,
            "fast-co",
            paid_late("fast-co", n, start + timedelta(days=20 * n), late_days=-5),
        )
    body = (await api.get("/v1/customers/fast-co/risk", headers=auth(tenant))).json()
    assert body["band"] == "low" and body["score"] < 25
    assert body["recommended_limit"] is not None


async def test_an_issued_invoice_releases_its_reservation_and_is_reviewed_on_one_read(
    api: httpx.AsyncClient,
    credit_sessions: async_sessionmaker[AsyncSession],
    tenant: str,
) -> None:
    """The release and the hold/risk review share the account as the release saved it: the
    account stream is read once per InvoiceIssued, and the review still appends after it."""
    await set_limit(api, tenant, "once-co", 1_000_000)
    invoice_id = uuid.uuid4()
    await check(api, tenant, "once-co", 100_000, f"invoice:{invoice_id}")
    lines = [LineItem(description="work", quantity=Decimal(1), unit_price=100_000)]
    drafted = inv.draft_invoice(
        invoice_id, "once-co", "EUR", lines, PaymentTerms(kind="net", net_days=30), "INV"
    )
    state = inv.replay(drafted)
    assert state is not None
    issued = inv.issue_invoice(
        state,
        "INV-1",
        datetime.now(UTC).date(),
        CreditCheckRecord(outcome="passed", check_id="c"),
    )
    stream = accounts.account_stream(tenant, "once-co")
    reads: list[str] = []

    def count_reads(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if "stream_version >=" in statement and stream in str(params):
            reads.append(statement)

    async with credit_sessions() as s:
        _, before = await accounts.load_account(s, tenant, "once-co")
    async with credit_sessions() as s, s.begin():
        assert s.bind is not None
        engine = s.bind.sync_engine
        event.listen(engine, "before_cursor_execute", count_reads)
        try:
            for version, e in enumerate([*drafted, *issued], start=1):
                await on_invoice_event(
                    s,
                    envelope_of(
                        tenant,
                        e,
                        stream_id=f"invoice-{invoice_id}",
                        customer_id="once-co",
                        stream_version=version,
                    ),
                    CTX,
                )
        finally:
            event.remove(engine, "before_cursor_execute", count_reads)
    assert len(reads) == 1
    async with credit_sessions() as s:
        after, version = await accounts.load_account(s, tenant, "once-co")
    assert not after.reservations  # released
    assert after.last_risk is not None  # scored by the review, appended after the release
    assert version >= before + 2
