"""FoldCache against real Postgres: the cached fold equals a fresh one, including after a rolled
back append was folded and another transaction wrote that version instead."""

from __future__ import annotations

from typing import ClassVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events.envelope import NewEvent
from shared.events.registry import EventPayload, registry
from shared.eventstore.cache import FoldCache
from shared.eventstore.store import AppendContext, EventStore

pytestmark = pytest.mark.integration

CTX = AppendContext(tenant_id="acme", actor="client:test")


@registry.payload
class Tallied(EventPayload):
    event_type: ClassVar[str] = "TestTallied"
    schema_version: ClassVar[int] = 1
    label: str


def tally(state: tuple[str, ...] | None, event: EventPayload) -> tuple[str, ...]:
    assert isinstance(event, Tallied)
    return (*(state or ()), event.label)


async def append(
    session: AsyncSession, store: EventStore, *labels: str, stream: str = "tally-1"
) -> None:
    events = [
        NewEvent(event_type="TestTallied", schema_version=1, payload={"label": x}) for x in labels
    ]
    await store.append(session, stream, -1, events, CTX)


async def test_loads_only_the_new_events_and_never_trusts_a_rolled_back_fold(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store = EventStore(scratch_schema)
    cache: FoldCache[tuple[str, ...]] = FoldCache(store, tally)
    async with sessions() as s:
        assert await cache.load(s, "tally-1", "acme") == (None, 0)
    async with sessions() as s, s.begin():
        await append(s, store, "a", "b")
    async with sessions() as s:
        assert await cache.load(s, "tally-1", "acme") == (("a", "b"), 2)
    async with sessions() as s, s.begin():
        await append(s, store, "c")
    async with sessions() as s:
        assert await cache.load(s, "tally-1", "acme") == (("a", "b", "c"), 3)
        assert await cache.load(s, "tally-1", "acme") == (("a", "b", "c"), 3)
        assert await cache.load(s, "tally-1", "other-tenant") == (None, 0)
    assert (cache.hits, cache.misses) == (2, 3)

    # Fold an append that then rolls back; another transaction writes version 4 instead.
    async with sessions() as s:
        async with s.begin():
            await append(s, store, "rolled back")
            assert await cache.load(s, "tally-1", "acme") == (("a", "b", "c", "rolled back"), 4)
            await s.rollback()
    async with sessions() as s, s.begin():
        await append(s, store, "d")
    async with sessions() as s:
        assert await cache.load(s, "tally-1", "acme") == (("a", "b", "c", "d"), 4)


async def test_the_least_recently_used_stream_is_dropped(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store = EventStore(scratch_schema)
    cache: FoldCache[tuple[str, ...]] = FoldCache(store, tally, max_streams=1)
    async with sessions() as s, s.begin():
        await append(s, store, "a")
        await append(s, store, "b", stream="tally-2")
    async with sessions() as s:
        assert await cache.load(s, "tally-1", "acme") == (("a",), 1)
        assert await cache.load(s, "tally-2", "acme") == (("b",), 1)
        assert await cache.load(s, "tally-2", "acme") == (("b",), 1)
        assert await cache.load(s, "tally-1", "acme") == (("a",), 1)  # dropped: read again
    assert (cache.hits, cache.misses) == (1, 3)
