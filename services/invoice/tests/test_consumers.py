"""Allocations and late fees from other services, through the real Kafka, into invoices."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.invoice.application import repository as repo
from services.invoice.consumers.handlers import on_dunning_event, on_payment_event
from services.invoice.tests.credit_stub import credit_stub
from services.invoice.tests.test_api import auth, customer, draft, issue, make_client
from shared.consumer import ConsumerRuntime, Handler
from shared.contracts.dunning import LateFeeAssessed
from shared.contracts.payments import PaymentAllocated, PaymentUnallocated
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload
from shared.messaging.kafka import make_consumer, make_producer
from shared.money import Money
from shared.settings import KafkaSettings
from shared.testing import envelope_of

pytestmark = pytest.mark.integration


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async for http in make_client(credit_stub({"acme-ltd": 10**9})):
        yield http


def envelope(tenant: str, payload: EventPayload, stream: str) -> EventEnvelope:
    return envelope_of(
        tenant, payload, stream_id=stream, customer_id="acme-ltd", correlation_id=uuid.uuid4()
    )


def allocated(
    invoice_id: str, amount: int, allocation_id: uuid.UUID | None = None
) -> PaymentAllocated:
    return PaymentAllocated(
        payment_id=uuid.uuid4(),
        allocation_id=allocation_id or uuid.uuid4(),
        invoice_id=uuid.UUID(invoice_id),
        amount=Money.of_minor(amount, "EUR"),
        payment_amount=Money.of_minor(amount, "EUR"),
        allocated_on=date(2026, 11, 10),
    )


class Consumer:
    """One consumer group on a fresh topic, running the service's real handler."""

    def __init__(
        self,
        settings: KafkaSettings,
        sessions: async_sessionmaker[AsyncSession],
        topic: str,
        handler: Handler,
    ) -> None:
        self.settings, self.topic = settings, topic
        group = f"invoice-test-{uuid.uuid4().hex[:6]}"
        self.producer = make_producer(settings, group)
        self.runtime = ConsumerRuntime(
            consumer=make_consumer(settings, group, topic),
            producer=self.producer,
            sessions=sessions,
            schema="invoice",
            group_id=group,
            handler=handler,
            fetch_timeout_ms=100,
            max_retries=1,
            retry_backoff=0.01,
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Consumer:
        await self.producer.start()
        await self.runtime.consumer.start()
        self.task = asyncio.create_task(self.runtime.run())
        return self

    async def __aexit__(self, *_: object) -> None:
        self.runtime.stop()
        assert self.task is not None
        await self.task
        await self.runtime.consumer.stop()
        await self.producer.stop()

    async def send(self, *envelopes: EventEnvelope) -> None:
        for e in envelopes:
            await self.producer.send_and_wait(self.topic, e.to_json_bytes(), key=b"acme-ltd")

    async def settle(self, expected: int, timeout: float = 20.0) -> None:
        stats = self.runtime.stats
        deadline = asyncio.get_running_loop().time() + timeout
        while stats.processed + stats.duplicates + stats.dead_lettered < expected:
            assert asyncio.get_running_loop().time() < deadline, f"stuck at {stats}"
            await asyncio.sleep(0.05)


async def invoice(api: httpx.AsyncClient, tenant: str, invoice_id: str) -> dict[str, Any]:
    return (await api.get(f"/v1/invoices/{invoice_id}", headers=auth(tenant))).json()  # type: ignore[no-any-return]


async def stream(
    sessions: async_sessionmaker[AsyncSession], tenant: str, invoice_id: str
) -> list[EventEnvelope]:
    async with sessions() as session:
        return await repo.store.read_stream(
            session, repo.invoice_stream(uuid.UUID(invoice_id)), tenant_id=tenant
        )


def rejections(events: list[EventEnvelope]) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.event_type == "PaymentApplicationRejected"]


async def test_allocations_pay_invoices_once_even_when_early_or_redelivered(
    api: httpx.AsyncClient,
    tenant: str,
    invoice_sessions: async_sessionmaker[AsyncSession],
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    await customer(api, tenant)
    issued = await draft(api, tenant)
    early = await draft(api, tenant)  # allocations will arrive before this one is issued
    await issue(api, tenant, issued["invoice_id"])
    total = issued["total"]["amount"]
    first = envelope(tenant, allocated(issued["invoice_id"], 100_000), "payment-p1")
    rest_id = uuid.uuid4()
    rest = envelope(tenant, allocated(issued["invoice_id"], total - 100_000, rest_id), "payment-p2")
    before_issue = envelope(tenant, allocated(early["invoice_id"], 50_000), "payment-p3")
    async with Consumer(kafka_settings, invoice_sessions, fresh_topic, on_payment_event) as c:
        await c.send(first, first, before_issue)  # the relay may publish twice: at-least-once
        await c.settle(3)
        partly = await invoice(api, tenant, issued["invoice_id"])
        assert partly["status"] == "partially_paid" and partly["paid"]["amount"] == 100_000
        assert (await invoice(api, tenant, early["invoice_id"]))["status"] == "draft"
        await c.send(rest)
        await c.settle(4)
        paid = await invoice(api, tenant, issued["invoice_id"])
        assert paid["status"] == "paid" and paid["open_amount"]["amount"] == 0
        # the parked allocation is applied the moment its invoice is issued
        now_issued = (await issue(api, tenant, early["invoice_id"])).json()
        assert now_issued["paid"]["amount"] == 50_000 and now_issued["status"] == "partially_paid"
        # a refund takes the second allocation back: the invoice is open again
        back = PaymentUnallocated(
            payment_id=uuid.uuid4(),
            allocation_id=rest_id,
            invoice_id=uuid.UUID(issued["invoice_id"]),
            amount=Money.of_minor(total - 100_000, "EUR"),
            reason="refund",
            unallocated_on=date(2026, 11, 12),
        )
        await c.send(envelope(tenant, back, "payment-p2"))
        await c.settle(5)
    reopened = await invoice(api, tenant, issued["invoice_id"])
    assert reopened["status"] == "partially_paid"
    assert reopened["open_amount"]["amount"] == total - 100_000
    assert c.runtime.stats.duplicates == 1 and c.runtime.stats.dead_lettered == 0


async def test_allocations_the_invoice_can_no_longer_take_are_rejected_not_dead_lettered(
    api: httpx.AsyncClient,
    tenant: str,
    invoice_sessions: async_sessionmaker[AsyncSession],
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    await customer(api, tenant)
    inv, gone = await draft(api, tenant), await draft(api, tenant)
    iid, gone_id = inv["invoice_id"], gone["invoice_id"]
    total = inv["total"]["amount"]
    await issue(api, tenant, iid)
    await issue(api, tenant, gone_id)
    # payments allocated the whole total, but a credit note was recorded before it arrived
    cn = await api.post(
        f"/v1/invoices/{iid}/credit-notes",
        json={"amount": 10_000, "reason": "goodwill", "on": "2026-11-03"},
        headers=auth(tenant),
    )
    assert cn.status_code == 201, cn.text
    voided = await api.post(
        f"/v1/invoices/{gone_id}/void",
        json={"reason": "duplicate", "on": "2026-11-03"},
        headers=auth(tenant),
    )
    assert voided.status_code == 200, voided.text
    late = allocated(iid, total)
    first = envelope(tenant, late, "payment-x")
    republished = envelope(tenant, late, "payment-x")  # the same allocation under a new event id
    to_void = envelope(tenant, allocated(gone_id, 20_000), "payment-y")
    before = await stream(invoice_sessions, tenant, iid)
    async with Consumer(kafka_settings, invoice_sessions, fresh_topic, on_payment_event) as c:
        await c.send(first, first, to_void)
        await c.settle(3)
        after_first = await stream(invoice_sessions, tenant, iid)
        await c.send(republished)
        await c.settle(4)
        # payments takes the rejected allocation back: it was never applied, nothing to undo
        back = PaymentUnallocated(
            payment_id=late.payment_id,
            allocation_id=late.allocation_id,
            invoice_id=late.invoice_id,
            amount=late.amount,
            reason="rejected by the invoice: over_application",
            unallocated_on=date(2026, 11, 12),
        )
        await c.send(envelope(tenant, back, "payment-x"))
        await c.settle(5)
    stats = c.runtime.stats
    assert stats.dead_lettered == 0 and stats.duplicates == 1 and stats.processed == 4, stats
    events = await stream(invoice_sessions, tenant, iid)
    assert len(after_first) == len(before) + 1
    assert events == after_first  # neither the redelivery nor the unallocation added anything
    rejection = events[-1]
    assert rejection.event_type == "PaymentApplicationRejected"
    assert rejection.payload["code"] == "over_application"
    assert rejection.payload["allocation_id"] == str(late.allocation_id)
    assert rejection.payload["payment_id"] == str(late.payment_id)
    assert rejection.payload["amount"] == {"amount": total, "currency": "EUR"}
    assert rejection.causation_id == first.event_id
    assert rejection.correlation_id == first.correlation_id
    now = await invoice(api, tenant, iid)
    assert now["paid"]["amount"] == 0 and now["open_amount"]["amount"] == total - 10_000
    assert now["version"] == len(events)
    (void_rejection,) = rejections(await stream(invoice_sessions, tenant, gone_id))
    assert void_rejection["code"] == "not_receivable"
    assert (await invoice(api, tenant, gone_id))["status"] == "void"


async def test_a_parked_allocation_the_issued_invoice_cannot_take_is_rejected_on_issue(
    api: httpx.AsyncClient,
    tenant: str,
    invoice_sessions: async_sessionmaker[AsyncSession],
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    await customer(api, tenant)
    early = await draft(api, tenant)
    eid, total = early["invoice_id"], early["total"]["amount"]
    fits = allocated(eid, 50_000)
    too_much = allocated(eid, total)  # more than what is left after the first one
    async with Consumer(kafka_settings, invoice_sessions, fresh_topic, on_payment_event) as c:
        await c.send(envelope(tenant, fits, "payment-a"))
        await c.settle(1)
        await c.send(envelope(tenant, too_much, "payment-b"))
        await c.settle(2)
    assert c.runtime.stats.dead_lettered == 0
    assert (await invoice(api, tenant, eid))["status"] == "draft"
    issued = await issue(api, tenant, eid)
    assert issued.status_code == 200, issued.text  # the rejection does not fail the issue
    body = issued.json()
    assert body["paid"]["amount"] == 50_000 and body["open_amount"]["amount"] == total - 50_000
    events = await stream(invoice_sessions, tenant, eid)
    assert [e.event_type for e in events][-3:] == [
        "InvoiceIssued",
        "PaymentApplied",
        "PaymentApplicationRejected",
    ]
    (rejection,) = rejections(events)
    assert rejection["allocation_id"] == str(too_much.allocation_id)
    assert rejection["code"] == "over_application"


async def test_allocations_parked_for_a_draft_that_is_voided_are_rejected(
    api: httpx.AsyncClient,
    tenant: str,
    invoice_sessions: async_sessionmaker[AsyncSession],
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    await customer(api, tenant)
    early = await draft(api, tenant)
    eid = early["invoice_id"]
    parked = allocated(eid, 10_000)
    async with Consumer(kafka_settings, invoice_sessions, fresh_topic, on_payment_event) as c:
        await c.send(envelope(tenant, parked, "payment-a"))
        await c.settle(1)
    voided = await api.post(
        f"/v1/invoices/{eid}/void", json={"reason": "ordered twice"}, headers=auth(tenant)
    )
    assert voided.status_code == 200, voided.text
    events = await stream(invoice_sessions, tenant, eid)
    assert [e.event_type for e in events][-2:] == ["InvoiceVoided", "PaymentApplicationRejected"]
    (rejection,) = rejections(events)
    assert rejection["allocation_id"] == str(parked.allocation_id)
    assert rejection["code"] == "not_receivable"


async def test_late_fees_become_debit_notes_once(
    api: httpx.AsyncClient,
    tenant: str,
    invoice_sessions: async_sessionmaker[AsyncSession],
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    await customer(api, tenant)
    inv = await draft(api, tenant)
    await issue(api, tenant, inv["invoice_id"])
    fee = LateFeeAssessed(
        fee_id=uuid.uuid4(),
        invoice_id=uuid.UUID(inv["invoice_id"]),
        amount=Money.of_minor(4_000, "EUR"),
        reason="+45 days late fee",
        assessed_on=date(2026, 12, 20),
    )
    e = envelope(tenant, fee, "dunning_case-1")
    second = envelope(tenant, fee, "dunning_case-1")  # same fee assessed again (a replay)
    async with Consumer(kafka_settings, invoice_sessions, fresh_topic, on_dunning_event) as c:
        await c.send(e, e, second)
        await c.settle(3)
    charged = await invoice(api, tenant, inv["invoice_id"])
    assert charged["late_fees"]["amount"] == 4_000
    assert charged["open_amount"]["amount"] == inv["total"]["amount"] + 4_000
