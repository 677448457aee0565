"""After the chaos: wait until everything is quiet, then check that nothing was lost, nothing
happened twice, and every balance agrees to the minor unit across the five services, the
client's book and a fresh replay of the events read back from Kafka.

Everything is scoped to the test's tenant: other tests share the schemas and the topics.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka.structs import TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ar.views import customer_view
from services.registry import consumer_specs
from shared.audit.replay import EventFilter, store_events
from shared.events.envelope import EventEnvelope, aggregate_of
from shared.messaging.kafka import make_reader
from shared.outbox import backlog
from shared.settings import KafkaSettings
from shared.topics import SERVICE_AGGREGATES, all_event_topics, event_topic

# The services the cluster runs: the customer portal is not part of the load, and its relay does
# not run there, so its backlog (e.g. from `ar portal`) is no business of the reconciliation.
from tests.chaos.cluster import SERVICES
from tests.chaos.load import CURRENCY, Api, Book

Offsets = dict[TopicPartition, int]


# ---- Kafka --------------------------------------------------------------------------------


async def end_offsets(kafka: KafkaSettings) -> Offsets:
    """Where every event topic ends now: the tenant's events all lie beyond."""
    reader = make_reader(kafka, "chaos-offsets")
    await reader.start()
    try:
        partitions = await _partitions(reader, all_event_topics())
        ends: Offsets = await reader.end_offsets(partitions)
        return ends
    finally:
        await reader.stop()


async def _partitions(reader: Any, topics: Sequence[str]) -> list[TopicPartition]:
    found: list[TopicPartition] = []
    for topic in topics:
        parts = reader.partitions_for_topic(topic)
        if not parts:
            await reader._client.force_metadata_update()
            parts = reader.partitions_for_topic(topic)
        assert parts, f"topic {topic} does not exist: run `ar kafka topics`"
        found += [TopicPartition(topic, p) for p in sorted(parts)]
    return found


async def tenant_records(
    kafka: KafkaSettings, since: Offsets, tenant: str
) -> dict[str, list[EventEnvelope]]:
    """Every record of the tenant on the event topics after `since`, per topic, duplicates
    included, in partition order."""
    reader = make_reader(kafka, "chaos-readback")
    await reader.start()
    found: dict[str, list[EventEnvelope]] = defaultdict(list)
    try:
        partitions = list(since)
        reader.assign(partitions)
        for tp, offset in since.items():
            reader.seek(tp, offset)
        ends = await reader.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > since[tp]}
        deadline = time.monotonic() + 120
        while remaining:
            assert time.monotonic() < deadline, f"reading back stalled at {remaining}"
            batch = await reader.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    envelope = EventEnvelope.from_json_bytes(record.value)
                    if envelope.tenant_id == tenant:
                        found[tp.topic].append(envelope)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await reader.stop()
    return dict(found)


# ---- quiet -----------------------------------------------------------------------------------


def _routes() -> list[tuple[str, str, str, str, list[str] | None]]:
    """(producer schema, aggregate, consumer schema, consumer group, the event types the group
    acts on or None for all) for every subscription: a group keeps no inbox row for the types
    it passes over."""
    routes = []
    for service in SERVICES:
        for spec in consumer_specs(service):
            types = sorted(spec.event_types) if spec.event_types is not None else None
            for topic in spec.topics:
                _, producer, aggregate, _ = topic.split(".")
                assert topic == event_topic(producer, aggregate), topic
                routes.append((producer, aggregate, service, spec.group_id, types))
    return routes


@dataclass
class Quiet:
    backlog: dict[str, int] = field(default_factory=dict)
    undelivered: dict[str, int] = field(default_factory=dict)  # "group <- aggregate": count
    dead_lettered: int = 0

    @property
    def is_quiet(self) -> bool:
        return (
            not any(self.backlog.values())
            and not any(self.undelivered.values())
            and not self.dead_lettered
        )


async def quiet_state(admin: AsyncEngine, tenant: str) -> Quiet:
    state = Quiet()
    async with admin.connect() as conn:
        for service in SERVICES:
            state.backlog[service] = await backlog(conn, service)
        for producer, aggregate, consumer, group, types in _routes():
            missing = (
                await conn.execute(
                    text(
                        f"""SELECT count(*) FROM {producer}.events e
                            WHERE e.tenant_id = :t AND split_part(e.stream_id, '-', 1) = :agg
                              AND (CAST(:types AS text[]) IS NULL
                                   OR e.event_type = ANY(CAST(:types AS text[])))
                              AND NOT EXISTS (
                                SELECT 1 FROM {consumer}.inbox i
                                WHERE i.consumer_group = :g AND i.event_id = e.event_id
                                  AND i.outcome = 'processed')"""
                    ),
                    {"t": tenant, "agg": aggregate, "g": group, "types": types},
                )
            ).scalar_one()
            state.undelivered[f"{group} <- {producer}.{aggregate}"] = int(missing)
            state.dead_lettered += int(
                (
                    await conn.execute(
                        text(
                            f"""SELECT count(*) FROM {consumer}.inbox i
                                JOIN {producer}.events e ON e.event_id = i.event_id
                                WHERE e.tenant_id = :t AND i.outcome = 'dead_lettered'"""
                        ),
                        {"t": tenant},
                    )
                ).scalar_one()
            )
    return state


@dataclass
class Drain:
    seconds: float
    left: dict[str, int]  # what each outbox and group had to do when first seen with work
    busy_until: dict[str, float]  # when each was last seen with work (seconds into the wait)

    def summary(self) -> str:
        last = sorted(self.busy_until.items(), key=lambda kv: -kv[1])[:3]
        busy = ", ".join(f"{k} {v:.0f}s" for k, v in last)
        return f"quiet after {self.seconds:.1f}s (left: {self.left}; last busy: {busy})"


async def wait_until_quiet(admin: AsyncEngine, tenant: str, timeout: float) -> Drain:
    """Until every outbox is relayed and every consumer group has processed every event of the
    tenant on its topics (twice in a row: a processed event may cause new ones), with what each
    had left and when each drained: a slow drain names the consumer it waited on."""
    started = time.monotonic()
    quiet_in_a_row = 0
    state = Quiet()
    left: dict[str, int] = {}
    busy_until: dict[str, float] = {}
    while time.monotonic() - started < timeout:
        state = await quiet_state(admin, tenant)
        work = {k: v for k, v in {**state.backlog, **state.undelivered}.items() if v}
        left = left or work
        busy_until |= dict.fromkeys(work, time.monotonic() - started)
        quiet_in_a_row = quiet_in_a_row + 1 if state.is_quiet else 0
        if quiet_in_a_row >= 2:
            return Drain(time.monotonic() - started, left, busy_until)
        await asyncio.sleep(1.0)
    raise AssertionError(
        f"not quiet after {timeout:.0f}s: {state}\n"
        f"transactions holding every relay back: {await oldest_transactions(admin)}"
    )


async def oldest_transactions(admin: AsyncEngine) -> list[dict[str, Any]]:
    """The relays publish only below the oldest transaction still running in the whole
    cluster: a transaction left open by anything (another test run included) stalls them all."""
    async with admin.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """SELECT pid, application_name, state, xact_start::text AS since,
                              left(query, 120) AS query
                       FROM pg_stat_activity WHERE backend_xid IS NOT NULL
                       ORDER BY xact_start LIMIT 3"""
                )
            )
        ).mappings()
        return [dict(r) for r in rows]


# ---- the checks -----------------------------------------------------------------------------


@dataclass
class Report:
    """What the reconciliation saw, for the test's summary line."""

    events: int = 0
    on_topics: int = 0
    duplicates_on_topics: int = 0
    customers: int = 0
    open_total: int = 0
    notes: list[str] = field(default_factory=list)


async def tenant_events(admin: AsyncEngine, tenant: str) -> dict[str, list[EventEnvelope]]:
    """Every stored event of the tenant, per producing service (global order)."""
    stored: dict[str, list[EventEnvelope]] = {}
    async with admin.connect() as conn:
        for service in SERVICES:
            stored[service] = [
                e async for e in store_events(conn, service, EventFilter(tenant_id=tenant))
            ]
    return stored


def check_nothing_lost(
    stored: dict[str, list[EventEnvelope]],
    on_topics: dict[str, list[EventEnvelope]],
    report: Report,
) -> None:
    """Every stored event is on its topic (at least once), nothing else of the tenant is, and a
    copy published twice is the same event."""
    for service, events in stored.items():
        for aggregate in SERVICE_AGGREGATES[service]:
            topic = event_topic(service, aggregate)
            expected = {e.event_id for e in events if aggregate_of(e.stream_id) == aggregate}
            copies = on_topics.get(topic, [])
            seen = Counter(e.event_id for e in copies)
            assert set(seen) == expected, (
                f"{topic}: {len(expected - set(seen))} stored events missing on the topic, "
                f"{len(set(seen) - expected)} on the topic that are not stored"
            )
            first: dict[uuid.UUID, EventEnvelope] = {}
            for envelope in copies:
                earlier = first.setdefault(envelope.event_id, envelope)
                assert earlier == envelope, f"two different events with id {envelope.event_id}"
            report.events += len(expected)
            report.on_topics += len(copies)
            report.duplicates_on_topics += len(copies) - len(expected)


def _count(events: list[EventEnvelope], event_type: str) -> int:
    return sum(e.event_type == event_type for e in events)


_NUMBER = re.compile(r"^(?P<series>.+)-(?P<serial>\d+)$")


def check_no_duplicate_effects(stored: dict[str, list[EventEnvelope]], book: Book) -> None:
    """Each acknowledged operation happened exactly once, and nothing unacknowledged did."""
    invoice, payments = stored["invoice"], stored["payments"]
    paid_in_full = sum(i.paid == i.total for i in book.invoices.values())
    counts = {
        "InvoiceIssued": _count(invoice, "InvoiceIssued"),
        "DisputeOpened": _count(invoice, "DisputeOpened"),
        "PaymentApplied": _count(invoice, "PaymentApplied"),
        "InvoicePaid": _count(invoice, "InvoicePaid"),
        "PaymentApplicationRejected": _count(invoice, "PaymentApplicationRejected"),
        "PaymentReceived": _count(payments, "PaymentReceived"),
        "PaymentAllocated": _count(payments, "PaymentAllocated"),
        "PaymentUnallocated": _count(payments, "PaymentUnallocated"),
        "CustomerRegistered": _count(invoice, "CustomerRegistered"),
    }
    assert counts == {
        "InvoiceIssued": len(book.invoices),
        "DisputeOpened": book.disputes,
        "PaymentApplied": len(book.payments),
        "InvoicePaid": paid_in_full,
        "PaymentApplicationRejected": 0,
        "PaymentReceived": len(book.payments),
        "PaymentAllocated": len(book.payments),
        "PaymentUnallocated": 0,
        "CustomerRegistered": len(book.customers),
    }
    allocations = Counter(
        str(e.payload["allocation_id"]) for e in invoice if e.event_type == "PaymentApplied"
    )
    assert not [a for a, n in allocations.items() if n > 1], "an allocation applied twice"
    # Invoice numbers: exactly the acknowledged ones, unique, and gapless from 1 per series.
    numbers = [str(e.payload["number"]) for e in invoice if e.event_type == "InvoiceIssued"]
    assert sorted(numbers) == sorted(i.number for i in book.invoices.values())
    assert len(set(numbers)) == len(numbers), "an invoice number issued twice"
    serials: dict[str, list[int]] = defaultdict(list)
    for number in numbers:
        match = _NUMBER.match(number)
        assert match, number
        serials[match["series"]].append(int(match["serial"]))
    for series, values in serials.items():
        assert sorted(values) == list(range(1, len(values) + 1)), f"gaps in series {series}"


def replayed_customers(
    on_topics: dict[str, list[EventEnvelope]], customers: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """A fresh replay: each customer's streams folded (`ar.views.customer_view`) from the events
    as read back from Kafka, one copy of each."""
    unique: dict[uuid.UUID, EventEnvelope] = {}
    for copies in on_topics.values():
        for envelope in copies:
            unique.setdefault(envelope.event_id, envelope)
    streams: dict[str, dict[str, list[EventEnvelope]]] = defaultdict(lambda: defaultdict(list))
    for envelope in unique.values():
        owner = envelope.customer_id
        if owner is None and aggregate_of(envelope.stream_id) in (
            "customer",
            "credit_account",
            "dunning_case",
        ):
            owner = envelope.stream_id.split("-", 1)[1].partition(":")[2]
        if owner is not None:
            streams[owner][envelope.stream_id].append(envelope)
    now = datetime.now(UTC)
    return {c: customer_view(c, streams.get(c, {}), now) for c in customers}


async def _invoice_documents(api: Api, customer: str) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await api.get(
            "invoice",
            f"/v1/invoices?customer_id={customer}&limit=200"
            + (f"&cursor={cursor}" if cursor else ""),
        )
        documents += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return documents


async def check_balances(
    api: Api, book: Book, replay: dict[str, dict[str, Any]], report: Report
) -> None:
    """Per customer and in total, to the minor unit: the client's book = the invoice service =
    payments' view of each invoice = credit's exposure = dunning's view = the reporting aging =
    the fresh replay."""
    aging = await api.get("reporting", f"/v1/reports/aging?as_of={_today()}")
    aged = {row["customer_id"]: row for row in aging["customers"] if row["currency"] == CURRENCY}
    sem = asyncio.Semaphore(8)

    async def payments_open(invoice_id: str) -> int:
        async with sem:
            body = await api.get("payments", f"/v1/invoices/{invoice_id}/open-amount")
            return int(body["open_amount"]["amount"])

    company = 0
    for customer in book.customers:
        expected = book.expected_open(customer)
        mine = {i.invoice_id: i for i in book.invoices_of(customer)}
        view = replay[customer]
        replayed = {i["invoice_id"]: i for i in view["invoices"] if i["status"] != "draft"}
        documents = {d["invoice_id"]: d for d in await _invoice_documents(api, customer)}
        assert set(documents) == set(mine) == set(replayed), customer
        in_payments = dict(
            zip(mine, await asyncio.gather(*(payments_open(i) for i in mine)), strict=True)
        )
        for invoice_id, rec in mine.items():
            doc, rep = documents[invoice_id], replayed[invoice_id]
            figures = {
                "number": (rec.number, doc["number"], rep["number"]),
                "total": (rec.total, doc["total"]["amount"], rep["total"]["amount"]),
                "open": (
                    rec.total - rec.paid,
                    doc["open_amount"]["amount"],
                    rep["open_amount"]["amount"],
                    in_payments[invoice_id],
                ),
                "disputed": (
                    rec.disputed,
                    doc["disputed_amount"]["amount"],
                    rep["disputed_amount"]["amount"],
                ),
                "allocations": (rec.allocations, len(doc["payments"])),
                "disputes": (rec.disputes, len(doc["disputes"])),
            }
            for what, values in figures.items():
                assert len(set(values)) == 1, f"{customer} {rec.number} {what}: {values}"
        credit = await api.get("credit", f"/v1/customers/{customer}/credit")
        dunning = await api.get("dunning", f"/v1/customers/{customer}/dunning")
        dunning_invoices = Counter(i["invoice_id"] for i in dunning["invoices"])
        assert set(dunning_invoices) <= set(mine) and max(dunning_invoices.values(), default=1) == 1
        open_in_dunning = sum(i["open_amount"]["amount"] for i in dunning["invoices"] if i["open"])
        totals = view["totals"].get(CURRENCY, {})
        balances = {
            "client book": expected,
            "invoice API": sum(d["open_amount"]["amount"] for d in documents.values()),
            "reporting aging": aged[customer]["total"] if customer in aged else 0,
            "credit open invoices": credit["open_invoices"]["amount"],
            "credit exposure": credit["exposure"]["amount"],
            "dunning": open_in_dunning,
            "replay": totals.get("open", {}).get("amount", 0),
        }
        assert len(set(balances.values())) == 1, f"{customer}: {balances}"
        unapplied = {
            "credit": credit["unapplied_cash"]["amount"],
            "replay": totals.get("unapplied_cash", {}).get("amount", 0),
        }
        assert unapplied == {"credit": 0, "replay": 0}, f"{customer}: {unapplied}"
        open_invoices = sum(rec.total > rec.paid for rec in mine.values())
        aged_invoices = aged[customer]["invoices"] if customer in aged else 0
        assert aged_invoices == open_invoices, f"{customer}: aging counts {aged_invoices}"
        company += expected
    euro = [t for t in aging["totals"] if t["currency"] == CURRENCY]
    assert (euro[0]["total"] if euro else 0) == company, (aging["totals"], company)
    report.customers = len(book.customers)
    report.open_total = company


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


async def reconcile(
    admin: AsyncEngine,
    kafka: KafkaSettings,
    since: Offsets,
    api: Api,
    book: Book,
    quiet_timeout: float,
) -> Report:
    """All of the above, after waiting for quiet; raises with the first difference."""
    report = Report()
    drain = await wait_until_quiet(admin, book.tenant, quiet_timeout)
    report.notes.append(drain.summary())
    stored = await tenant_events(admin, book.tenant)
    on_topics = await tenant_records(kafka, since, book.tenant)
    check_nothing_lost(stored, on_topics, report)
    check_no_duplicate_effects(stored, book)
    await check_balances(api, book, replayed_customers(on_topics, book.customers), report)
    return report
