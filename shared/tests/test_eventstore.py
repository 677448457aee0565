"""Event store on the real Postgres: append/read, optimistic concurrency, append-only table."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.errors import ConcurrencyConflict, NotFound
from shared.events.envelope import EventEnvelope, NewEvent
from shared.eventstore.store import ANY_VERSION, AppendContext, EventStore, Position

pytestmark = pytest.mark.integration

CTX = AppendContext(
    tenant_id="acme", actor="client:test", customer_id="cust-1", correlation_id=uuid.uuid4()
)


def events(n: int, kind: str = "ThingHappened") -> list[NewEvent]:
    return [NewEvent(event_type=kind, schema_version=1, payload={"i": i}) for i in range(n)]


def stream() -> str:
    return f"thing-{uuid.uuid4()}"


async def test_append_then_read_back_in_order(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store, sid = EventStore(scratch_schema), stream()
    async with sessions() as s, s.begin():
        written = await store.append(s, sid, 0, events(3), CTX)
    assert [e.stream_version for e in written] == [1, 2, 3]
    async with sessions() as s, s.begin():
        await store.append(s, sid, 3, events(2, "OtherThing"), CTX)
        read = await store.read_stream(s, sid, tenant_id="acme")
    assert [e.stream_version for e in read] == [1, 2, 3, 4, 5]
    assert [e.payload["i"] for e in read] == [0, 1, 2, 0, 1]
    assert read[0].correlation_id == CTX.correlation_id and read[0].actor == "client:test"
    assert read[0].customer_id == "cust-1" and read[0].recorded_at.tzinfo is not None
    async with sessions() as s:
        assert [
            e.stream_version
            for e in await store.read_stream(s, sid, tenant_id="acme", from_version=2, to_version=3)
        ] == [2, 3]
        assert await store.stream_version(s, sid, tenant_id="acme") == 5
        assert await store.stream_version(s, stream(), tenant_id="acme") == 0


async def test_wrong_expected_version_is_a_typed_conflict(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store, sid = EventStore(scratch_schema), stream()
    async with sessions() as s, s.begin():
        await store.append(s, sid, 0, events(1), CTX)
    for stale in (0, 2):
        async with sessions() as s, s.begin():
            with pytest.raises(ConcurrencyConflict) as info:
                await store.append(s, sid, stale, events(1), CTX)
    assert info.value.status_code == 409
    assert info.value.details["current_version"] == 1
    async with sessions() as s, s.begin():
        assert [
            e.stream_version for e in await store.append(s, sid, ANY_VERSION, events(1), CTX)
        ] == [2]


async def test_an_append_at_a_known_version_is_one_statement_and_a_refused_one_writes_nothing(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession], admin_engine: AsyncEngine
) -> None:
    store, sid = EventStore(scratch_schema), stream()
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(admin_engine.sync_engine, "before_cursor_execute", count)
    try:
        async with sessions() as s, s.begin():
            await store.append(s, sid, 0, events(2), CTX)
            assert len(statements) == 1
            with pytest.raises(ConcurrencyConflict, match="is at version 2, expected 1"):
                await store.append(s, sid, 1, events(1), CTX)  # the check, then the head says why
            assert len(statements) == 3
            # Refused without an error in the database: the transaction goes on.
            await store.append(s, sid, 2, events(1), CTX)
    finally:
        event.remove(admin_engine.sync_engine, "before_cursor_execute", count)
    async with sessions() as s:
        assert [e.stream_version for e in await store.read_stream(s, sid, tenant_id="acme")] == [
            1,
            2,
            3,
        ]


async def test_concurrent_writers_on_one_version_exactly_one_wins(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store, sid = EventStore(scratch_schema), stream()
    async with sessions() as s, s.begin():
        await store.append(s, sid, 0, events(1), CTX)

    async def writer() -> str:
        try:
            async with sessions() as s, s.begin():
                await store.append(s, sid, 1, events(1), CTX)
                await asyncio.sleep(0.05)  # keep the race window open
            return "won"
        except ConcurrencyConflict:
            return "conflict"

    outcomes = await asyncio.gather(*(writer() for _ in range(8)))
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    async with sessions() as s:
        assert len(await store.read_stream(s, sid, tenant_id="acme")) == 2


async def test_events_table_refuses_update_delete_and_truncate(
    scratch_schema: str, admin_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store, sid = EventStore(scratch_schema), stream()
    async with sessions() as s, s.begin():
        await store.append(s, sid, 0, events(1), CTX)
    for sql in (
        f"UPDATE {scratch_schema}.events SET payload = '{{}}'",
        f"DELETE FROM {scratch_schema}.events",
        f"TRUNCATE {scratch_schema}.events",
    ):
        # even the superuser is refused: the guard is in the database, not in our code
        async with admin_engine.connect() as conn:
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text(sql))
    async with sessions() as s:
        assert len(await store.read_stream(s, sid, tenant_id="acme")) == 1


async def test_streams_are_scoped_to_their_tenant(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store, sid = EventStore(scratch_schema), stream()
    async with sessions() as s, s.begin():
        await store.append(s, sid, 0, events(2), CTX)
    other = AppendContext(tenant_id="globex", actor="client:x")
    async with sessions() as s:
        assert await store.read_stream(s, sid, tenant_id="globex") == []
        assert await store.stream_version(s, sid, tenant_id="globex") == 0
        assert [e for _, e in await store.read_all(s, Position.start(), tenant_id="globex")] == []
    async with sessions() as s, s.begin():
        with pytest.raises(NotFound):
            await store.append(s, sid, 2, events(1), other)


async def test_read_all_returns_positions_in_order_and_resumes(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store = EventStore(scratch_schema)
    for _ in range(5):
        async with sessions() as s, s.begin():
            await store.append(s, stream(), 0, events(2), CTX)
    async with sessions() as s:
        first = await store.read_all(s, Position.start(), limit=4)
        rest = await store.read_all(s, first[-1][0], limit=100)
    positions = [p for p, _ in first + rest]
    assert len(positions) == 10 and positions == sorted(positions)
    assert len({p.global_position for p in positions}) == 10


async def test_read_all_orders_transaction_ids_as_numbers_across_a_digit_boundary(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Regression: ordering by the text form put xid 10 before 9, so a reader resuming after a
    batch of the 'smaller' texts skipped every event whose xid had fewer digits."""
    async with sessions() as s, s.begin():
        for xid in (9, 10, 99, 100):  # writers' ids as a long-running cluster reaches them
            await s.execute(
                text(
                    f"""INSERT INTO {scratch_schema}.events (transaction_id, event_id, stream_id,
                            stream_version, event_type, schema_version, tenant_id, occurred_at,
                            correlation_id, actor, payload)
                        VALUES (CAST(CAST(:xid AS text) AS xid8), gen_random_uuid(), :stream, 1, 'X', 1,
                            'acme', now(), gen_random_uuid(), 'system:test', '{{}}')"""
                ),
                {"xid": str(xid), "stream": stream()},
            )
    store = EventStore(scratch_schema)
    seen: list[int] = []
    after = Position.start()
    async with sessions() as s:
        while batch := await store.read_all(s, after, limit=1):
            after = batch[-1][0]
            seen.append(after.transaction_id)
    assert seen == [9, 10, 99, 100]


async def test_read_all_stops_below_a_transaction_still_open(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The heart of 'never skip a late commit': rows behind an open writer are not handed out yet."""
    store = EventStore(scratch_schema)
    held = sessions()
    await held.begin()
    await store.append(held, stream(), 0, events(1, "Early"), CTX)  # older xid, not committed
    async with sessions() as s, s.begin():
        await store.append(s, stream(), 0, events(1, "Later"), CTX)  # younger xid, committed
    async with sessions() as s:
        assert await store.read_all(s, Position.start()) == []
    await held.commit()
    await held.close()
    async with sessions() as s:
        types = [e.event_type for _, e in await store.read_all(s, Position.start())]
    assert types == ["Early", "Later"]


async def test_append_refuses_to_build_on_a_younger_transactions_event(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A writer whose xid predates the previous version's writer would be published out of order."""
    store, sid = EventStore(scratch_schema), stream()
    old = sessions()
    await old.begin()
    await old.execute(text("SELECT pg_current_xact_id()"))  # takes its transaction id now
    async with sessions() as s, s.begin():
        await store.append(s, sid, 0, events(1), CTX)  # younger transaction writes version 1
    with pytest.raises(ConcurrencyConflict, match="younger"):
        await store.append(old, sid, 1, events(1), CTX)
    await old.rollback()
    await old.close()


async def test_the_outbox_value_is_the_envelope_read_all_gives(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The relay publishes JSON Postgres builds: it must decode to the very envelope the store
    holds, whatever the payload carries (nesting, unicode, big and decimal numbers, nulls) and
    with or without a customer, causation and traceparent."""
    store = EventStore(scratch_schema)
    payload = {
        "name": 'Müller & Söhne "GmbH" \\ 東京',
        "total": {"amount": 9_007_199_254_740_993, "currency": "EUR"},
        "rate": "0.0825",
        "ratio": 0.1,
        "lines": [{"quantity": "1.5", "note": None}, {"empty": {}}],
        "flag": True,
    }
    bare = AppendContext(tenant_id="acme", actor="system:test")
    traced = AppendContext(
        tenant_id="acme",
        actor="user:u-1",
        customer_id="cust-9",
        causation_id=uuid.uuid4(),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    async with sessions() as s, s.begin():
        await store.append(
            s, stream(), 0, [NewEvent(event_type="A", schema_version=2, payload=payload)], bare
        )
        await store.append(s, stream(), 0, events(2), traced)
    async with sessions() as s:
        envelopes = await store.read_all(s, Position.start())
        records = await store.read_outbox(s, Position.start())
    assert [r.position for r in records] == [p for p, _ in envelopes]
    for record, (_, envelope) in zip(records, envelopes, strict=True):
        on_the_wire = EventEnvelope.model_validate_json(record.value)
        assert on_the_wire == envelope.model_copy(update={"global_position": None})
        assert (
            on_the_wire.model_dump()
            == EventEnvelope.from_json_bytes(envelope.to_json_bytes()).model_dump()
        )
        assert (record.event_id, record.event_type, record.tenant_id) == (
            str(envelope.event_id),
            envelope.event_type,
            envelope.tenant_id,
        )
        assert record.partition_key == envelope.partition_key
        assert record.aggregate == envelope.aggregate
        assert record.correlation_id == str(envelope.correlation_id)
    assert EventEnvelope.model_validate_json(records[0].value).payload == payload
