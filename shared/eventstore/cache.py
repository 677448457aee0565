"""Folded stream states kept between commands, so a long stream is not re-read and re-folded
from its first event on every command (a customer's credit account gains an event per credit
check: folding it all made each check slower than the last).

Events are immutable and a stream only grows, so a state folded up to version v stays right, and
the next load reads only the events from v on. A state may have been folded from events of a
transaction that then rolled back; so the load re-reads event v itself and trusts the cached
state only if that event is still the one it was folded from, else it folds the stream afresh.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload, registry
from shared.eventstore.store import EventStore

S = TypeVar("S")


@dataclass(frozen=True)
class _Folded(Generic[S]):
    state: S
    version: int
    last_event_id: uuid.UUID


class FoldCache(Generic[S]):
    """Per process, least recently used streams dropped first. States must be immutable."""

    def __init__(
        self,
        store: EventStore,
        evolve: Callable[[S | None, EventPayload], S],
        max_streams: int = 10_000,
    ) -> None:
        self.store = store
        self.evolve = evolve
        self.max_streams = max_streams
        self._folded: OrderedDict[str, _Folded[S]] = OrderedDict()
        self.hits = self.misses = 0

    async def load(
        self, session: AsyncSession | AsyncConnection, stream_id: str, tenant_id: str
    ) -> tuple[S | None, int]:
        """The stream's state and version (None, 0 for a stream with no events)."""
        cached = self._folded.get(stream_id)
        if cached is not None:
            tail = await self.store.read_stream(
                session, stream_id, tenant_id=tenant_id, from_version=cached.version
            )
            if tail and tail[0].event_id == cached.last_event_id:
                self.hits += 1
                self._folded.move_to_end(stream_id)
                if len(tail) == 1:
                    return cached.state, cached.version
                return self._fold(stream_id, cached.state, tail[1:])
        self.misses += 1
        envelopes = await self.store.read_stream(session, stream_id, tenant_id=tenant_id)
        if not envelopes:
            self._folded.pop(stream_id, None)
            return None, 0
        return self._fold(stream_id, None, envelopes)

    def _fold(
        self, stream_id: str, state: S | None, envelopes: list[EventEnvelope]
    ) -> tuple[S, int]:
        for envelope in envelopes:
            state = self.evolve(state, registry.decode(envelope))
        assert state is not None  # envelopes is never empty
        last = envelopes[-1]
        self._folded[stream_id] = _Folded(state, last.stream_version, last.event_id)
        self._folded.move_to_end(stream_id)
        while len(self._folded) > self.max_streams:
            self._folded.popitem(last=False)
        return state, last.stream_version
