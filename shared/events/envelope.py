"""The one envelope every event travels in, in the store, on Kafka and in replays."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
STREAM_PATTERN = r"^[a-z][a-z0-9_]*-[A-Za-z0-9._:-]+$"


def aggregate_of(stream_id: str) -> str:
    """Stream ids are `<aggregate>-<id>`; aggregate names use underscores, never hyphens."""
    return stream_id.split("-", 1)[0]


def partition_key_of(customer_id: str | None, stream_id: str) -> str:
    """One customer's events stay in order on a topic; customer-less streams key by stream."""
    return customer_id or stream_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class Actor(BaseModel):
    """Who or what caused an event: a JWT subject, or a system component such as `relay`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(pattern=r"^(user|client|system|portal)$")
    id: str = Field(min_length=1, max_length=200)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Actor:
        kind, _, ident = text.partition(":")
        return cls(kind=kind, id=ident)


class NewEvent(BaseModel):
    """An event a command decided on, before the store gives it a stream position."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str
    schema_version: int = Field(ge=1)
    payload: dict[str, Any]
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)


class EventEnvelope(BaseModel):
    """An immutable, recorded fact. Field names are the catalogue contract in DESIGN.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: str
    schema_version: int = Field(ge=1)
    stream_id: str = Field(pattern=STREAM_PATTERN, max_length=200)
    stream_version: int = Field(ge=1)
    occurred_at: datetime
    recorded_at: datetime
    tenant_id: str = Field(pattern=TENANT_PATTERN)
    customer_id: str | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    actor: str
    traceparent: str | None = None
    payload: dict[str, Any]
    # Where the store put it: (transaction id, global position). Absent once read back from Kafka.
    global_position: int | None = None

    @field_validator("occurred_at", "recorded_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a timezone")
        return value

    @property
    def aggregate(self) -> str:
        """`invoice-<uuid>` -> `invoice`: the stream's aggregate type picks the topic."""
        return aggregate_of(self.stream_id)

    @property
    def partition_key(self) -> str:
        return partition_key_of(self.customer_id, self.stream_id)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude={"global_position"}).encode()

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> EventEnvelope:
        return cls.model_validate(json.loads(raw))
