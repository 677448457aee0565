"""A hash chain over a service's event store, so tampering and gaps can be proven.

The sealer walks the events in relay order (commit-safe: `EventStore.read_all` never passes a
transaction that may still commit) and appends one `event_chain` link per event: its sequence
number, its position, the previous link's hash and `sha256(previous hash || canonical event)`.
Sealing after commit, instead of at append time, keeps appends to different streams concurrent:
a chain written inside the appending transaction would serialise every write of the service.

`verify_chain` recomputes every link from the events as they are now. An edited event no longer
matches its hash; a deleted event leaves a link without its event; an event slipped in below the
sealed head has no link; an edited or deleted link breaks the sequence or the `prev_hash` of the
next one. Someone able to rewrite both tables could recompute the whole chain, so operators keep
the head hash `verify` prints somewhere else and pass it back with `expected` (an anchor).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import checked_schema
from shared.events.envelope import EventEnvelope
from shared.eventstore.store import (
    EVENT_COLUMNS,
    EventStore,
    Position,
    TransactionIdsBehind,
    row_to_envelope,
)
from shared.pause import pause

log = logging.getLogger(__name__)

GENESIS = bytes(32)
"""The `prev_hash` of the first link."""


def canonical_event(envelope: EventEnvelope) -> bytes:
    """The bytes a link hashes: every recorded field of the event, in one fixed JSON form.

    Field order, separators and timestamp form are fixed here, so anyone holding a JSON-lines
    replay can recompute the chain without Postgres.
    """
    fields: dict[str, Any] = {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "schema_version": envelope.schema_version,
        "stream_id": envelope.stream_id,
        "stream_version": envelope.stream_version,
        "occurred_at": _instant(envelope.occurred_at),
        "recorded_at": _instant(envelope.recorded_at),
        "tenant_id": envelope.tenant_id,
        "customer_id": envelope.customer_id,
        "correlation_id": _opt(envelope.correlation_id),
        "causation_id": _opt(envelope.causation_id),
        "actor": envelope.actor,
        "traceparent": envelope.traceparent,
        "payload": envelope.payload,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_hash(prev_hash: bytes, envelope: EventEnvelope) -> bytes:
    return hashlib.sha256(prev_hash + canonical_event(envelope)).digest()


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _opt(value: object | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Head:
    """The last link: how far the chain reaches and what it commits to."""

    seq: int
    position: Position
    hash: bytes

    @property
    def anchor(self) -> str:
        """`<seq>:<hex hash>`, the form `ar audit verify --expect` takes back."""
        return f"{self.seq}:{self.hash.hex()}"


async def chain_head(conn: AsyncConnection, schema: str) -> Head | None:
    row = (
        await conn.execute(
            text(
                f"""SELECT seq, transaction_id::text AS xid, global_position, hash
                    FROM {checked_schema(schema)}.event_chain ORDER BY seq DESC LIMIT 1"""
            )
        )
    ).first()
    if row is None:
        return None
    return Head(row.seq, Position(int(row.xid), row.global_position), bytes(row.hash))


async def unsealed(conn: AsyncConnection, schema: str) -> int:
    """Committed events not yet linked (for /metrics: a sealer that stopped shows here)."""
    s = checked_schema(schema)
    head = await chain_head(conn, s)
    after = head.position if head else Position.start()
    n = await conn.scalar(
        text(
            f"""SELECT count(*) FROM {s}.events
                WHERE (transaction_id, global_position) >
                      (CAST(CAST(:xid AS text) AS xid8), CAST(:pos AS bigint))"""
        ),
        {"xid": str(after.transaction_id), "pos": after.global_position},
    )
    return int(n or 0)


async def seal_now(engine: AsyncEngine, schema: str) -> int | None:
    """Seal everything committed, as the leader; None when a running sealer holds leadership
    (it is sealing already)."""
    s = checked_schema(schema)
    conn = await engine.connect()
    try:
        await EventStore(s).check_transaction_ids(conn)
        if not await _try_lead(conn, s):
            return None
        total = 0
        while n := await seal_batch(conn, s):
            total += n
        return total
    finally:
        await conn.invalidate()  # drops the session and its advisory lock
        await conn.close()


async def seal_batch(conn: AsyncConnection, schema: str, limit: int = 1000) -> int:
    """Link the next events after the chain's head, in one transaction; returns how many.

    Callers serialise sealers (the advisory lock in ChainSealer); if two ever raced, the second
    insert of the same `seq` fails on the primary key instead of forking the chain.
    """
    s = checked_schema(schema)
    head = await chain_head(conn, s)
    after = head.position if head else Position.start()
    batch = await EventStore(s).read_all(conn, after, limit=limit)
    if not batch:
        await conn.commit()
        return 0
    seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
    rows: dict[str, list[Any]] = {k: [] for k in ("seq", "ids", "xids", "pos", "prev", "hash")}
    for position, envelope in batch:
        seq += 1
        digest = link_hash(prev, envelope)
        rows["seq"].append(seq)
        rows["ids"].append(envelope.event_id)
        rows["xids"].append(str(position.transaction_id))
        rows["pos"].append(position.global_position)
        rows["prev"].append(prev)
        rows["hash"].append(digest)
        prev = digest
    await conn.execute(
        text(
            f"""INSERT INTO {s}.event_chain
                    (seq, event_id, transaction_id, global_position, prev_hash, hash)
                SELECT seq, event_id, CAST(xid AS xid8), pos, prev, hash FROM unnest(
                    CAST(:seq AS bigint[]), CAST(:ids AS uuid[]), CAST(:xids AS text[]),
                    CAST(:pos AS bigint[]), CAST(:prev AS bytea[]), CAST(:hash AS bytea[]))
                    AS t(seq, event_id, xid, pos, prev, hash)"""
        ),
        rows,
    )
    await conn.commit()
    return len(batch)


async def _try_lead(conn: AsyncConnection, schema: str) -> bool:
    """The session-level lock that makes one sealer per schema the leader."""
    key = zlib.crc32(f"ledgerline-chain:{schema}".encode())
    got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar_one()
    await conn.commit()
    return bool(got)


class ChainSealer:
    """Keeps a service's chain up to date; one leader per schema, like the outbox relay."""

    name = "chain sealer"

    def __init__(self, engine: AsyncEngine, schema: str, *, poll_interval: float = 0.5) -> None:
        self.engine = engine
        self.schema = checked_schema(schema)
        self.store = EventStore(self.schema)
        self.poll_interval = poll_interval
        self.sealed = 0
        self.refused: str | None = None  # why it will not seal until an operator acts
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = await self.engine.connect()
            except Exception:
                log.warning("chain sealer on %s: database unreachable; retrying", self.schema)
            else:
                try:
                    await self.store.check_transaction_ids(conn)
                    self.refused = None
                    if await _try_lead(conn, self.schema):
                        await self._seal_until_stopped(conn)
                except TransactionIdsBehind as exc:
                    self.refused = str(exc)
                    log.error("chain sealer will not seal: %s", exc)
                except Exception:
                    log.exception("chain sealer on %s failed; retrying", self.schema)
                finally:
                    # Invalidate, not just close: a pooled connection would keep its session
                    # and with it the advisory lock, and no standby could take over.
                    await conn.invalidate()
                    await conn.close()
            await pause(self._stopping, 1.0)

    async def _seal_until_stopped(self, conn: AsyncConnection) -> None:
        while not self._stopping.is_set():
            n = await seal_batch(conn, self.schema)
            self.sealed += n
            if n == 0:
                await pause(self._stopping, self.poll_interval)


@dataclass(frozen=True)
class Problem:
    """One break in the chain. `kind` is one of KINDS."""

    kind: str
    detail: str
    seq: int | None = None
    event_id: str | None = None


KINDS = {
    "link_missing": "a link of the chain is gone (its sequence number is skipped)",
    "link_altered": "a link's prev_hash is not the hash of the link before it",
    "event_deleted": "a sealed event is no longer in the event store",
    "event_altered": "a sealed event's content no longer matches its hash",
    "event_moved": "a sealed event's position in the store changed",
    "event_inserted": "an event below the sealed head has no link (slipped in afterwards)",
    "anchor_mismatch": "the chain at an anchor's sequence number has another hash",
    "anchor_beyond_head": "an anchor names a link the chain does not have",
    "unsealed_too_long": "events older than the allowed age are still unsealed",
}


@dataclass
class ChainReport:
    schema: str
    links: int = 0
    head: Head | None = None
    unsealed: int = 0
    oldest_unsealed: datetime | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


async def verify_chain(
    conn: AsyncConnection,
    schema: str,
    *,
    anchors: dict[int, bytes] | None = None,
    max_unsealed_age_seconds: float | None = None,
    chunk: int = 2000,
) -> ChainReport:
    """Walk the whole chain and recompute every link from the events as they are now."""
    s = checked_schema(schema)
    report = ChainReport(schema=s)
    anchors = dict(anchors or {})
    expected_seq, prev = 1, GENESIS
    last_link: Any = None
    async for link, event in _links_with_events(conn, s, chunk):
        report.links += 1
        last_link = link
        seq = link.seq
        if seq != expected_seq:
            report.problems.append(
                Problem("link_missing", f"links {expected_seq}..{seq - 1} are missing", seq)
            )
        if bytes(link.prev_hash) != prev:
            report.problems.append(
                Problem("link_altered", "prev_hash does not match", seq, str(link.event_id))
            )
        stored = bytes(link.hash)
        if event is None:
            report.problems.append(
                Problem("event_deleted", "no such event", seq, str(link.event_id))
            )
        else:
            if (event.global_position, event.transaction_id) != (
                link.global_position,
                link.xid,
            ):
                report.problems.append(
                    Problem("event_moved", "position differs", seq, str(link.event_id))
                )
            if link_hash(bytes(link.prev_hash), event.envelope) != stored:
                report.problems.append(
                    Problem(
                        "event_altered",
                        f"{event.envelope.event_type} in {event.envelope.stream_id}",
                        seq,
                        str(link.event_id),
                    )
                )
        if seq in anchors and anchors.pop(seq) != stored:
            report.problems.append(Problem("anchor_mismatch", f"at link {seq}", seq))
        expected_seq, prev = seq + 1, stored
    for seq in sorted(anchors):
        report.problems.append(Problem("anchor_beyond_head", f"link {seq} not in chain", seq))
    if last_link is not None:
        report.head = Head(
            last_link.seq,
            Position(int(last_link.xid), last_link.global_position),
            bytes(last_link.hash),
        )
    await _check_unsealed(conn, report, max_unsealed_age_seconds)
    return report


@dataclass(frozen=True)
class _StoredEvent:
    envelope: EventEnvelope
    transaction_id: str
    global_position: int


async def _links_with_events(
    conn: AsyncConnection, schema: str, chunk: int
) -> AsyncIterator[tuple[Any, _StoredEvent | None]]:
    after = 0
    while True:
        links = (
            await conn.execute(
                text(
                    f"""SELECT seq, event_id, transaction_id::text AS xid, global_position,
                               prev_hash, hash
                        FROM {schema}.event_chain WHERE seq > :after ORDER BY seq LIMIT :n"""
                ),
                {"after": after, "n": chunk},
            )
        ).all()
        if not links:
            return
        rows = await conn.execute(
            text(f"SELECT {EVENT_COLUMNS} FROM {schema}.events WHERE event_id = ANY(:ids)"),
            {"ids": [link.event_id for link in links]},
        )
        events = {
            r.event_id: _StoredEvent(row_to_envelope(r), r.xid, r.global_position) for r in rows
        }
        for link in links:
            yield link, events.get(link.event_id)
        after = links[-1].seq


async def _check_unsealed(
    conn: AsyncConnection, report: ChainReport, max_age_seconds: float | None
) -> None:
    s = report.schema
    head = report.head.position if report.head else Position.start()
    params = {"xid": str(head.transaction_id), "pos": head.global_position}
    below = """(e.transaction_id, e.global_position) <=
               (CAST(CAST(:xid AS text) AS xid8), CAST(:pos AS bigint))"""
    inserted = await conn.execute(
        text(
            f"""SELECT e.event_id, e.event_type, e.stream_id FROM {s}.events e
                WHERE {below}
                  AND NOT EXISTS (SELECT 1 FROM {s}.event_chain c WHERE c.event_id = e.event_id)
                ORDER BY e.transaction_id, e.global_position LIMIT 1000"""
        ),
        params,
    )
    for row in inserted:
        report.problems.append(
            Problem(
                "event_inserted", f"{row.event_type} in {row.stream_id}", None, str(row.event_id)
            )
        )
    tail = (
        await conn.execute(
            text(
                f"""SELECT count(*) AS n, min(e.recorded_at) AS oldest FROM {s}.events e
                    WHERE NOT ({below})"""
            ),
            params,
        )
    ).one()
    report.unsealed, report.oldest_unsealed = int(tail.n), tail.oldest
    if max_age_seconds is not None and tail.oldest is not None:
        age = (datetime.now(UTC) - tail.oldest).total_seconds()
        if age > max_age_seconds:
            report.problems.append(
                Problem("unsealed_too_long", f"{tail.n} unsealed, oldest {age:.0f}s old")
            )
