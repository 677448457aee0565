"""The event hash chain: sealed in commit-safe order, and every kind of tampering is found."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.audit.chain import (
    GENESIS,
    ChainReport,
    ChainSealer,
    canonical_event,
    link_hash,
    seal_batch,
    verify_chain,
)
from shared.events.envelope import EventEnvelope, NewEvent
from shared.eventstore.store import AppendContext, EventStore

pytestmark = pytest.mark.integration

CTX = AppendContext(tenant_id="acme", actor="user:alice", customer_id="c-1")


def new_events(n: int) -> list[NewEvent]:
    return [
        NewEvent(event_type="ThingHappened", schema_version=1, payload={"n": i, "amount": 100 * i})
        for i in range(n)
    ]


async def append(sessions: async_sessionmaker[AsyncSession], schema: str, n: int) -> None:
    async with sessions() as s, s.begin():
        await EventStore(schema).append(s, f"thing-{uuid.uuid4()}", 0, new_events(n), CTX)


async def seal_all(engine: AsyncEngine, schema: str) -> int:
    total = 0
    async with engine.connect() as conn:
        while n := await seal_batch(conn, schema, limit=7):
            total += n
    return total


async def verify(engine: AsyncEngine, schema: str, **kwargs: object) -> ChainReport:
    async with engine.connect() as conn:
        return await verify_chain(conn, schema, chunk=5, **kwargs)  # type: ignore[arg-type]


async def nth_event(engine: AsyncEngine, schema: str, seq: int) -> str:
    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(
                    text(f"SELECT event_id FROM {schema}.event_chain WHERE seq = :s"), {"s": seq}
                )
            ).scalar_one()
        )


async def as_superuser(engine: AsyncEngine, *statements: str) -> None:
    """Tamper the way only someone with database superuser rights can: triggers bypassed."""
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            await conn.execute(text(statement))


def test_the_hash_covers_every_recorded_field_in_one_fixed_form() -> None:
    base = EventEnvelope.model_validate_json(
        '{"event_id":"6f1c1b0e-3b7c-4c43-9d7e-2f4a5b6c7d8e","event_type":"ThingHappened",'
        '"schema_version":1,"stream_id":"thing-1","stream_version":1,'
        '"occurred_at":"2026-03-01T10:00:00+01:00","recorded_at":"2026-03-01T09:00:00.5Z",'
        '"tenant_id":"acme","customer_id":"c-1","actor":"user:alice",'
        '"payload":{"b":1,"a":{"y":2,"x":"é"}}}'
    )
    assert canonical_event(base) == (
        b'{"actor":"user:alice","causation_id":null,"correlation_id":null,'
        b'"customer_id":"c-1","event_id":"6f1c1b0e-3b7c-4c43-9d7e-2f4a5b6c7d8e",'
        b'"event_type":"ThingHappened","occurred_at":"2026-03-01T09:00:00.000000+00:00",'
        b'"payload":{"a":{"x":"\xc3\xa9","y":2},"b":1},'
        b'"recorded_at":"2026-03-01T09:00:00.500000+00:00","schema_version":1,'
        b'"stream_id":"thing-1","stream_version":1,"tenant_id":"acme","traceparent":null}'
    )
    reordered = base.model_copy(update={"payload": {"a": {"x": "é", "y": 2}, "b": 1}})
    assert link_hash(GENESIS, reordered) == link_hash(GENESIS, base)
    for change in (
        {"payload": {"b": 2, "a": {"y": 2, "x": "é"}}},
        {"actor": "user:mallory"},
        {"stream_version": 2},
        {"correlation_id": uuid.uuid4()},
    ):
        assert link_hash(GENESIS, base.model_copy(update=change)) != link_hash(GENESIS, base)
    assert link_hash(bytes([1]) * 32, base) != link_hash(GENESIS, base)


async def test_an_untouched_store_verifies_and_anchors_hold(
    scratch_schema: str, admin_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for n in (3, 5, 4):
        await append(sessions, scratch_schema, n)
    assert await seal_all(admin_engine, scratch_schema) == 12
    report = await verify(admin_engine, scratch_schema)
    assert report.intact, report.problems
    assert (report.links, report.unsealed) == (12, 0)
    assert report.head is not None and report.head.seq == 12

    await append(sessions, scratch_schema, 2)  # not sealed yet: reported, not a break
    later = await verify(admin_engine, scratch_schema, anchors={12: report.head.hash})
    assert later.intact and later.unsealed == 2
    stale = await verify(admin_engine, scratch_schema, max_unsealed_age_seconds=0)
    assert [p.kind for p in stale.problems] == ["unsealed_too_long"]


Tamper = Callable[[AsyncEngine, str], Awaitable[None]]


async def _edit_payload(engine: AsyncEngine, s: str) -> None:
    event = await nth_event(engine, s, 5)
    await as_superuser(
        engine,
        f"""UPDATE {s}.events SET payload = jsonb_set(payload, '{{amount}}', '1')
            WHERE event_id = '{event}'""",
    )


async def _edit_actor(engine: AsyncEngine, s: str) -> None:
    event = await nth_event(engine, s, 5)
    await as_superuser(
        engine, f"UPDATE {s}.events SET actor = 'user:mallory' WHERE event_id = '{event}'"
    )


async def _delete_event(engine: AsyncEngine, s: str) -> None:
    event = await nth_event(engine, s, 5)
    await as_superuser(engine, f"DELETE FROM {s}.events WHERE event_id = '{event}'")


async def _slip_in_event(engine: AsyncEngine, s: str) -> None:
    await as_superuser(
        engine,
        f"""INSERT INTO {s}.events (transaction_id, event_id, stream_id, stream_version,
                event_type, schema_version, tenant_id, occurred_at, correlation_id, actor, payload)
            VALUES ('3'::xid8, gen_random_uuid(), 'thing-forged', 1, 'ThingHappened', 1, 'acme',
                now() - interval '1 year', gen_random_uuid(), 'user:alice', '{{"amount": 5}}')""",
    )


async def _drop_link(engine: AsyncEngine, s: str) -> None:
    await as_superuser(engine, f"DELETE FROM {s}.event_chain WHERE seq = 5")


async def _edit_link(engine: AsyncEngine, s: str) -> None:
    await as_superuser(
        engine, f"UPDATE {s}.event_chain SET hash = sha256('forged'::bytea) WHERE seq = 5"
    )


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_edit_payload, [("event_altered", 5)]),
        (_edit_actor, [("event_altered", 5)]),
        (_delete_event, [("event_deleted", 5)]),
        (_slip_in_event, [("event_inserted", None)]),
        # the link's event is now also an event without a link below the head
        (_drop_link, [("link_missing", 6), ("link_altered", 6), ("event_inserted", None)]),
        (_edit_link, [("event_altered", 5), ("link_altered", 6)]),
    ],
    ids=["edited payload", "edited actor", "deleted event", "forged event", "lost link", "link"],
)
async def test_tampering_is_found_where_it_happened(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tamper: Tamper,
    expected: list[tuple[str, int | None]],
) -> None:
    for n in (4, 4, 4):
        await append(sessions, scratch_schema, n)
    await seal_all(admin_engine, scratch_schema)
    await tamper(admin_engine, scratch_schema)
    report = await verify(admin_engine, scratch_schema)
    assert sorted((p.kind, p.seq) for p in report.problems) == sorted(expected)


async def test_a_recomputed_chain_is_caught_by_an_anchor_kept_elsewhere(
    scratch_schema: str, admin_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await append(sessions, scratch_schema, 6)
    await seal_all(admin_engine, scratch_schema)
    honest = await verify(admin_engine, scratch_schema)
    assert honest.head is not None
    # Someone with full access edits an event AND rebuilds every link from scratch.
    await _edit_payload(admin_engine, scratch_schema)
    await as_superuser(admin_engine, f"DELETE FROM {scratch_schema}.event_chain")
    await seal_all(admin_engine, scratch_schema)
    assert (await verify(admin_engine, scratch_schema)).intact  # self-consistent again...
    anchored = await verify(admin_engine, scratch_schema, anchors={6: honest.head.hash, 9: b"x"})
    assert sorted(p.kind for p in anchored.problems) == ["anchor_beyond_head", "anchor_mismatch"]


async def test_the_sealer_never_skips_an_event_whose_transaction_commits_late(
    scratch_schema: str, admin_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sealer = ChainSealer(admin_engine, scratch_schema, poll_interval=0.02)
    standby = ChainSealer(admin_engine, scratch_schema, poll_interval=0.02)
    tasks = [asyncio.create_task(sealer.run()), asyncio.create_task(standby.run())]
    store = EventStore(scratch_schema)
    try:
        async with sessions() as slow, slow.begin():
            await store.append(slow, "thing-slow", 0, new_events(1), CTX)  # older xid, open
            for _ in range(10):
                await append(sessions, scratch_schema, 2)
            await asyncio.sleep(0.3)  # the sealer runs meanwhile, and must wait for `slow`
            assert sealer.sealed + standby.sealed == 0
        await _until(lambda: sealer.sealed + standby.sealed == 21)
    finally:
        sealer.stop()
        standby.stop()
        await asyncio.gather(*tasks)
    assert 0 in (sealer.sealed, standby.sealed)  # one leader did all the sealing
    report = await verify(admin_engine, scratch_schema)
    assert report.intact and (report.links, report.unsealed) == (21, 0)


async def _until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
