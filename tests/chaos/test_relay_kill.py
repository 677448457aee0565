"""Chaos: the outbox relay of a real service process dies between Kafka's acknowledgement of a
batch and its checkpoint (SIGKILL, from the test-only `fault_kill_relay_after_ack` setting).
The restarted relay publishes the batch again: the topic holds the same events twice, and
downstream (invoice, payments, credit, dunning, reporting) shows exactly one effect of each.

Both producing relays are killed in one run: invoice's right after a batch holding an
`InvoiceIssued` of the tenant, payments' right after one holding a `PaymentAllocated`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import KafkaSettings
from tests.chaos.cluster import BASE_ENV, READY_TIMEOUT, SERVICES, Cluster
from tests.chaos.load import Api, Load, Size, new_book
from tests.chaos.reconcile import Offsets, reconcile, tenant_records

pytestmark = pytest.mark.integration

KILLED_AFTER = {"invoice": "InvoiceIssued", "payments": "PaymentAllocated"}
TOPICS = {"invoice": "ar.invoice.invoice.v1", "payments": "ar.payments.payment.v1"}


async def _bring_back(cluster: Cluster, name: str, died: dict[str, int]) -> None:
    """Wait for the process to kill itself, then restart it without the fault."""
    process = cluster.processes[name]
    deadline = time.monotonic() + 120
    while process.alive:
        assert time.monotonic() < deadline, f"{name}'s relay was never killed by the fault"
        await asyncio.sleep(0.1)
    assert process.proc is not None
    died[name] = process.proc.returncode
    process.env = dict(BASE_ENV)
    await cluster.start(name)  # and wait until it is ready


async def test_relay_killed_between_kafka_ack_and_checkpoint(
    cluster: Cluster,
    topic_ends: Offsets,
    admin_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
) -> None:
    book = new_book(customers=3)
    for name, event_type in KILLED_AFTER.items():
        cluster.processes[name].env = {
            **BASE_ENV,
            f"LEDGERLINE_{name.upper()}_FAULT_KILL_RELAY_AFTER_ACK": f"{book.tenant}:{event_type}",
        }
    await cluster.start()
    api = Api({n: cluster.url(n) for n in SERVICES}, book.tenant, op_timeout=120)
    load = Load(api, book, Size(operations=30, customers=3, workers=3, kill_every=0), seed=9)
    died: dict[str, int] = {}
    try:
        await load.onboard()
        watchers = [asyncio.create_task(_bring_back(cluster, n, died)) for n in KILLED_AFTER]
        try:
            await load.run()
            await load.finish()
            await asyncio.wait_for(asyncio.gather(*watchers), timeout=READY_TIMEOUT + 130)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        assert died == {"invoice": -9, "payments": -9}, died  # SIGKILLed, as a crash
        assert book.payments and book.invoices, "the load made no payment or invoice"

        report = await reconcile(
            admin_engine, kafka_settings, topic_ends, api, book, quiet_timeout=120
        )
        # The batch acknowledged before each crash is on its topic twice, including the event
        # the relay died after; reconcile() showed it had exactly one effect everywhere.
        records = await tenant_records(kafka_settings, topic_ends, book.tenant)
        for name, event_type in KILLED_AFTER.items():
            copies = Counter(e.event_id for e in records[TOPICS[name]])
            twice = {e.event_type for e in records[TOPICS[name]] if copies[e.event_id] > 1}
            assert event_type in twice, f"{name}: republished {twice or 'nothing'}"
        assert report.duplicates_on_topics > 0
    finally:
        await api.close()
    print(
        f"\nrelays killed {died}; {dict(load.done)}; {report.events} events, "
        f"{report.duplicates_on_topics} published twice; open {report.open_total}; "
        f"{', '.join(report.notes)}; retries {dict(api.retries)}"
    )
