"""What a running service process holds: engine, Kafka producer, relay and consumer tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.audit.chain import ChainSealer
from shared.consumer import ConsumerRuntime, Handler
from shared.db import make_engine, make_sessionmaker
from shared.eventstore.store import EventStore, OutboxRecord, TransactionIdsBehind
from shared.messaging.kafka import RenewableProducer, make_consumer, make_producer
from shared.outbox import OutboxRelay, TopicRouter, service_router, waking_session
from shared.pause import pause
from shared.settings import ServiceSettings
from shared.tracing import instrument_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer group a service runs: which topics, and the handler applying each event."""

    group_id: str
    topics: tuple[str, ...]
    handler: Handler
    # The event types the handler acts on, when it names them; None: every record is its.
    event_types: frozenset[str] | None = None


class Worker(Protocol):
    """A periodic background job of a service (e.g. a sweeper); it stops when `runtime.stopping`."""

    name: str

    def run(self, runtime: ServiceRuntime) -> Coroutine[Any, Any, None]: ...


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: RenewableProducer | None = None
    relay: OutboxRelay | None = None
    sealer: ChainSealer | None = None
    consumers: list[ConsumerRuntime] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def create(cls, settings: ServiceSettings) -> ServiceRuntime:
        engine = make_engine(
            settings.dsn(),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            application_name=f"ledgerline-{settings.service_name}",
        )
        instrument_engine(engine)
        runtime: ServiceRuntime
        # The relay is made in start(); the session class asks for it at each commit.
        sessions = make_sessionmaker(engine, waking_session(lambda: runtime.relay))
        runtime = cls(settings=settings, engine=engine, sessions=sessions)
        return runtime

    async def start(
        self,
        consumer_specs: list[ConsumerSpec],
        router: TopicRouter | None = None,
    ) -> None:
        s = self.settings
        await self._check_transaction_ids()
        if s.run_relay or (s.run_consumers and consumer_specs):
            self.producer = RenewableProducer(
                lambda: make_producer(s.kafka, f"{s.service_name}-producer"), s.service_name
            )
            await _retrying(self.producer.start, f"{s.service_name}: Kafka producer")
        if s.run_relay and self.producer is not None:
            self.relay = OutboxRelay(
                self.engine,
                s.schema_name,
                self.producer,
                router or service_router(s.service_name),
                batch_size=s.kafka.relay_batch_size,
                poll_interval=s.kafka.relay_poll_interval_seconds,
                idle_poll_interval=s.kafka.relay_idle_poll_interval_seconds,
                before_checkpoint=_killed_after_ack(s.fault_kill_relay_after_ack)
                if s.fault_kill_relay_after_ack
                else None,
            )
            self.spawn(self.relay.run(), "relay")
        if s.run_relay:
            self.sealer = ChainSealer(self.engine, s.schema_name)
            self.spawn(self.sealer.run(), "chain sealer")
        if s.run_consumers and self.producer is not None:
            for spec in consumer_specs:
                consumer = make_consumer(s.kafka, spec.group_id)
                runtime = ConsumerRuntime(
                    consumer=consumer,
                    producer=self.producer,
                    sessions=self.sessions,
                    schema=s.schema_name,
                    group_id=spec.group_id,
                    handler=spec.handler,
                    max_batch=s.kafka.consumer_max_batch,
                    max_retries=s.kafka.consumer_max_retries,
                    retry_backoff=s.kafka.consumer_retry_backoff_seconds,
                    transaction_budget=s.kafka.consumer_transaction_budget_seconds,
                    event_types=spec.event_types,
                )
                # Start, then subscribe: aiokafka's start() on a subscribed consumer waits for the
                # group's first assignment, which after a crash waits out the dead member's
                # session (30 s) and kept the HTTP API down that long (tests/chaos).
                await _retrying(consumer.start, f"{spec.group_id}: Kafka consumer")
                consumer.subscribe(list(spec.topics), listener=runtime.rebalance_listener())
                self.consumers.append(runtime)
                self.spawn(runtime.run(), f"consumer {spec.group_id}")

    async def _check_transaction_ids(self) -> None:
        """A process does not start on a database restored from a logical dump before the
        cluster's transaction ids were moved past the stored ones: the events it wrote would
        sort below the relay's checkpoint and never be published (TransactionIdsBehind).

        Any other failure (the database not up yet) is left to the requests, which answer 503,
        and to the relay and sealer, which check again before they lead."""
        store = EventStore(self.settings.schema_name)

        async def check() -> None:
            async with self.engine.connect() as conn:
                await store.check_transaction_ids(conn)

        try:
            await asyncio.wait_for(check(), timeout=5)
        except TransactionIdsBehind:
            raise
        except Exception as exc:
            log.warning(
                "%s: transaction ids not checked at start: %r", self.settings.service_name, exc
            )

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        self.tasks.append(task)

    async def stop(self) -> None:
        """Graceful: the relay and consumers finish their batch, then connections close."""
        self.stopping.set()
        if self.relay is not None:
            self.relay.stop()
        if self.sealer is not None:
            self.sealer.stop()
        for consumer in self.consumers:
            consumer.stop()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=15)
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*pending, return_exceptions=True)
        for consumer in self.consumers:
            with contextlib.suppress(Exception):
                await consumer.consumer.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        await self.engine.dispose()

    async def check_database(self) -> str | None:
        """None when healthy, else the reason (for /readyz)."""
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
            return None
        except Exception as exc:
            return f"database: {type(exc).__name__}: {exc}"[:300]

    def check_workers(self) -> str | None:
        """A relay or consumer task that ended while the service runs is a broken service, and
        so is a relay or sealer that refuses to work until an operator acts."""
        dead = [t.get_name() for t in self.tasks if t.done()]
        if dead:
            return f"background tasks stopped: {', '.join(dead)}"
        refusals = (self.relay.stats.refused if self.relay else None) or (
            self.sealer.refused if self.sealer else None
        )
        return refusals or None

    async def check_kafka(self) -> str | None:
        if self.producer is None:
            return None if not self.settings.run_relay else "kafka: producer not started"
        if self.producer.broken is not None:
            return f"kafka: producer rejected ({type(self.producer.broken).__name__}), renewing"
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout=3)
            return None
        except Exception as exc:
            return f"kafka: {type(exc).__name__}: {exc}"[:300]


def _killed_after_ack(spec: str) -> Callable[[list[OutboxRecord]], Awaitable[None]]:
    """Fault injection (`fault_kill_relay_after_ack`, tests only): SIGKILL this process after
    Kafka acknowledged a batch holding an event of the tenant (and type, if given)."""
    tenant, _, event_type = spec.partition(":")

    async def kill_if_matching(batch: list[OutboxRecord]) -> None:
        if any(e.tenant_id == tenant and event_type in ("", e.event_type) for e in batch):
            log.warning("fault injection: SIGKILL after the Kafka ack, before the checkpoint")
            os.kill(os.getpid(), signal.SIGKILL)

    return kill_if_matching


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=task.exception())


async def _retrying(start: Callable[[], object], what: str, attempts: int = 30) -> None:
    """Services come up before or after Kafka; wait for it rather than crash-looping."""
    for attempt in range(1, attempts + 1):
        try:
            await start()  # type: ignore[misc]
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("%s not reachable yet (%s); retry %d/%d", what, exc, attempt, attempts)
            await asyncio.sleep(1)


async def every(
    runtime: ServiceRuntime, seconds: float, job: Callable[[], Awaitable[None]], what: str
) -> None:
    """Run `job` now and then every `seconds` until the service stops; a failing run is logged
    and the next one tries again."""
    while not runtime.stopping.is_set():
        try:
            await job()
        except Exception:
            log.exception("%s failed; next run in %.0fs", what, seconds)
        await pause(runtime.stopping, seconds)
