"""Outbox relay: publishes a service's events table to Kafka, in order, never skipping one.

The events table is the outbox. The relay reads in (transaction id, position) order and only
below the oldest running transaction (EventStore.read_all), so an event whose transaction
commits after later ones is still published, just not before it exists. Each batch is sent with
an idempotent producer (acks=all) and the checkpoint is moved only after Kafka acknowledged every
message: a crash in between re-publishes (at-least-once), and consumers de-duplicate by event_id.

Only one relay per service publishes: the leader holds a Postgres advisory lock on the very
connection it reads and checkpoints with, so losing that connection also loses leadership.

The relay polls, and the service's own commits that appended events wake it (`waking_session`),
so an event leaves for Kafka as soon as its transaction commits instead of at the next poll.
While events flow it polls every `poll_interval`: a woken poll finds nothing while an older
transaction anywhere in the cluster is still open, and writers in other processes (a second
replica, the `ar` CLI) wake nobody. After `BUSY_FOR` seconds without events or wake-ups it polls
only every `idle_poll_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Session

from shared.eventstore.store import (
    EVENTS_WRITTEN,
    EventStore,
    OutboxRecord,
    Position,
    TransactionIdsBehind,
)
from shared.messaging.kafka import Publisher, envelope_headers
from shared.metrics import EVENTS_PUBLISHED
from shared.pause import pause
from shared.topics import event_topic
from shared.tracing import context_from_traceparent, current_traceparent, tracer

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

TopicRouter = Callable[[OutboxRecord], str]

BUSY_FOR = 1.0
"""Seconds after the last event published or wake-up during which the relay polls every
`poll_interval`; then every `idle_poll_interval`."""


def service_router(service: str) -> TopicRouter:
    """`invoice-<id>` in service `invoice` goes to `ar.invoice.invoice.v1`."""
    return lambda record: event_topic(service, record.aggregate)


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    is_leader: bool = False
    refused: str | None = None  # why it will not publish until an operator acts (for /readyz)


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        schema: str,
        producer: Publisher,
        router: TopicRouter,
        *,
        name: str = "kafka",
        batch_size: int = 1000,
        poll_interval: float = 0.05,
        idle_poll_interval: float | None = None,
        before_checkpoint: Callable[[list[OutboxRecord]], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.store = EventStore(schema)
        self.producer = producer
        self.router = router
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.idle_poll_interval = idle_poll_interval or poll_interval
        self.stats = RelayStats()
        # Test hook: runs after Kafka acknowledged a batch, before the checkpoint moves.
        self._before_checkpoint = before_checkpoint
        self._lock_key = zlib.crc32(f"ledgerline-relay:{schema}:{name}".encode())
        self._conn: AsyncConnection | None = None
        self._stopping = asyncio.Event()
        self._nudged = asyncio.Event()  # a commit with events, or stop()
        self._busy_until = 0.0

    async def run(self) -> None:
        """Publish until stop(); survive database and Kafka outages by retrying with backoff."""
        backoff = self.poll_interval
        while not self._stopping.is_set():
            try:
                if not await self._ensure_leader():
                    await pause(self._stopping, 1.0)
                    continue
                self._nudged.clear()  # a commit during the poll wakes the next one at once
                sent = await self.publish_batch()
                backoff = self.poll_interval
                if sent:
                    self._busy_until = time.monotonic() + BUSY_FOR
                if sent < self.batch_size:
                    await self._await_events()
            except asyncio.CancelledError:
                raise
            except TransactionIdsBehind as exc:
                self.stats.refused = str(exc)
                log.error("relay %s will not publish: %s", self.name, exc)
                await self._release()
                await pause(self._stopping, 10.0)
            except Exception:
                log.exception("relay %s failed; retrying in %.1fs", self.name, backoff)
                await self._release()
                await pause(self._stopping, backoff)
                backoff = min(backoff * 2, 5.0)
        await self._release()

    def stop(self) -> None:
        self._stopping.set()
        self._nudged.set()

    def wake(self) -> None:
        """A transaction with events committed: publish now (callable from sync code, such as a
        session event, on the loop's thread)."""
        self._busy_until = time.monotonic() + BUSY_FOR
        self._nudged.set()

    async def _await_events(self) -> None:
        """Until woken, or the poll interval (short while events flow, long when idle) passes."""
        busy = time.monotonic() < self._busy_until
        timeout = self.poll_interval if busy else self.idle_poll_interval
        await pause(self._nudged, timeout)

    async def _ensure_leader(self) -> bool:
        if self._conn is not None and not self._conn.closed:
            return True
        conn = await self.engine.connect()
        try:
            await self.store.check_transaction_ids(conn)
            self.stats.refused = None
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._lock_key})
            ).scalar_one()
            await conn.commit()
        except Exception:
            await conn.close()
            raise
        if not got:
            await conn.close()
            self.stats.is_leader = False
            return False
        log.info("relay %s on schema %s is the leader", self.name, self.store.schema)
        self._conn = conn
        self.stats.is_leader = True
        return True

    async def _release(self) -> None:
        """Give up leadership by dropping the database session that holds the lock.

        Invalidating (not just closing) matters: a pooled connection returned to the pool keeps
        its session, and with it the advisory lock, so no standby could ever take over.
        """
        conn, self._conn = self._conn, None
        self.stats.is_leader = False
        if conn is not None:
            try:
                await conn.invalidate()
                await conn.close()
            except Exception:
                log.debug("dropping relay connection failed", exc_info=True)

    async def publish_batch(self) -> int:
        """Publish the next batch (leader only); returns how many events were sent."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("publish_batch needs leadership; call run() or acquire() first")
        checkpoint = await self._checkpoint(conn)
        batch = await self.store.read_outbox(conn, checkpoint, limit=self.batch_size)
        await conn.commit()
        if not batch:
            return 0
        futures = []
        for record in batch:
            topic = self.router(record)
            with _tracer.start_as_current_span(
                f"publish {topic}",
                context=context_from_traceparent(record.traceparent),
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "ledgerline.event_id": record.event_id,
                    "ledgerline.event_type": record.event_type,
                },
            ):
                futures.append(
                    await self.producer.send(
                        topic,
                        value=record.value,
                        key=record.partition_key.encode(),
                        headers=envelope_headers(record, current_traceparent()),
                    )
                )
        await asyncio.gather(*futures)  # every message acknowledged by all in-sync replicas
        if self._before_checkpoint is not None:
            await self._before_checkpoint(batch)
        last = batch[-1].position
        await conn.execute(
            text(
                f"""INSERT INTO {self.store.schema}.relay_checkpoints
                        (relay_name, transaction_id, global_position, published_total)
                    VALUES (:name, CAST(CAST(:xid AS text) AS xid8), :pos, :n)
                    ON CONFLICT (relay_name) DO UPDATE SET
                        transaction_id = EXCLUDED.transaction_id,
                        global_position = EXCLUDED.global_position,
                        published_total = relay_checkpoints.published_total + :n,
                        updated_at = now()"""
            ),
            {
                "name": self.name,
                "xid": str(last.transaction_id),
                "pos": last.global_position,
                "n": len(batch),
            },
        )
        await conn.commit()
        EVENTS_PUBLISHED.labels(schema=self.store.schema).inc(len(batch))
        self.stats.published += len(batch)
        self.stats.batches += 1
        return len(batch)

    async def acquire(self) -> bool:
        """Try to become the leader without running the loop (tests and one-shot tools)."""
        return await self._ensure_leader()

    async def release(self) -> None:
        await self._release()

    async def _checkpoint(self, conn: AsyncConnection) -> Position:
        row = (
            await conn.execute(
                text(
                    f"""SELECT transaction_id::text AS xid, global_position
                        FROM {self.store.schema}.relay_checkpoints WHERE relay_name = :name"""
                ),
                {"name": self.name},
            )
        ).first()
        return Position(int(row.xid), row.global_position) if row else Position.start()


class Wakeable(Protocol):
    """What a waking session calls after a commit with events: the relay (or a test's stand-in)."""

    def wake(self) -> None: ...


def waking_session(relay_of: Callable[[], Wakeable | None]) -> type[Session]:
    """A Session class whose commits wake the relay `relay_of()` returns when they appended events
    (`EventStore.append` marks the session); a rollback forgets the mark."""

    class WakingSession(Session):
        pass

    def committed(session: Session) -> None:
        if session.info.pop(EVENTS_WRITTEN, False) and (relay := relay_of()) is not None:
            relay.wake()

    def rolled_back(session: Session) -> None:
        session.info.pop(EVENTS_WRITTEN, None)

    event.listen(WakingSession, "after_commit", committed)
    event.listen(WakingSession, "after_rollback", rolled_back)
    return WakingSession


async def backlog(conn: AsyncConnection, schema: str, name: str = "kafka") -> int:
    """Events committed but not yet published (for /metrics and `ar` status)."""
    store = EventStore(schema)
    row = (
        await conn.execute(
            text(
                f"""SELECT count(*) FROM {store.schema}.events e
                    WHERE (e.transaction_id, e.global_position) > COALESCE(
                        (SELECT (c.transaction_id, c.global_position)
                           FROM {store.schema}.relay_checkpoints c WHERE c.relay_name = :name),
                        ('0'::xid8, 0::bigint))"""
            ),
            {"name": name},
        )
    ).scalar_one()
    return int(row)
