"""Reading test topics back from the real broker."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.outbox import OutboxRelay, backlog
from shared.settings import KafkaSettings


async def read_topic(
    settings: KafkaSettings, topic: str, *, expect: int, timeout: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` from the beginning, waiting until at least `expect` arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
        # a short grace period shows up any unexpected extra records
        for part in (await consumer.getmany(timeout_ms=300)).values():
            records.extend(part)
    finally:
        await consumer.stop()
    return records


async def drain(relay: OutboxRelay, timeout: float = 10.0) -> int:
    """Publish until the backlog is empty. Several batches may be needed: rows behind a
    transaction still running elsewhere in the cluster are held back until it ends."""
    published = 0
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        published += await relay.publish_batch()
        async with relay.engine.connect() as conn:
            if await backlog(conn, relay.store.schema) == 0:
                return published
        await asyncio.sleep(0.01)
    raise AssertionError(f"backlog not drained after {timeout}s ({published} published)")
