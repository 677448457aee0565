"""The causal chain of one request across every service: `ar events trace <correlation-id>`.

Events carry the correlation id of the request (or job run) that caused them and the id of the
event that caused them (`causation_id`). Starting from the correlation id, the trace follows
causation ids into every service until nothing new turns up (a consumer that starts a new unit
of work still names its cause), and adds which consumer groups took each event in, and whether
one dead-lettered it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import checked_schema
from shared.events.envelope import EventEnvelope
from shared.eventstore.store import EVENT_COLUMNS, row_to_envelope

MAX_ROUNDS = 50


@dataclass(frozen=True)
class Consumption:
    service: str
    consumer_group: str
    outcome: str  # processed | dead_lettered
    at: datetime


@dataclass
class TracedEvent:
    service: str
    envelope: EventEnvelope
    consumed_by: list[Consumption] = field(default_factory=list)
    caused: list[TracedEvent] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        e = self.envelope
        return {
            "service": self.service,
            "event_id": str(e.event_id),
            "event_type": e.event_type,
            "stream_id": e.stream_id,
            "stream_version": e.stream_version,
            "recorded_at": e.recorded_at.isoformat(),
            "actor": e.actor,
            "tenant_id": e.tenant_id,
            "customer_id": e.customer_id,
            "correlation_id": str(e.correlation_id) if e.correlation_id else None,
            "causation_id": str(e.causation_id) if e.causation_id else None,
            "consumed_by": [
                {
                    "service": c.service,
                    "consumer_group": c.consumer_group,
                    "outcome": c.outcome,
                    "at": c.at.isoformat(),
                }
                for c in self.consumed_by
            ],
            "caused": [child.as_dict() for child in self.caused],
        }


@dataclass
class Trace:
    correlation_id: uuid.UUID
    roots: list[TracedEvent]
    events: int
    services: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "correlation_id": str(self.correlation_id),
            "events": self.events,
            "services": self.services,
            "roots": [r.as_dict() for r in self.roots],
        }


async def trace(
    conns: Mapping[str, AsyncConnection],
    schemas: Mapping[str, str],
    correlation_id: uuid.UUID,
    *,
    tenant_id: str | None = None,
) -> Trace:
    """Every event of the correlation id and everything they caused, as a causal tree.

    `conns` and `schemas` map each service name to a connection and its schema.
    """
    found: dict[uuid.UUID, TracedEvent] = {}
    await _collect(
        conns, schemas, "correlation_id = :cid", {"cid": correlation_id}, tenant_id, found
    )
    frontier = list(found)
    for _ in range(MAX_ROUNDS):
        if not frontier:
            break
        before = set(found)
        await _collect(
            conns, schemas, "causation_id = ANY(:ids)", {"ids": frontier}, tenant_id, found
        )
        frontier = [i for i in found if i not in before]
    await _consumptions(conns, schemas, found)
    roots: list[TracedEvent] = []
    for node in sorted(found.values(), key=_order):
        parent = found.get(node.envelope.causation_id) if node.envelope.causation_id else None
        (parent.caused if parent is not None else roots).append(node)
    return Trace(
        correlation_id=correlation_id,
        roots=roots,
        events=len(found),
        services=sorted({n.service for n in found.values()}),
    )


def _order(node: TracedEvent) -> tuple[datetime, str, int]:
    e = node.envelope
    return (e.recorded_at, e.stream_id, e.stream_version)


async def _collect(
    conns: Mapping[str, AsyncConnection],
    schemas: Mapping[str, str],
    condition: str,
    params: dict[str, Any],
    tenant_id: str | None,
    found: dict[uuid.UUID, TracedEvent],
) -> None:
    for service, conn in conns.items():
        rows = await conn.execute(
            text(
                f"""SELECT {EVENT_COLUMNS} FROM {checked_schema(schemas[service])}.events
                    WHERE {condition}
                      AND (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)"""
            ),
            {**params, "tenant": tenant_id},
        )
        for row in rows:
            envelope = row_to_envelope(row)
            found.setdefault(envelope.event_id, TracedEvent(service, envelope))


async def _consumptions(
    conns: Mapping[str, AsyncConnection],
    schemas: Mapping[str, str],
    found: dict[uuid.UUID, TracedEvent],
) -> None:
    ids = list(found)
    if not ids:
        return
    for service, conn in conns.items():
        rows = await conn.execute(
            text(
                f"""SELECT consumer_group, event_id, outcome, processed_at
                    FROM {checked_schema(schemas[service])}.inbox
                    WHERE event_id = ANY(:ids) ORDER BY processed_at"""
            ),
            {"ids": ids},
        )
        for row in rows:
            found[row.event_id].consumed_by.append(
                Consumption(service, row.consumer_group, row.outcome, row.processed_at)
            )
