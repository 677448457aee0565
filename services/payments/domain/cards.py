"""Card numbers (PANs) in free text: found by the Luhn check, masked to their last four.

PCI DSS forbids storing a full card number, and payers do paste them into references; the
payments service refuses them in its own API and masks them in what banks and gateways send.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

# Maximal runs of digits where single spaces/dashes may separate groups ("4242 4242-4242...").
_DIGIT_RUN_RE: Final = re.compile(r"\d+(?:[ \u00a0-]\d+)*")
# A canonical UUID (8-4-4-4-12 hex) is an id, never a card number, even where a run of its
# digit groups passes the Luhn check (about 1 in 350 random UUIDs has one).
_UUID_RE: Final = re.compile(
    r"(?<![0-9A-Za-z])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![0-9A-Za-z])"
)
_DIGIT_GROUP_RE: Final = re.compile(r"\d+")
_PAN_MIN, _PAN_MAX = 13, 19
MASK: Final = "\u2022\u2022\u2022\u2022 "


def _luhn_valid(digits: Sequence[int]) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if position % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _mask_run(run: str) -> str:
    """Mask every Luhn-valid 13-19 digit span that starts and ends on group boundaries.

    Spans align with the groups so that "Order 12345 4242 4242 4242 4242" still finds the card
    after the order number, while a 30-digit bank reference written without separators, which
    is no card number, stays as it is.
    """
    if len(run) < _PAN_MIN:  # the common case: dates, invoice and phone numbers
        return run
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP_RE.finditer(run)]
    digits = [[int(ch) for ch in run[start:end]] for start, end in groups]
    pieces: list[str] = []
    cursor = 0
    first = 0
    while first < len(groups):
        last = _pan_end(digits, first)
        if last is None:
            first += 1
            continue
        span_digits = [d for group in digits[first : last + 1] for d in group]
        pieces.append(run[cursor : groups[first][0]])
        pieces.append(MASK + "".join(str(d) for d in span_digits[-4:]))
        cursor = groups[last][1]
        first = last + 1
    pieces.append(run[cursor:])
    return "".join(pieces)


def _pan_end(digits: Sequence[Sequence[int]], first: int) -> int | None:
    """Index of the last group of the longest card number starting at group ``first``."""
    found: int | None = None
    span: list[int] = []
    for index in range(first, len(digits)):
        span.extend(digits[index])
        if len(span) > _PAN_MAX:
            break
        if len(span) >= _PAN_MIN and _luhn_valid(span):
            found = index
    return found


def mask_card_numbers(text: str) -> str:
    """Replace anything that looks like a card number with ``•••• <last 4>``.

    A card number is 13-19 digits passing the Luhn check, optionally grouped by single spaces
    or dashes. Shorter or non-Luhn digit runs (invoice and order numbers, dates) are untouched.
    PCI DSS forbids storing a full card number, and payers do paste them into references.
    Canonical UUIDs are left as they are.
    """
    pieces: list[str] = []
    cursor = 0
    for uuid_match in _UUID_RE.finditer(text):
        pieces.append(_mask_runs(text[cursor : uuid_match.start()]))
        pieces.append(uuid_match.group())
        cursor = uuid_match.end()
    pieces.append(_mask_runs(text[cursor:]))
    return "".join(pieces)


def _mask_runs(text: str) -> str:
    return _DIGIT_RUN_RE.sub(lambda match: _mask_run(match.group()), text)


def has_card_number(text: str) -> bool:
    return mask_card_numbers(text) != text
