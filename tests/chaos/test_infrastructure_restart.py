"""Chaos: Postgres and then Kafka are restarted while the mixed load runs. The services
recover by themselves (no process is restarted by the test), and nothing is lost: the same
reconciliation as after the SIGKILL test."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.processes import wait_ready
from shared.settings import KafkaSettings
from tests.chaos.cluster import READY_TIMEOUT, SERVICES, Cluster, restart_infrastructure
from tests.chaos.load import Api, Load, Size, new_book
from tests.chaos.reconcile import Offsets, reconcile

pytestmark = pytest.mark.integration


async def test_postgres_and_kafka_restart_during_the_load(
    cluster: Cluster,
    topic_ends: Offsets,
    admin_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
) -> None:
    await cluster.start()
    book = new_book(customers=12)
    api = Api({n: cluster.url(n) for n in SERVICES}, book.tenant, op_timeout=240)
    load = Load(api, book, Size(operations=3000, customers=12, workers=8, kill_every=0), seed=17)
    restarts: dict[str, float] = {}
    try:
        await load.onboard()
        started = time.monotonic()
        running = asyncio.create_task(load.run())
        for component in ("postgres", "kafka"):
            await asyncio.sleep(10)
            assert not running.done(), "the load ended before the restart: make it bigger"
            restarts[component] = await restart_infrastructure(component)
        await running
        await load.finish()
        seconds = time.monotonic() - started
        assert sum(load.done.values()) == 3000, load.done
        # An outage is 503 + Retry-After (or a refused connection), never a 500 (a bug's answer).
        assert not [cause for cause in api.retries if cause.endswith("HTTP 500")], api.retries

        # Recovered by themselves: the very processes started at the beginning, all ready.
        problems = await asyncio.to_thread(wait_ready, cluster.processes.values(), READY_TIMEOUT)
        assert not problems, problems
        assert all(p.alive and p.starts == 1 for p in cluster.processes.values())
        await admin_engine.dispose()  # its pooled connections died with Postgres (no pings)
        report = await reconcile(
            admin_engine, kafka_settings, topic_ends, api, book, quiet_timeout=240
        )
    finally:
        await api.close()
    print(
        f"\nrestarted {restarts} (seconds) during {dict(load.done)} in {seconds:.1f}s; "
        f"retries {dict(api.retries)}; {report.events} events, {report.duplicates_on_topics} "
        f"duplicates on the topics; open {report.open_total}; {', '.join(report.notes)}"
    )
