"""The credit service's invoice consumer draining a backlog, as after an outage or a restart.

    .venv/bin/python -m bench.credit_backlog [--customers 40] [--invoices 30]

Each customer gets a credit limit, then a history of invoices (drafted, issued, paid on time or
late) is published to a new topic and consumed with the credit service's own handler and the
consumer runtime's settings. Every invoice event moves exposure, and the customer's hold rules
and risk score read its whole history; the figure is events per second, and how many reviews
ran for them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.credit.application import accounts
from services.credit.config import CreditSettings
from services.credit.consumers import CONSUMERS
from services.credit.domain import account as domain
from services.invoice.domain import invoice as inv
from shared.consumer import ConsumerRuntime
from shared.contracts.invoice import CreditCheckRecord, LineItem, PaymentTerms
from shared.db import make_engine, make_sessionmaker
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload
from shared.eventstore.store import AppendContext
from shared.messaging.kafka import delete_topics, ensure_topics, make_consumer, make_producer
from shared.money import Money
from shared.settings import KafkaSettings
from shared.testing import envelope_of, publish_envelopes


def invoice_history(customer: str, n: int, today: date, rng: random.Random) -> list[EventPayload]:
    """One invoice's events: drafted, issued some months ago, paid (late for some), or open."""
    amount = rng.randrange(5_000, 200_000)
    lines = [LineItem(description="goods", quantity=Decimal(1), unit_price=amount)]
    terms = PaymentTerms(kind="net", net_days=30)
    events = inv.draft_invoice(uuid.uuid4(), customer, "EUR", lines, terms, "INV")
    state = inv.replay(events)
    assert state is not None
    issued_on = today - timedelta(days=rng.randrange(5, 300))
    check = CreditCheckRecord(outcome="passed", check_id="bench")
    events += inv.issue_invoice(state, f"INV-{customer}-{n}", issued_on, check)
    state = inv.replay(events)
    assert state is not None and state.due_date is not None
    paid_on = state.due_date + timedelta(days=rng.choice((-10, 0, 5, 20, 45)))
    if paid_on < today:
        events += inv.apply_payment(state, uuid.uuid4(), uuid.uuid4(), state.open_amount, paid_on)
    return events


async def main(args: argparse.Namespace) -> None:
    settings = CreditSettings(run_relay=False, run_consumers=False)
    kafka = KafkaSettings()
    engine = make_engine(settings.dsn(), application_name="bench-credit")
    sessions = make_sessionmaker(engine)
    tenant = f"bcr{uuid.uuid4().hex[:8]}"
    customers = [f"c{n:03d}" for n in range(args.customers)]
    limit = Money.of_minor(10_000_000, "EUR")
    for customer in customers:
        ctx = AppendContext(tenant_id=tenant, actor="user:bench", customer_id=customer)
        events = domain.change_limit(
            None,
            customer,
            limit,
            "bench",
            "user:bench",
            request_id=uuid.uuid4(),
            approval_threshold=None,
        )
        async with sessions() as s, s.begin():
            await accounts.save_account(s, None, 0, events, ctx, customer)

    rng = random.Random(args.seed)
    today = datetime.now(UTC).date()
    envelopes: list[EventEnvelope] = []
    for n in range(args.invoices):  # customers interleaved, as a busy topic is
        for customer in customers:
            history = invoice_history(customer, n, today, rng)
            stream = f"invoice-{history[0].model_dump()['invoice_id']}"
            envelopes += [
                envelope_of(tenant, e, stream_id=stream, customer_id=customer, stream_version=v)
                for v, e in enumerate(history, start=1)
            ]
    topic = f"bench.credit.{uuid.uuid4().hex[:8]}.v1"
    producer = make_producer(kafka, "bench-credit")
    await producer.start()
    try:
        await ensure_topics(kafka, [topic], partitions=3)
        await publish_envelopes(producer, topic, envelopes)

        spec = next(s for s in CONSUMERS if s.group_id == "credit.invoices")
        group = f"bench-credit-{uuid.uuid4().hex[:6]}"
        consumer = make_consumer(kafka, group)
        runtime = ConsumerRuntime(
            consumer=consumer,
            producer=producer,
            sessions=sessions,
            schema="credit",
            group_id=group,
            handler=spec.handler,
            event_types=spec.event_types,  # as the service runs it
        )
        consumer.subscribe([topic], listener=runtime.rebalance_listener())
        await consumer.start()
        print(f"consuming {len(envelopes):,} events", flush=True)
        started = time.perf_counter()
        task = asyncio.create_task(runtime.run())
        deadline = started + args.timeout
        while (  # noqa: ASYNC110 - polling another task's counter
            runtime.stats.processed + runtime.stats.dead_lettered + runtime.stats.skipped
            < len(envelopes)
            and time.perf_counter() < deadline
        ):
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        runtime.stop()
        await task
        await consumer.stop()
    finally:
        await delete_topics(kafka, [topic])
        await producer.stop()
        await engine.dispose()
    stats = runtime.stats
    # getattr: the same file also measures the code from before the deferred review.
    reviews = getattr(stats, "deferred_runs", None)
    applied = stats.processed + stats.dead_lettered + stats.skipped
    if applied < len(envelopes):
        print(f"timed out: {applied:,} of {len(envelopes):,} applied")
    print(
        f"{len(envelopes):,} invoice events of {len(customers)} customers "
        f"({args.invoices} invoices each) in {seconds:.1f} s: {applied / seconds:,.0f}/s"
    )
    print(
        f"batches {stats.batches}, passed over by type {stats.skipped:,}, conflicts "
        f"{stats.conflicts}, dead-lettered "
        f"{stats.dead_lettered}, reviews at transaction end "
        f"{'(per event)' if reviews is None else reviews}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--invoices", type=int, default=30, help="per customer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait at most")
    asyncio.run(main(parser.parse_args()))
