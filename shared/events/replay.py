"""Decoding recorded events for a replay without pydantic: one msgspec pass per record.

A rebuild reads every event ever recorded, hundreds of thousands at a time; pydantic's two
validations (the envelope, then the payload) were a quarter of its time. The store validated
each payload with its model when it appended it, so a replay needs a check of the shape, not a
second full validation. `ReplayDecoder` builds msgspec types from the same pydantic models, so
there is no second copy of the contracts: the same field names, types, optional fields and
defaults, the constraints declared as field metadata (lengths, bounds, patterns), unknown fields
refused. msgspec has no bounds for decimals: those are not checked.

Not carried over: the models' own validator functions (`field_validator`, `model_validator`,
`BeforeValidator`, ...). An event only they would refuse was refused at append, so it reaches a
topic only from a writer other than the relay. msgspec is stricter than pydantic's lax mode
(no "12" for an int), so `decode` returns None for anything it refuses, and for a stored schema
version older than the model's (it needs the upcasters): the caller then decodes with pydantic,
which either accepts the event or gives the error it always gave.
"""

from __future__ import annotations

import enum
import types
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import msgspec
from pydantic import AwareDatetime, BaseModel, NaiveDatetime
from pydantic.fields import FieldInfo
from pydantic.types import Strict
from pydantic_core import PydanticUndefined

from shared.events.envelope import STREAM_PATTERN, TENANT_PATTERN
from shared.events.registry import EventRegistry, registry

P = TypeVar("P")


class ReplayEnvelope(
    msgspec.Struct, Generic[P], frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """`EventEnvelope`'s fields and checks, with the payload decoded as its type's struct."""

    event_id: uuid.UUID
    event_type: str
    schema_version: Annotated[int, msgspec.Meta(ge=1)]
    stream_id: Annotated[str, msgspec.Meta(pattern=STREAM_PATTERN, max_length=200)]
    stream_version: Annotated[int, msgspec.Meta(ge=1)]
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    recorded_at: Annotated[datetime, msgspec.Meta(tz=True)]
    tenant_id: Annotated[str, msgspec.Meta(pattern=TENANT_PATTERN)]
    customer_id: str | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    actor: str
    traceparent: str | None = None
    payload: P
    global_position: int | None = None


_SCALARS: tuple[type, ...] = (int, str, bool, float, Decimal, date, datetime, uuid.UUID)
_BOUNDS = {
    annotated_types.Gt: "gt",
    annotated_types.Ge: "ge",
    annotated_types.Lt: "lt",
    annotated_types.Le: "le",
    annotated_types.MultipleOf: "multiple_of",
    annotated_types.MinLen: "min_length",
    annotated_types.MaxLen: "max_length",
}
_DATETIMES = {AwareDatetime: True, NaiveDatetime: False}
_NUMERIC_BOUNDS = frozenset(("gt", "ge", "lt", "le", "multiple_of"))


class Unconvertible(TypeError):
    """A model uses a type or constraint this module does not translate."""


_STRUCTS: dict[type[BaseModel], Any] = {}


def struct_of(model: type[BaseModel]) -> Any:
    """The msgspec struct type for `model` (built once per model)."""
    if model not in _STRUCTS:
        fields = [_field(name, info) for name, info in model.model_fields.items()]
        _STRUCTS[model] = msgspec.defstruct(
            f"{model.__name__}Struct",
            fields,
            kw_only=True,
            frozen=True,
            forbid_unknown_fields=model.model_config.get("extra") == "forbid",
        )
    return _STRUCTS[model]


def _field(name: str, info: FieldInfo) -> tuple[Any, ...]:
    if info.alias not in (None, name):
        raise Unconvertible(f"{name}: aliases are not translated")
    kind = _type(info.annotation, info.metadata)
    if info.default_factory is not None:
        return (name, kind, msgspec.field(default_factory=info.default_factory))  # type: ignore[arg-type]
    if info.default is not PydanticUndefined:
        return (name, kind, info.default)
    return (name, kind)


def _type(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extras = get_args(annotation)
        found: list[Any] = []
        for extra in extras:
            found.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
        return _type(base, [*found, *metadata])
    meta = _meta(metadata)
    if origin in (Union, types.UnionType):
        kind: Any = Union[tuple(_type(arg) for arg in get_args(annotation))]  # noqa: UP007
    elif origin is list:
        kind = list[_type(get_args(annotation)[0])]  # type: ignore[misc]
    elif origin is dict:
        key, value = get_args(annotation)
        kind = dict[_type(key), _type(value)]  # type: ignore[misc]
    elif origin is Literal or annotation is type(None):
        kind = annotation
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        kind = struct_of(annotation)
    elif isinstance(annotation, type) and issubclass(annotation, (enum.Enum, *_SCALARS)):
        kind = annotation
    elif annotation is Any:
        kind = Any
    elif annotation in _DATETIMES:
        kind, meta = datetime, {**meta, "tz": _DATETIMES[annotation]}
    else:
        raise Unconvertible(f"no msgspec type for {annotation!r}")
    if kind is Decimal:  # msgspec bounds only ints and floats
        meta = {k: v for k, v in meta.items() if k not in _NUMERIC_BOUNDS}
    return Annotated[kind, msgspec.Meta(**meta)] if meta else kind


def _meta(metadata: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for item in metadata:
        bound = _BOUNDS.get(type(item))
        if bound is not None:
            meta[bound] = getattr(item, bound)
        elif getattr(item, "pattern", None) is not None:
            meta["pattern"] = item.pattern
        elif callable(getattr(item, "func", None)) or isinstance(item, Strict):
            continue  # a validator function (not carried over) or strictness (msgspec is strict)
        else:
            raise Unconvertible(f"no msgspec constraint for {item!r}")
    return meta


class ReplayDecoder:
    """Whole records (envelope and payload) of the given event types, decoded in one pass."""

    def __init__(self, event_types: frozenset[str], events: EventRegistry = registry) -> None:
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}
        self._versions: dict[str, int] = {}
        for event_type in event_types:
            spec = events.spec(event_type)
            payload = struct_of(spec.payload_model)
            self._decoders[event_type] = msgspec.json.Decoder(ReplayEnvelope[payload])  # type: ignore[valid-type]
            self._versions[event_type] = spec.current_version

    def decode(self, event_type: str | None, raw: bytes) -> ReplayEnvelope[Any] | None:
        """The record as a `ReplayEnvelope`, or None: the caller decodes it the pydantic way."""
        decoder = self._decoders.get(event_type) if event_type is not None else None
        if decoder is None:
            return None
        try:
            envelope: ReplayEnvelope[Any] = decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        if (
            envelope.event_type != event_type
            or envelope.schema_version != self._versions[event_type]
        ):
            return None
        return envelope
