"""Event envelope, payload registry with upcasting, and topic routing."""

from shared.events.envelope import Actor, EventEnvelope, NewEvent
from shared.events.registry import EventRegistry, EventSpec, UnknownEventType, registry

__all__ = [
    "Actor",
    "EventEnvelope",
    "EventRegistry",
    "EventSpec",
    "NewEvent",
    "UnknownEventType",
    "registry",
]
