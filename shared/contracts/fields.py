"""Validated scalar types for published payloads and the value models inside them.

Pydantic's lax mode would accept ``0.1`` (a float that has already lost precision) for a
``Decimal`` field and ``True`` for an ``int`` field; money arithmetic must never see either.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, Field, StrictInt

__all__ = [
    "FIRST_DAY",
    "LAST_DAY",
    "Days",
    "ExactDecimal",
    "Percent",
    "Text",
    "format_decimal",
    "fractional_places",
]


def _no_float_or_bool(value: object) -> object:
    if isinstance(value, bool | float):
        raise ValueError(f"must be a decimal string, int or Decimal (never {type(value).__name__})")
    return value


ExactDecimal = Annotated[Decimal, BeforeValidator(_no_float_or_bool)]
"""A finite Decimal given as str/int/Decimal; serialized as a string in JSON mode."""

Percent = Annotated[ExactDecimal, Field(ge=0, le=100)]
"""A percentage between 0 and 100 inclusive."""

Days = Annotated[StrictInt, Field(ge=0, le=3650)]
"""A whole number of days, 0 to ten years."""

Text = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]
"""A required free-text field (reasons, notes) with at least one non-blank character."""


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)
"""The business dates the APIs accept: arithmetic around them (terms, windows, grace days, months
back or ahead) must stay inside Python's dates, so outside is a 422, never an OverflowError."""


def fractional_places(value: Decimal) -> int:
    """Significant digits after the decimal point (``1.500`` has 1, ``100`` has 0)."""
    if value == 0:
        return 0
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def format_decimal(value: Decimal) -> str:
    """Plain notation without trailing zeros: ``Decimal("2.50")`` -> ``"2.5"``, ``1E+2`` -> ``"100"``."""
    if value == 0:
        return "0"
    return f"{value.normalize():f}"
