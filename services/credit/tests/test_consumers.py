"""What credit learns from other services: wiring, unapplied cash in any order, escalations."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.credit.adapters import exposure
from services.credit.application import accounts
from services.credit.consumers import CONSUMERS
from services.credit.consumers.invoices import on_dunning_event, on_invoice_event
from services.credit.consumers.payments import on_payment_event
from services.credit.domain import account as domain
from shared.consumer import ConsumerRuntime, MessageContext
from shared.contracts.dunning import AccountEscalated
from shared.contracts.payments import (
    PaymentAllocated,
    PaymentReceived,
    PaymentRefunded,
    PaymentUnallocated,
)
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload
from shared.eventstore.store import AppendContext
from shared.messaging.kafka import make_consumer, make_producer
from shared.money import Money
from shared.settings import KafkaSettings
from shared.testing import envelope_of
from shared.topics import all_event_topics

CTX = MessageContext("t", 0, 0, "test")
TODAY = date(2026, 11, 24)


def test_every_consumer_group_listens_to_a_real_topic_with_the_right_handler() -> None:
    wiring = {spec.group_id: (spec.topics, spec.handler) for spec in CONSUMERS}
    assert wiring == {
        "credit.invoices": (("ar.invoice.invoice.v1",), on_invoice_event),
        "credit.payments": (("ar.payments.payment.v1",), on_payment_event),
        "credit.dunning": (("ar.dunning.dunning_case.v1",), on_dunning_event),
    }
    assert all(t in all_event_topics() for spec in CONSUMERS for t in spec.topics)


def envelope(tenant: str, event: EventPayload, customer: str = "c1") -> EventEnvelope:
    return envelope_of(tenant, event, stream_id=f"payment-{uuid.uuid4()}", customer_id=customer)


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


@pytest.mark.integration
async def test_unapplied_cash_adds_up_in_any_order_and_widens_headroom(
    credit_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    payment, invoice = uuid.uuid4(), uuid.uuid4()
    allocation = uuid.uuid4()
    events: list[EventPayload] = [
        PaymentReceived(
            payment_id=payment,
            customer_id="c1",
            amount=eur(100_000),
            method="ach",
            received_on=TODAY,
        ),
        PaymentAllocated(
            payment_id=payment,
            allocation_id=allocation,
            invoice_id=invoice,
            amount=eur(60_000),
            payment_amount=eur(60_000),
            allocated_on=TODAY,
        ),
        PaymentUnallocated(
            payment_id=payment,
            allocation_id=allocation,
            invoice_id=invoice,
            amount=eur(60_000),
            reason="wrong invoice",
            unallocated_on=TODAY,
        ),
        PaymentAllocated(
            payment_id=payment,
            allocation_id=uuid.uuid4(),
            invoice_id=invoice,
            amount=eur(70_000),
            payment_amount=eur(70_000),
            allocated_on=TODAY,
        ),
        PaymentRefunded(payment_id=payment, amount=eur(5_000), refunded_on=TODAY, reason="asked"),
    ]
    # received 1000, allocated 700 for good, refunded 50: 250.00 unapplied, whatever the order
    for n, order in enumerate(itertools.islice(itertools.permutations(events), 0, 120, 17)):
        t = f"{tenant}{n}"
        async with credit_sessions() as s, s.begin():
            for event in order:
                await on_payment_event(s, envelope(t, event), CTX)
        async with credit_sessions() as s:
            exp = await exposure.exposure_of(s, t, "c1", "EUR", TODAY)
        assert exp.unapplied_cash == eur(25_000), order

    ctx = AppendContext(tenant_id=f"{tenant}0", actor="user:analyst")
    async with credit_sessions() as s, s.begin():
        await exposure.record_issued(s, ctx.tenant_id, invoice, "c1", eur(80_000), TODAY)
        events_ = domain.change_limit(
            None, "c1", eur(60_000), "x", "u", request_id=uuid.uuid4(), approval_threshold=None
        )
        await accounts.save_account(s, None, 0, events_, ctx, "c1")
    async with credit_sessions() as s, s.begin():
        # exposure 800 - 250 = 550 of 600: a 40.00 check fits, a 60.00 one does not
        small = await accounts.check_credit(
            s,
            ctx,
            accounts.CheckRequest("c1", eur(4_000), "invoice:a"),
            reservation_ttl=timedelta(minutes=5),
            today=TODAY,
        )
    async with credit_sessions() as s, s.begin():
        big = await accounts.check_credit(
            s,
            ctx,
            accounts.CheckRequest("c1", eur(6_000), "invoice:b"),
            reservation_ttl=timedelta(minutes=5),
            today=TODAY,
        )
    assert small["outcome"] == "passed" and small["exposure"] == eur(55_000).model_dump()
    assert big["outcome"] == "failed" and big["reasons"][0]["code"] == "over_limit"


@pytest.mark.integration
async def test_escalation_through_kafka_places_a_hold(
    credit_sessions: async_sessionmaker[AsyncSession],
    tenant: str,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    group = f"credit-test-{uuid.uuid4().hex[:6]}"
    producer = make_producer(kafka_settings, group)
    await producer.start()
    runtime = ConsumerRuntime(
        consumer=make_consumer(kafka_settings, group, fresh_topic),
        producer=producer,
        sessions=credit_sessions,
        schema="credit",
        group_id=group,
        handler=on_dunning_event,
        fetch_timeout_ms=100,
    )
    escalated = AccountEscalated(
        customer_id="c9",
        invoice_ids=[uuid.uuid4()],
        reason="+60 days: handed to collections",
        escalated_on=TODAY,
    )
    await producer.send_and_wait(
        fresh_topic, envelope(tenant, escalated, "c9").to_json_bytes(), key=b"c9"
    )
    await runtime.consumer.start()
    task = asyncio.create_task(runtime.run())
    try:
        for _ in range(600):  # up to 30 s: a group joins slowly right after a broker restart
            if runtime.stats.processed:
                break
            await asyncio.sleep(0.05)
    finally:
        runtime.stop()
        await task
        await runtime.consumer.stop()
        await producer.stop()
    async with credit_sessions() as s:
        state, _ = await accounts.load_account(s, tenant, "c9")
    [hold] = state.holds.values()
    assert (hold.kind, hold.rule) == ("automatic", "escalated")
    assert "handed to collections" in hold.reason
