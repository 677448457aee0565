"""Versioned event payloads and the upcasters that bring old versions up to date on read.

A payload class declares its `event_type` and current `schema_version`. When a payload's shape
changes, bump the version and register an upcaster from the old version: stored events are never
rewritten, they are upcast every time they are read (from the store, Kafka or a replay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import ValidationFailed
from shared.events.envelope import EventEnvelope, NewEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
P = TypeVar("P", bound="EventPayload")


class UnknownEventType(LookupError):
    pass


class EventPayload(BaseModel):
    """Base of every event payload: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


def build_event(model: type[P], **fields: Any) -> P:
    """Construct a payload in a decide function, turning pydantic's complaints into a 422 with
    per-field details (a command's bad input, not a bug)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid"}
        raise ValidationFailed(
            f"invalid {model.event_type}: {first['field']}: {first['message']}",
            {"errors": errors},
        ) from None


@dataclass
class EventSpec:
    event_type: str
    payload_model: type[EventPayload]
    upcasters: dict[int, Upcaster] = field(default_factory=dict)

    @property
    def current_version(self) -> int:
        return self.payload_model.schema_version


class EventRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, EventSpec] = {}

    def payload(self, model: type[P]) -> type[P]:
        """Class decorator: register a payload model under its event_type."""
        existing = self._specs.get(model.event_type)
        if existing is not None and existing.payload_model is not model:
            raise ValueError(f"event type {model.event_type!r} is already registered")
        self._specs[model.event_type] = EventSpec(model.event_type, model)
        return model

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: register the step that turns `from_version` into `from_version + 1`."""

        def register(fn: Upcaster) -> Upcaster:
            spec = self.spec(event_type)
            if from_version >= spec.current_version:
                raise ValueError(
                    f"{event_type} v{from_version} is not older than the current model"
                )
            spec.upcasters[from_version] = fn
            return fn

        return register

    def spec(self, event_type: str) -> EventSpec:
        try:
            return self._specs[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def knows(self, event_type: str) -> bool:
        return event_type in self._specs

    def upcast(self, event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec(event_type)
        if version > spec.current_version:
            raise ValueError(
                f"{event_type} v{version} is newer than this code (v{spec.current_version})"
            )
        while version < spec.current_version:
            try:
                payload = spec.upcasters[version](payload)
            except KeyError:
                raise ValueError(f"no upcaster for {event_type} v{version}") from None
            version += 1
        return payload

    def decode(self, envelope: EventEnvelope) -> EventPayload:
        """The envelope's payload as the current model, upcast from whatever version was stored."""
        spec = self.spec(envelope.event_type)
        data = self.upcast(envelope.event_type, envelope.schema_version, envelope.payload)
        return spec.payload_model.model_validate(data)

    def new_event(self, payload: EventPayload, **envelope_fields: Any) -> NewEvent:
        """Wrap a payload for appending; the registry, not the caller, names type and version."""
        self.spec(payload.event_type)
        return NewEvent(
            event_type=payload.event_type,
            schema_version=payload.schema_version,
            payload=payload.model_dump(mode="json"),
            **envelope_fields,
        )

    def event_types(self) -> list[str]:
        return sorted(self._specs)


registry = EventRegistry()
"""The process-wide registry; each module of shared/contracts registers its payloads on import."""
