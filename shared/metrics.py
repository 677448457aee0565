"""Prometheus metrics of a service process, served on `GET /metrics` by every service app.

Why this shape:
- Values updated on the hot path (HTTP durations, appended and published events, how long an
  event took to become visible to a consumer group) are module-level metric objects, created
  once per process with `registry=None`: tests build many apps in one process, and the default
  registry refuses a second registration of the same name.
- Each app gets its own `CollectorRegistry` (`ServiceMetrics`) holding those objects plus a
  collector for values read at scrape time (outbox backlog, consumer lag, open dead letters,
  consumer message counts, relay leadership). Reading them needs the database and Kafka, which
  are async, while `Collector.collect()` is sync; so `ServiceMetrics.render()` gathers a
  `ScrapeSnapshot` first and the collector only turns that snapshot into metric families.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from shared.consumer import ConsumerRuntime
    from shared.web.runtime import ServiceRuntime

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_SECONDS = 2.0
"""How long one scrape waits for each database query or Kafka position before skipping it."""

UNMATCHED_ROUTE = "unmatched"
"""The `route` label of requests no route matched (404s), so raw paths never become labels."""

_UNDEFINED_TABLE = "42P01"

# ---- process-wide metrics (updated where things happen) --------------------------------------

HTTP_REQUEST_DURATION = Histogram(
    "ledgerline_http_request_duration_seconds",
    "HTTP request duration, by route template (not the raw path) and status code.",
    ["service", "method", "route", "status"],
    registry=None,
)
EVENTS_APPENDED = Counter(
    "ledgerline_events_appended",
    "Events appended by this process (counted at INSERT; the transaction may still roll back).",
    ["schema"],
    registry=None,
)
EVENTS_PUBLISHED = Counter(
    "ledgerline_events_published",
    "Events the outbox relay of this process published to Kafka (after the checkpoint commit).",
    ["schema"],
    registry=None,
)
EVENT_VISIBILITY = Histogram(
    "ledgerline_event_visibility_seconds",
    "Seconds from an event's recorded_at in the producing service until the consumer group's "
    "transaction that applied it committed (for reporting.projections: the projection lag).",
    ["group"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=None,
)
SCRAPE_ERRORS = Counter(
    "ledgerline_metrics_scrape_errors",
    "Scrape-time values that could not be read (the sample is skipped for that scrape).",
    ["service", "source"],
    registry=None,
)

_PROCESS_METRICS: tuple[Collector, ...] = (
    HTTP_REQUEST_DURATION,
    EVENTS_APPENDED,
    EVENTS_PUBLISHED,
    EVENT_VISIBILITY,
    SCRAPE_ERRORS,
)


def observe_applied(group: str, recorded_at: list[datetime]) -> None:
    """Record, for each event a consumer group's committed transaction applied, how long it took
    from `recorded_at` to now. Call right after the commit."""
    now = datetime.now(UTC)
    histogram = EVENT_VISIBILITY.labels(group=group)
    for at in recorded_at:
        if at.tzinfo is None:  # the database stores timestamptz; a naive value means UTC
            at = at.replace(tzinfo=UTC)
        histogram.observe(max((now - at).total_seconds(), 0.0))  # clock skew is not negative lag


# ---- scrape-time values --------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    lag: int


@dataclass(frozen=True)
class ScrapeSnapshot:
    """What one scrape read from the database and Kafka; None or missing means unknown."""

    backlog: int | None = None
    dlq_open: dict[str, int] = field(default_factory=dict)
    consumer_lag: list[PartitionLag] = field(default_factory=list)
    consumer_messages: dict[tuple[str, str], int] = field(default_factory=dict)
    relay_leader: bool | None = None
    unsealed: int | None = None


class RuntimeCollector(Collector):
    """Yields the scrape-time families of one service from the snapshot taken for this scrape."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.snapshot = ScrapeSnapshot()

    def collect(self) -> Iterable[Metric]:
        snap, service = self.snapshot, self.service
        backlog = GaugeMetricFamily(
            "ledgerline_outbox_backlog",
            "Events committed but not yet published by the outbox relay.",
            labels=["service"],
        )
        if snap.backlog is not None:
            backlog.add_metric([service], snap.backlog)
        lag = GaugeMetricFamily(
            "ledgerline_consumer_lag_messages",
            "Messages on an assigned partition not yet consumed (highwater - position).",
            labels=["service", "group", "topic", "partition"],
        )
        for p in snap.consumer_lag:
            lag.add_metric([service, p.group, p.topic, str(p.partition)], p.lag)
        dlq = GaugeMetricFamily(
            "ledgerline_dlq_open",
            "Dead letters waiting for an operator (status 'open').",
            labels=["service", "group"],
        )
        for group, count in sorted(snap.dlq_open.items()):
            dlq.add_metric([service, group], count)
        messages = CounterMetricFamily(
            "ledgerline_consumer_messages",
            "Messages handled by this process's consumers, by outcome.",
            labels=["service", "group", "outcome"],
        )
        for (group, outcome), count in sorted(snap.consumer_messages.items()):
            messages.add_metric([service, group, outcome], count)
        chain = GaugeMetricFamily(
            "ledgerline_chain_unsealed_events",
            "Committed events the hash-chain sealer has not linked yet.",
            labels=["service"],
        )
        if snap.unsealed is not None:
            chain.add_metric([service], snap.unsealed)
        families: list[Metric] = [backlog, lag, dlq, messages, chain]
        if snap.relay_leader is not None:
            leader = GaugeMetricFamily(
                "ledgerline_relay_leader",
                "1 when this process's outbox relay holds leadership, else 0.",
                labels=["service"],
            )
            leader.add_metric([service], 1 if snap.relay_leader else 0)
            families.append(leader)
        return families


class ServiceMetrics:
    """The registry behind one app's `/metrics`, bound to that app's running ServiceRuntime."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.service = runtime.settings.service_name
        self.registry = CollectorRegistry(auto_describe=False)
        for metric in _PROCESS_METRICS:
            self.registry.register(metric)
        self.collector = RuntimeCollector(self.service)
        self.registry.register(self.collector)

    async def render(self) -> bytes:
        snapshot = await self.gather()
        # No await between setting the snapshot and rendering it: a concurrent scrape cannot
        # swap it in between.
        self.collector.snapshot = snapshot
        return generate_latest(self.registry)

    async def gather(self) -> ScrapeSnapshot:
        runtime = self.runtime
        backlog, dlq_open, lags, unsealed = await asyncio.gather(
            self._backlog(), self._dlq_open(), self._consumer_lag(), self._unsealed()
        )
        messages: dict[tuple[str, str], int] = {}
        for consumer in runtime.consumers:
            stats = consumer.stats
            messages[(consumer.group_id, "processed")] = stats.processed
            messages[(consumer.group_id, "duplicates")] = stats.duplicates
            messages[(consumer.group_id, "dead_lettered")] = stats.dead_lettered
        return ScrapeSnapshot(
            backlog=backlog,
            dlq_open=dlq_open,
            consumer_lag=lags,
            consumer_messages=messages,
            relay_leader=runtime.relay.stats.is_leader if runtime.relay is not None else None,
            unsealed=unsealed,
        )

    async def _unsealed(self) -> int | None:
        from shared.audit.chain import unsealed  # the chain imports the event store, as above

        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT_SECONDS):
                async with self.runtime.engine.connect() as conn:
                    return await unsealed(conn, self.runtime.settings.schema_name)
        except Exception:
            self._scrape_error("chain_unsealed")
            return None

    async def _backlog(self) -> int | None:
        # Imported here: shared.outbox imports the event store, which imports this module.
        from shared.outbox import backlog

        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT_SECONDS):
                async with self.runtime.engine.connect() as conn:
                    return await backlog(conn, self.runtime.settings.schema_name)
        except Exception:
            self._scrape_error("outbox_backlog")
            return None

    async def _dlq_open(self) -> dict[str, int]:
        """Open dead letters per consumer group, 0 for this process's groups that have none."""
        counts = {consumer.group_id: 0 for consumer in self.runtime.consumers}
        schema = self.runtime.settings.schema_name
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT_SECONDS):
                async with self.runtime.engine.connect() as conn:
                    rows = await conn.execute(
                        text(
                            f"""SELECT consumer_group, count(*) AS n FROM {schema}.dead_letters
                                WHERE status = 'open' GROUP BY consumer_group"""
                        )
                    )
                    counts.update({row.consumer_group: int(row.n) for row in rows})
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _UNDEFINED_TABLE:
                return {}  # a schema migrated before dead_letters existed: nothing to report
            self._scrape_error("dlq_open")
            return {}
        except Exception:
            self._scrape_error("dlq_open")
            return {}
        return counts

    async def _consumer_lag(self) -> list[PartitionLag]:
        pending = [
            (consumer, tp)
            for consumer in self.runtime.consumers
            for tp in sorted(consumer.consumer.assignment())
        ]
        lags = await asyncio.gather(*(_partition_lag(c, tp) for c, tp in pending))
        return [
            PartitionLag(consumer.group_id, tp.topic, tp.partition, lag)
            for (consumer, tp), lag in zip(pending, lags, strict=True)
            if lag is not None
        ]

    def _scrape_error(self, source: str) -> None:
        log.warning("metrics: reading %s failed", source, exc_info=True)
        SCRAPE_ERRORS.labels(service=self.service, source=source).inc()


async def _partition_lag(consumer: ConsumerRuntime, tp: Any) -> int | None:
    """highwater - position of one assigned partition; None while either is unknown (before the
    first fetch, or when the partition was revoked meanwhile)."""
    kafka = consumer.consumer
    try:
        highwater = kafka.highwater(tp)
        if highwater is None:
            return None
        position = await asyncio.wait_for(kafka.position(tp), SCRAPE_TIMEOUT_SECONDS)
    except Exception:
        return None
    return max(int(highwater) - int(position), 0)
