"""Creating and deleting topics on the real broker: what tests and benches make, they remove."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient

from shared.messaging.kafka import delete_topics, ensure_topics
from shared.settings import KafkaSettings
from shared.testing import temporary_topics
from shared.topics import dlq_topic


async def topic_partitions(settings: KafkaSettings, names: list[str]) -> dict[str, int]:
    """How many partitions each of `names` that exists has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        present = [n for n in names if n in set(await admin.list_topics())]
        if not present:
            return {}
        described = await admin.describe_topics(present)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def test_temporary_topics_exist_with_their_dlqs_inside_and_are_gone_after(
    kafka_settings: KafkaSettings,
) -> None:
    name = f"test.admin.{uuid.uuid4().hex[:12]}.v1"
    both = [name, dlq_topic(name)]
    async with temporary_topics(kafka_settings, [name], partitions=2) as topics:
        assert list(topics) == [name]
        assert await topic_partitions(kafka_settings, both) == {name: 2, dlq_topic(name): 2}
        assert await ensure_topics(kafka_settings, [name]) == []  # nothing missing: none created

    left = await topic_partitions(kafka_settings, both)
    for _ in range(50):  # the broker's metadata follows the deletion within moments
        if not left:
            break
        await asyncio.sleep(0.1)
        left = await topic_partitions(kafka_settings, both)
    assert left == {}
    assert await delete_topics(kafka_settings, [name]) == []  # deleting again finds nothing
