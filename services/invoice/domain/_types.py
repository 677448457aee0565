"""Event construction with 422s.

The validated scalar types the payloads are built from live in ``shared.contracts.fields``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError

from shared.errors import ValidationFailed
from shared.events.registry import EventPayload

E = TypeVar("E", bound=EventPayload)


def build_event(model: type[E], **fields: Any) -> E:
    """Construct an event, turning pydantic's complaints into a 422 with per-field details."""
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
