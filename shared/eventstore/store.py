"""Append-only event store on Postgres with optimistic concurrency.

Appends run inside the caller's session/transaction, so a command's state changes and its events
commit together or not at all: there is no second write to forget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.db import checked_schema, json_column
from shared.errors import ConcurrencyConflict, NotFound
from shared.events.envelope import EventEnvelope, NewEvent, aggregate_of, partition_key_of
from shared.logs import correlation_id_var
from shared.metrics import EVENTS_APPENDED

T = TypeVar("T")

ANY_VERSION = -1
"""expected_version meaning 'append whatever the stream's version is' (no concurrency check)."""

EVENTS_WRITTEN = "ledgerline.events_written"
"""Set in a session's `info` by `append`: the commit that follows has events for the relay."""


@dataclass(frozen=True, order=True)
class Position:
    """A place in the relay order: (writer's transaction id, global position)."""

    transaction_id: int
    global_position: int

    @classmethod
    def start(cls) -> Position:
        return cls(0, 0)


@dataclass(frozen=True)
class AppendContext:
    """Envelope fields that come from the request, not from the domain decision."""

    tenant_id: str
    actor: str
    customer_id: str | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    traceparent: str | None = None

    def __post_init__(self) -> None:
        # Every event names the request that caused it: the HTTP request's correlation id when
        # there is one, else (a scheduled job, a sweeper) a new id for this unit of work.
        if self.correlation_id is None:
            current = correlation_id_var.get()
            object.__setattr__(
                self, "correlation_id", uuid.UUID(current) if current else uuid.uuid4()
            )

    def for_customer(self, customer_id: str) -> AppendContext:
        """The same request's context, for events of one customer's stream (the Kafka key)."""
        return dataclasses.replace(self, customer_id=customer_id)


# The text form of the transaction id must not be named `transaction_id`: ORDER BY picks an output
# column before a table column of the same name, and text order puts xid 100064 before 81744.
EVENT_COLUMNS = """global_position, transaction_id::text AS xid, event_id, stream_id,
    stream_version, event_type, schema_version, tenant_id, customer_id, occurred_at, recorded_at,
    correlation_id, causation_id, actor, traceparent, payload"""


# The envelope as it travels on Kafka (`EventEnvelope.to_json_bytes`'s fields), built by Postgres:
# the relay then neither decodes the payload nor validates and re-encodes the envelope, which was
# most of its CPU per event. Validated once already: `append` reads back what it wrote.
_WIRE_JSON = """convert_to(json_build_object(
        'event_id', event_id, 'event_type', event_type, 'schema_version', schema_version,
        'stream_id', stream_id, 'stream_version', stream_version, 'occurred_at', occurred_at,
        'recorded_at', recorded_at, 'tenant_id', tenant_id, 'customer_id', customer_id,
        'correlation_id', correlation_id, 'causation_id', causation_id, 'actor', actor,
        'traceparent', traceparent, 'payload', payload)::text, 'UTF8')"""
_OUTBOX_COLUMNS = f"""global_position, transaction_id::text AS xid, event_id::text AS event_id,
    event_type, schema_version, stream_id, tenant_id, customer_id,
    correlation_id::text AS correlation_id, traceparent, {_WIRE_JSON} AS value"""


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """An event as the relay publishes it: its Kafka value, and what the key, headers and topic
    are made of."""

    position: Position
    event_id: str
    event_type: str
    schema_version: int
    stream_id: str
    tenant_id: str
    customer_id: str | None
    correlation_id: str | None
    traceparent: str | None
    value: bytes

    @property
    def aggregate(self) -> str:
        return aggregate_of(self.stream_id)

    @property
    def partition_key(self) -> str:
        return partition_key_of(self.customer_id, self.stream_id)


def row_to_envelope(row: Any) -> EventEnvelope:
    payload = json_column(row.payload)
    return EventEnvelope(
        event_id=row.event_id,
        event_type=row.event_type,
        schema_version=row.schema_version,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        tenant_id=row.tenant_id,
        customer_id=row.customer_id,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
        actor=row.actor,
        traceparent=row.traceparent,
        payload=payload,
        global_position=row.global_position,
    )


class TransactionIdsBehind(RuntimeError):
    """The cluster's transaction ids are behind those stored with the events.

    A logical restore (pg_dump, then pg_restore into another cluster) copies the events with
    their writers' transaction ids, but the new cluster counts from its own, lower start. Every
    new event then sorts below the relay's and the sealer's checkpoints in relay order and would
    never be published or sealed, and an append to a restored stream looks like a concurrent
    writer's (its head was "written after us") and is refused. Physical backups keep the
    counter and are not affected.
    """

    def __init__(self, schema: str, stored: int, next_id: int) -> None:
        epoch = (stored >> 32) + 1
        super().__init__(
            f"{schema}: stored events carry transaction ids up to {stored}, but this cluster's "
            f"next one is {next_id} (restored from a logical dump?). New events would sort "
            f"below them and never be published or sealed. Stop the server, run "
            f"`pg_resetwal -e {epoch} <data directory>` as its OS user, and start it again "
            f"(docs/operations.md, 'Restoring a logical dump')."
        )
        self.schema = schema
        self.stored = stored
        self.next_id = next_id
        self.epoch = epoch


class EventStore:
    """The events table of one service schema."""

    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)
        s = self.schema
        self._head_sql = text(
            f"""SELECT stream_version, tenant_id,
                       transaction_id > pg_current_xact_id() AS written_after_us
                FROM {s}.events WHERE stream_id = :stream_id
                ORDER BY stream_version DESC LIMIT 1"""
        )
        insert = f"""INSERT INTO {s}.events (event_id, stream_id, stream_version, event_type,
                    schema_version, tenant_id, customer_id, occurred_at, correlation_id,
                    causation_id, actor, traceparent, payload)
                SELECT * FROM unnest(
                    CAST(:event_ids AS uuid[]), CAST(:stream_ids AS text[]),
                    CAST(:versions AS int[]), CAST(:types AS text[]), CAST(:schema_versions AS int[]),
                    CAST(:tenants AS text[]), CAST(:customers AS text[]),
                    CAST(:occurred AS timestamptz[]), CAST(:correlations AS uuid[]),
                    CAST(:causations AS uuid[]), CAST(:actors AS text[]),
                    CAST(:traceparents AS text[]), CAST(:payloads AS jsonb[]))"""
        self._insert_sql = text(f"{insert} RETURNING {EVENT_COLUMNS}")
        # The head's checks inside the insert: one round trip where an append at a known version
        # took two. No row inserted means a check failed; the head query then says which.
        self._guarded_insert_sql = text(
            f"""{insert}
                WHERE (SELECT COALESCE(bool_and(head.stream_version = :expected_version
                                                AND head.tenant_id = :tenant_id
                                                AND NOT head.written_after_us),
                                       :expected_version = 0)
                       FROM ({self._head_sql.text}) AS head)
                RETURNING {EVENT_COLUMNS}"""
        )

    async def append(
        self,
        session: AsyncSession | AsyncConnection,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        context: AppendContext,
    ) -> list[EventEnvelope]:
        """Append `events` after `expected_version` (0 for a new stream, ANY_VERSION to skip the check).

        Raises ConcurrencyConflict when the stream moved on, including when a concurrent writer
        wins the race on the primary key; the transaction is then aborted and must be retried
        from the read (that is what the unit of work does).
        """
        if not events:
            return []
        params: dict[str, Any]
        if expected_version == ANY_VERSION:
            current = await self._checked_head(session, stream_id, expected_version, context)
            statement, params = self._insert_sql, _columns(stream_id, current, events, context)
        else:
            statement = self._guarded_insert_sql
            params = {
                **_columns(stream_id, expected_version, events, context),
                "stream_id": stream_id,
                "expected_version": expected_version,
                "tenant_id": context.tenant_id,
            }
        try:
            rows = (await session.execute(statement, params)).all()
        except IntegrityError as exc:
            if "events_pkey" in str(exc.orig):
                raise ConcurrencyConflict(
                    f"stream {stream_id} was appended to concurrently",
                    {"stream_id": stream_id, "expected_version": expected_version},
                ) from None
            raise
        if not rows:
            await self._checked_head(session, stream_id, expected_version, context)
            raise ConcurrencyConflict(  # the head moved between the two statements
                f"stream {stream_id} moved on; retry", {"stream_id": stream_id}
            )
        EVENTS_APPENDED.labels(schema=self.schema).inc(len(rows))
        if isinstance(session, AsyncSession):
            session.info[EVENTS_WRITTEN] = True
        return sorted((row_to_envelope(r) for r in rows), key=lambda e: e.stream_version)

    async def _checked_head(
        self,
        session: AsyncSession | AsyncConnection,
        stream_id: str,
        expected_version: int,
        context: AppendContext,
    ) -> int:
        """The stream's version, once it is the caller's tenant's, at `expected_version` (unless
        ANY_VERSION) and not written by a younger transaction."""
        head = (await session.execute(self._head_sql, {"stream_id": stream_id})).first()
        current: int = head.stream_version if head else 0
        if head is not None and head.tenant_id != context.tenant_id:
            raise NotFound(f"stream {stream_id} not found", {"stream_id": stream_id})
        if expected_version != ANY_VERSION and current != expected_version:
            raise ConcurrencyConflict(
                f"stream {stream_id} is at version {current}, expected {expected_version}",
                {
                    "stream_id": stream_id,
                    "current_version": current,
                    "expected_version": expected_version,
                },
            )
        if head is not None and head.written_after_us:
            # Our transaction id predates the writer of the version we build on: the relay orders
            # by transaction id, so appending would publish this stream out of order. Retry.
            raise ConcurrencyConflict(
                f"stream {stream_id} was written by a younger transaction; retry",
                {"stream_id": stream_id, "current_version": current},
            )
        return current

    async def read_stream(
        self,
        session: AsyncSession | AsyncConnection,
        stream_id: str,
        *,
        tenant_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[EventEnvelope]:
        """A stream's events in version order, only if they belong to the caller's tenant."""
        rows = await session.execute(
            text(
                f"""SELECT {EVENT_COLUMNS} FROM {self.schema}.events
                    WHERE stream_id = :stream_id AND tenant_id = :tenant_id
                      AND stream_version >= :from_version
                      AND (CAST(:to_version AS int) IS NULL OR stream_version <= :to_version)
                    ORDER BY stream_version"""
            ),
            {
                "stream_id": stream_id,
                "tenant_id": tenant_id,
                "from_version": from_version,
                "to_version": to_version,
            },
        )
        return [row_to_envelope(r) for r in rows]

    async def stream_version(
        self, session: AsyncSession | AsyncConnection, stream_id: str, *, tenant_id: str
    ) -> int:
        """The stream's current version (0 if empty): what to append after, without reading
        every event (a statement or policy stream is appended to one event at a time)."""
        version = await session.scalar(
            text(
                f"""SELECT COALESCE(max(stream_version), 0) FROM {self.schema}.events
                    WHERE stream_id = :stream_id AND tenant_id = :tenant_id"""
            ),
            {"stream_id": stream_id, "tenant_id": tenant_id},
        )
        return int(version or 0)

    async def check_transaction_ids(self, session: AsyncSession | AsyncConnection) -> None:
        """Raise TransactionIdsBehind when a stored event's transaction id is one this cluster
        has not handed out yet; readers in relay order check before they start."""
        row = (
            await session.execute(
                text(
                    f"""SELECT max(transaction_id)::text AS stored,
                               pg_snapshot_xmax(pg_current_snapshot())::text AS next_id
                        FROM {self.schema}.events"""
                )
            )
        ).one()
        if row.stored is not None and int(row.stored) >= int(row.next_id):
            raise TransactionIdsBehind(self.schema, int(row.stored), int(row.next_id))

    async def read_all(
        self,
        session: AsyncSession | AsyncConnection,
        after: Position,
        *,
        limit: int = 1000,
        tenant_id: str | None = None,
    ) -> list[tuple[Position, EventEnvelope]]:
        """Events after `after` in relay order, never past a transaction that may still commit.

        Only rows written by transactions older than the oldest one still running are returned:
        those can no longer be joined by a row that sorts before them, so a reader that resumes
        from the last returned position never skips an event whose transaction committed late.
        """
        rows = await self._after(session, EVENT_COLUMNS, after, limit, tenant_id)
        return [(Position(int(r.xid), r.global_position), row_to_envelope(r)) for r in rows]

    async def read_outbox(
        self, session: AsyncSession | AsyncConnection, after: Position, *, limit: int = 1000
    ) -> list[OutboxRecord]:
        """`read_all`'s events, ready to publish (the same order and the same horizon)."""
        rows = await self._after(session, _OUTBOX_COLUMNS, after, limit, None)
        return [
            OutboxRecord(
                Position(int(r.xid), r.global_position),
                r.event_id,
                r.event_type,
                r.schema_version,
                r.stream_id,
                r.tenant_id,
                r.customer_id,
                r.correlation_id,
                r.traceparent,
                r.value,
            )
            for r in rows
        ]

    async def _after(
        self,
        session: AsyncSession | AsyncConnection,
        columns: str,
        after: Position,
        limit: int,
        tenant_id: str | None,
    ) -> Any:
        """The query behind `read_all` and `read_outbox`: `columns` of the rows after `after`."""
        return await session.execute(
            text(
                f"""SELECT {columns} FROM {self.schema}.events
                    WHERE (transaction_id, global_position) >
                          (CAST(CAST(:xid AS text) AS xid8), :pos)
                      AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                      AND (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id)
                    ORDER BY transaction_id, global_position
                    LIMIT :limit"""
            ),
            {
                "xid": str(after.transaction_id),
                "pos": after.global_position,
                "limit": limit,
                "tenant_id": tenant_id,
            },
        )


def _columns(
    stream_id: str, current: int, events: Sequence[NewEvent], ctx: AppendContext
) -> dict[str, list[Any]]:
    n = len(events)
    return {
        "event_ids": [e.event_id for e in events],
        "stream_ids": [stream_id] * n,
        "versions": list(range(current + 1, current + 1 + n)),
        "types": [e.event_type for e in events],
        "schema_versions": [e.schema_version for e in events],
        "tenants": [ctx.tenant_id] * n,
        "customers": [ctx.customer_id] * n,
        "occurred": [e.occurred_at for e in events],
        "correlations": [ctx.correlation_id] * n,
        "causations": [ctx.causation_id] * n,
        "actors": [ctx.actor] * n,
        "traceparents": [ctx.traceparent] * n,
        "payloads": [json.dumps(e.payload, separators=(",", ":")) for e in events],
    }


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], tries: int = 25) -> T:
    """Re-run a whole transaction that lost an optimistic-concurrency race.

    Each round of a race has one winner, so with N concurrent writers a loser may need N rounds;
    a short, growing, jittered pause keeps the racers from colliding in lockstep.
    """
    for n in range(1, tries + 1):
        try:
            return await attempt()
        except ConcurrencyConflict:
            if n == tries:
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * min(n, 10)))
    raise AssertionError("unreachable")
