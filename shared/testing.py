"""Helpers for the services' tests (never imported by production code)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload


def envelope_of(
    tenant_id: str,
    payload: EventPayload,
    *,
    stream_id: str,
    customer_id: str | None,
    stream_version: int = 1,
    correlation_id: uuid.UUID | None = None,
) -> EventEnvelope:
    """An event as a consumer receives it from another service's topic."""
    now = datetime.now(UTC)
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=payload.event_type,
        schema_version=payload.schema_version,
        stream_id=stream_id,
        stream_version=stream_version,
        occurred_at=now,
        recorded_at=now,
        tenant_id=tenant_id,
        customer_id=customer_id,
        actor="system:test",
        payload=payload.model_dump(mode="json"),
        correlation_id=correlation_id,
    )
