"""The relay keeps publishing through real Postgres and Kafka restarts, losing nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.events.envelope import EventEnvelope, NewEvent
from shared.eventstore.store import AppendContext, EventStore
from shared.messaging.kafka import RenewableProducer, make_producer
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings
from shared.tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


async def restart(component: str) -> None:
    """Stop and start a real server with the project's own scripts."""
    env = dict(os.environ)
    for action in ("stop", "start"):
        proc = await asyncio.create_subprocess_exec(
            "bash",
            str(DEPLOY / component / f"{action}.sh"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, f"{component} {action}: {err.decode()[-500:]}"
        await asyncio.sleep(1)


async def test_relay_publishes_everything_through_postgres_and_kafka_restarts(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    kafka_settings: KafkaSettings,
    fresh_topic: str,
) -> None:
    store = EventStore(scratch_schema)
    # As in the services: a plain producer whose sequence the restarted broker rejects fails
    # every later batch (this test failed so: OutOfOrderSequenceNumber until its deadline).
    producer = RenewableProducer(lambda: make_producer(kafka_settings, "recovery"), "recovery")
    await producer.start()
    relay = OutboxRelay(
        admin_engine,
        scratch_schema,
        producer,
        lambda _: fresh_topic,
        batch_size=50,
        poll_interval=0.02,
    )
    relay_task = asyncio.create_task(relay.run())
    committed: list[uuid.UUID] = []
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            try:
                async with sessions() as s, s.begin():
                    written = await store.append(
                        s,
                        f"thing-{uuid.uuid4()}",
                        0,
                        [NewEvent(event_type="ThingHappened", schema_version=1, payload={"n": n})],
                        AppendContext(
                            tenant_id="acme", actor="client:test", customer_id=f"c{n % 5}"
                        ),
                    )
                committed.append(written[0].event_id)  # only after the commit succeeded
                n += 1
            except Exception:
                await asyncio.sleep(0.2)  # the database is restarting: try again
            await asyncio.sleep(0.005)

    writing = asyncio.create_task(writer())
    try:
        await asyncio.sleep(3)
        await restart("postgres")
        await asyncio.sleep(3)
        await restart("kafka")
        await asyncio.sleep(3)
        stop.set()
        await writing
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            async with admin_engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(f"SELECT published_total FROM {scratch_schema}.relay_checkpoints")
                    )
                ).first()
            if row is not None and row.published_total >= len(committed):
                break
            await asyncio.sleep(0.5)
    finally:
        relay.stop()
        await relay_task
        await producer.stop()
    records = await read_topic(kafka_settings, fresh_topic, expect=len(committed), timeout=60)
    on_topic = {EventEnvelope.from_json_bytes(r.value).event_id for r in records}
    assert len(committed) > 100
    assert on_topic == set(committed)  # nothing lost, nothing that rolled back
    assert producer.broken is None
