"""Kafka plumbing shared by the relay, the consumer runtime and the CLI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from shared.events.envelope import EventEnvelope
from shared.settings import KafkaSettings
from shared.topics import dlq_topic

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]

INFINITE_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def envelope_headers(envelope: EventEnvelope, traceparent: str | None = None) -> Headers:
    """What a consumer (or a person with kcat) needs without parsing the value."""
    headers: Headers = [
        ("event_id", str(envelope.event_id).encode()),
        ("event_type", envelope.event_type.encode()),
        ("schema_version", str(envelope.schema_version).encode()),
        ("tenant_id", envelope.tenant_id.encode()),
    ]
    if envelope.correlation_id:
        headers.append(("correlation_id", str(envelope.correlation_id).encode()))
    tp = traceparent or envelope.traceparent
    if tp:
        headers.append(("traceparent", tp.encode()))
    return headers


def header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


def make_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    """Idempotent producer: acks from all in-sync replicas, no duplicates from its own retries."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id_prefix}-{client_id}",
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=30000,
    )


def make_consumer(settings: KafkaSettings, group_id: str, *topics: str) -> AIOKafkaConsumer:
    """Manual offset commits only, after the database has committed the effects."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id_prefix}-{group_id}",
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_interval_ms=300000,
        session_timeout_ms=30000,
        heartbeat_interval_ms=3000,
    )


def make_reader(settings: KafkaSettings, purpose: str) -> AIOKafkaConsumer:
    """A consumer outside any group (assign and seek by hand): tools and rebuilds read topics
    without moving, or depending on, any service's committed offsets."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id_prefix}-{purpose}",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )


async def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str],
    *,
    partitions: int = 3,
    replication_factor: int = 1,
    with_dlq: bool = True,
    attempts: int = 30,
) -> list[str]:
    """Create each topic (and its `.dlq`) with infinite retention if missing; returns those created."""
    wanted: list[str] = []
    for topic in topics:
        wanted.append(topic)
        if with_dlq:
            wanted.append(dlq_topic(topic))
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            # With replicas, acks=all waits for min.insync.replicas of them: 2 of 3 survives a
            # broker loss without accepting a write only one broker has.
            configs = {
                **INFINITE_RETENTION,
                "min.insync.replicas": str(min(2, max(1, replication_factor - 1))),
            }
            new = [
                NewTopic(
                    t,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=configs,
                )
                for t in missing
            ]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # a concurrent creator won; the topic is there, which is all we need
        return missing
    finally:
        await admin.close()
