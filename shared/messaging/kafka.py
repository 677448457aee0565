"""Kafka plumbing shared by the relay, the consumer runtime and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from shared.settings import KafkaSettings
from shared.topics import dlq_topic

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]

INFINITE_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


class HeaderFields(Protocol):
    """What the headers are made of: an `EventEnvelope`, or the relay's `OutboxRecord`."""

    @property
    def event_id(self) -> object: ...
    @property
    def event_type(self) -> str: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def correlation_id(self) -> object | None: ...
    @property
    def traceparent(self) -> str | None: ...


def envelope_headers(envelope: HeaderFields, traceparent: str | None = None) -> Headers:
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


def of_another_type(
    headers: Iterable[tuple[str, bytes]] | None, event_types: frozenset[str]
) -> bool:
    """The record's `event_type` header (the relay sets it) names a type outside `event_types`:
    it can be passed over unparsed. A record without the header is not: only its body tells."""
    event_type = header(headers, "event_type")
    return event_type is not None and event_type not in event_types


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


class Publisher(Protocol):
    """What the relay and the consumers' dead-letter path need of a producer."""

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> asyncio.Future[Any]: ...

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> Any: ...


# The broker no longer accepts this producer id's sequence: after a Kafka restart lost (or
# truncated) the producer state, every later batch to that partition fails the same way.
PRODUCER_STATE_ERRORS = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
)


class RenewableProducer:
    """The service's idempotent producer, replaced by a new one (new producer id) once the
    broker has rejected its sequence state.

    aiokafka keeps a producer's per-partition sequence numbers forever: after a Kafka restart
    answered OutOfOrderSequenceNumber, the relay retried with the same producer 169 times over
    17 minutes (tests/chaos/test_infrastructure_restart.py). A send whose result shows such an
    error marks the producer broken; the next send renews it first, so the callers' own retries
    heal it. Messages of the failed batch are resent by those retries (at-least-once; consumers
    de-duplicate by event_id)."""

    def __init__(self, factory: Callable[[], AIOKafkaProducer], name: str) -> None:
        self._factory = factory
        self._producer = factory()
        self._name = name
        self._broken: BaseException | None = None
        self._renewing = asyncio.Lock()
        self.renewals = 0

    @property
    def client(self) -> Any:
        return self._producer.client

    @property
    def broken(self) -> BaseException | None:
        """The error that condemned the current producer, until it is renewed."""
        return self._broken

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> asyncio.Future[Any]:
        if self._broken is not None:
            await self._renew()
        producer = self._producer
        try:
            future: asyncio.Future[Any] = await producer.send(
                topic, value=value, key=key, headers=headers
            )
        except PRODUCER_STATE_ERRORS as exc:  # aiokafka's sender gave up on this producer
            self._condemn(producer, exc)
            raise
        future.add_done_callback(functools.partial(self._watch, producer))
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
    ) -> Any:
        return await (await self.send(topic, value, key, headers=headers))

    def _watch(self, producer: AIOKafkaProducer, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and isinstance(future.exception(), PRODUCER_STATE_ERRORS):
            self._condemn(producer, future.exception())

    def _condemn(self, producer: AIOKafkaProducer, error: BaseException | None) -> None:
        # Late failures of a producer already replaced must not condemn its successor.
        if producer is self._producer and self._broken is None:
            self._broken = error

    async def _renew(self) -> None:
        async with self._renewing:
            if self._broken is None:
                return  # another caller renewed it while this one waited
            old, reason = self._producer, self._broken
            log.warning(
                "%s: Kafka rejected the producer's state (%s); starting a new producer",
                self._name,
                type(reason).__name__,
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), timeout=10)
            new = self._factory()
            try:
                await new.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await new.stop()
                raise
            self._producer, self._broken = new, None
            self.renewals += 1


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


READER_FETCH_WAIT_MS = 20


def make_reader(settings: KafkaSettings, purpose: str) -> AIOKafkaConsumer:
    """A consumer outside any group (assign and seek by hand): tools and rebuilds read topics
    without moving, or depending on, any service's committed offsets.

    They read up to end offsets they asked for. The broker answers one request per connection
    at a time, so with the default 500 ms fetch wait every offsets request queued behind a fetch
    of an exhausted partition: a rebuild spent a fifth of its time in three such waits."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id_prefix}-{purpose}",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=READER_FETCH_WAIT_MS,
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
    wanted = _with_dlqs(topics, with_dlq)
    admin = await _started_admin(settings, attempts)
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


async def delete_topics(
    settings: KafkaSettings, topics: Iterable[str], *, with_dlq: bool = True, attempts: int = 30
) -> list[str]:
    """Delete each topic (and its `.dlq`) that exists; returns those deleted. For what tests and
    benches create: a broker keeping every such topic took minutes to start after a few hundred
    test runs."""
    wanted = _with_dlqs(topics, with_dlq)
    admin = await _started_admin(settings, attempts)
    try:
        existing = set(await admin.list_topics())
        present = [t for t in wanted if t in existing]
        if present:
            await admin.delete_topics(present)
        return present
    finally:
        await admin.close()


def _with_dlqs(topics: Iterable[str], with_dlq: bool) -> list[str]:
    names: list[str] = []
    for topic in topics:
        names.append(topic)
        if with_dlq:
            names.append(dlq_topic(topic))
    return names


async def _started_admin(settings: KafkaSettings, attempts: int) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    for attempt in range(attempts):
        try:
            await admin.start()
            return admin
        except KafkaConnectionError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable: attempts must be positive")
