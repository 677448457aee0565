"""Chaos: a mixed load of invoices, payments and disputes while a random service process is
SIGKILLed every few seconds and restarted. Afterwards: zero events lost, zero duplicate effects,
and every balance reconciles to the minor unit against a fresh replay (issue 9).

The CI variant (`make test`) runs a few hundred operations; the full one (10,000 operations,
`make test-all`) is marked slow. `CHAOS_SEED=<n>` replays a run's choices (the seed is printed).
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import KafkaSettings
from tests.chaos.cluster import SERVICES, Cluster
from tests.chaos.load import Api, Load, Size, new_book
from tests.chaos.reconcile import Offsets, reconcile

pytestmark = pytest.mark.integration

SIZES = [
    pytest.param(Size(operations=200, customers=8, workers=6, kill_every=3.0), id="ci-200"),
    pytest.param(
        Size(operations=10_000, customers=40, workers=10, kill_every=3.0, quiet_timeout=900),
        id="full-10000",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("size", SIZES)
async def test_sigkill_random_services_under_mixed_load(
    size: Size,
    cluster: Cluster,
    topic_ends: Offsets,
    admin_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(2**32)))
    print(f"\nCHAOS_SEED={seed}")
    await cluster.start()
    book = new_book(size.customers)
    api = Api({n: cluster.url(n) for n in SERVICES}, book.tenant, op_timeout=180)
    load = Load(api, book, size, seed)
    try:
        await load.onboard()
        stop = asyncio.Event()
        monkey = asyncio.create_task(cluster.monkey(stop, size.kill_every, random.Random(seed)))
        started = time.monotonic()
        try:
            await load.run()
        finally:
            stop.set()
            await monkey
        seconds = time.monotonic() - started
        await load.finish()

        # The chaos really happened, and every killed process came back by itself.
        assert cluster.kills, "no service was killed during the load"
        assert not [k for k in cluster.kills if k.ready_after is None], cluster.kills
        assert all(p.alive for p in cluster.processes.values())
        assert all(
            p.starts == 1 + sum(k.service == p.name for k in cluster.kills)
            for p in cluster.processes.values()
        )
        assert sum(load.done.values()) == size.operations, load.done

        report = await reconcile(
            admin_engine, kafka_settings, topic_ends, api, book, size.quiet_timeout
        )
    finally:
        await api.close()
    print(
        f"{size.operations} operations {dict(load.done)} in {seconds:.1f}s "
        f"({size.operations / seconds:.1f} ops/s, {api.requests} requests); "
        f"{cluster.kill_summary()}; retries {dict(api.retries)}; "
        f"issue retries that had landed {load.issue_replays}; payments deferred "
        f"{load.deferred_payments}; {report.events} events, {report.duplicates_on_topics} "
        f"duplicates on the topics; open {report.open_total} over {report.customers} "
        f"customers; {', '.join(report.notes)}"
    )
