"""Bank CSV exports, read through a per-bank `CsvColumns` mapping.

CSV has no schema, so the mapping is the schema: a configured column that is missing, a date
that doesn't fit `date_format` or an amount that doesn't fit the separators is an error naming
the line and column, never a guess. Amounts are parsed digit by digit into minor units and
must not carry more decimals than the currency has: "1.000" read with the wrong separator
setting would otherwise become one yen instead of a thousand.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, TypeVar

from services.payments.adapters.statements import (
    CsvColumns,
    ParsedLine,
    ParsedStatement,
    StatementFormatError,
    check_line_count,
    collapse,
    compact_account,
    optional_text,
    require_currency,
)
from shared.money import Money, currency_exponent

__all__ = ["parse_amount", "parse_csv"]

_T = TypeVar("_T")
_DIGITS: Final = re.compile(r"[0-9]+")
# Spaces used as thousands separators by French/Swiss/Nordic locales.
_SPACES: Final = str.maketrans({"\u00a0": " ", "\u202f": " "})


class _CellError(ValueError):
    """A cell's text doesn't fit the column; the caller adds line and column."""


@dataclass(frozen=True)
class _Layout:
    """Configured column -> cell index, resolved once from the header row."""

    header_line: int
    index: dict[str, int]

    def cell(self, row: list[str], column: str | None) -> str:
        if column is None:
            return ""
        i = self.index[column]
        return row[i].strip() if i < len(row) else ""


def parse_csv(content: str, columns: CsvColumns, *, currency: str | None) -> ParsedStatement:
    """Parse a CSV export; `currency` is required unless `columns.currency` is configured."""
    if currency is None and columns.currency is None:
        raise StatementFormatError(
            "a CSV statement needs a currency: pass one or configure a currency column",
            {"field": "currency"},
        )
    records = _records(content, columns.delimiter)
    first = next(records, None)
    if first is None:
        raise StatementFormatError("the CSV file is empty: a header row is required", {"line": 1})
    layout = _layout(*first, columns)
    statement_currency = currency
    lines: list[ParsedLine] = []
    for line_no, row in records:
        check_line_count(len(lines) + 1, {"line": line_no})
        row_currency = _row_currency(layout, row, line_no, columns, currency)
        if statement_currency is None:
            statement_currency = row_currency
        elif row_currency != statement_currency:
            raise StatementFormatError(
                f"line {line_no}: currency {row_currency} differs from {statement_currency}; "
                "a statement has one currency",
                {
                    "line": line_no,
                    "column": columns.currency or "currency",
                    "expected": statement_currency,
                    "found": row_currency,
                },
            )
        lines.append(_line(layout, row, line_no, columns, row_currency))
    if statement_currency is None:
        raise StatementFormatError(
            "the CSV file has no rows to take the currency from; pass the currency",
            {"field": "currency"},
        )
    return ParsedStatement(
        format="csv",
        account=None,
        statement_ref=None,
        currency=statement_currency,
        opening_balance=None,
        closing_balance=None,
        lines=tuple(lines),
    )


def _records(content: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with the physical line number each starts on (quoted cells may span lines)."""
    reader = csv.reader(
        io.StringIO(content.removeprefix("\ufeff"), newline=""), delimiter=delimiter
    )
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise StatementFormatError(
                f"line {end + 1}: unreadable CSV ({exc})", {"line": end + 1}
            ) from None
        start, end = end + 1, reader.line_num
        if any(cell.strip() for cell in row):
            yield start, row


def _layout(line_no: int, header: list[str], columns: CsvColumns) -> _Layout:
    """Find every configured column in the header; a missing or ambiguous one is an error."""
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        positions.setdefault(name.strip().lower(), []).append(i)
    index: dict[str, int] = {}
    for column in _configured(columns):
        found = positions.get(column.strip().lower(), [])
        if len(found) != 1:
            problem = "is missing from" if not found else "appears more than once in"
            raise StatementFormatError(
                f"column {column!r} {problem} the header row",
                {"line": line_no, "column": column},
            )
        index[column] = found[0]
    return _Layout(line_no, index)


def _configured(columns: CsvColumns) -> list[str]:
    names = [
        columns.booking_date,
        columns.amount,
        columns.credit,
        columns.debit,
        columns.currency,
        columns.reference,
        columns.counterparty_name,
        columns.counterparty_account,
        columns.bank_reference,
        columns.value_date,
    ]
    return [name for name in names if name is not None]


def _row_currency(
    layout: _Layout, row: list[str], line_no: int, columns: CsvColumns, default: str | None
) -> str:
    """The row's currency column (upper-cased), falling back to the statement currency."""
    raw = layout.cell(row, columns.currency).upper()
    if not raw:
        if default is None:
            raise StatementFormatError(
                f"line {line_no}: no currency",
                {"line": line_no, "column": columns.currency},
            )
        return default
    return require_currency(raw, {"line": line_no, "column": columns.currency})


def _line(
    layout: _Layout, row: list[str], line_no: int, columns: CsvColumns, currency: str
) -> ParsedLine:
    def read_date(column: str) -> date:
        return _at(line_no, column, lambda: _parse_date(layout.cell(row, column), columns))

    value_column = columns.value_date
    value_date = None
    if value_column is not None and layout.cell(row, value_column):
        value_date = read_date(value_column)
    return ParsedLine(
        booking_date=read_date(columns.booking_date),
        value_date=value_date,
        amount=_amount(layout, row, line_no, columns, currency),
        reference=collapse(layout.cell(row, columns.reference)),
        counterparty_name=optional_text(layout.cell(row, columns.counterparty_name)),
        counterparty_account=compact_account(layout.cell(row, columns.counterparty_account)),
        bank_reference=optional_text(layout.cell(row, columns.bank_reference)),
    )


def _at(line_no: int, column: str, read: Callable[[], _T]) -> _T:
    """Run `read`, turning a cell error into a StatementFormatError at line/column."""
    try:
        return read()
    except _CellError as exc:
        raise StatementFormatError(
            f"line {line_no}, column {column!r}: {exc}", {"line": line_no, "column": column}
        ) from None


def _parse_date(text: str, columns: CsvColumns) -> date:
    if not text:
        raise _CellError("no date")
    try:
        return datetime.strptime(text, columns.date_format).date()
    except ValueError:
        raise _CellError(f"{text!r} is not a date in the format {columns.date_format!r}") from None


def _amount(
    layout: _Layout, row: list[str], line_no: int, columns: CsvColumns, currency: str
) -> Money:
    """The signed amount: the `amount` column, or credit minus debit."""
    if columns.amount is not None:
        text = layout.cell(row, columns.amount)
        return _at(line_no, columns.amount, lambda: parse_amount(text, currency, columns))
    credit = _optional_amount(layout, row, line_no, columns.credit, columns, currency)
    debit = _optional_amount(layout, row, line_no, columns.debit, columns, currency)
    column = columns.credit or columns.debit or ""
    if credit is None and debit is None:
        raise StatementFormatError(
            f"line {line_no}: neither a credit nor a debit amount",
            {"line": line_no, "column": column},
        )
    if credit is not None and debit is not None and not (credit.is_zero() or debit.is_zero()):
        raise StatementFormatError(
            f"line {line_no}: both a credit and a debit amount",
            {"line": line_no, "column": column},
        )
    zero = Money.zero(currency)
    # Some banks already write debits with a minus sign; a debit is money out either way.
    return (credit or zero) - abs(debit or zero)


def _optional_amount(
    layout: _Layout,
    row: list[str],
    line_no: int,
    column: str | None,
    columns: CsvColumns,
    currency: str,
) -> Money | None:
    text = layout.cell(row, column)
    if column is None or not text:
        return None
    return _at(line_no, column, lambda: parse_amount(text, currency, columns))


def parse_amount(text: str, currency: str, columns: CsvColumns) -> Money:
    """Exact Money from human-formatted text such as "1.234,56", "(12.00)" or "+5".

    Raises ValueError (a `_CellError`) when the text doesn't fit the separators, its thousands
    groups are irregular (a sign of the wrong separator setting) or it has more decimals than
    `currency`.
    """
    body = text.strip().translate(_SPACES)
    negative = False
    if body.startswith("(") and body.endswith(")"):
        negative, body = True, body[1:-1].strip()
    if body[:1] in ("+", "-"):
        if negative:
            raise _CellError(f"{text!r}: a sign inside parentheses")
        negative, body = body[0] == "-", body[1:].strip()
    whole, fraction = _split_number(text, body, columns)
    exponent = currency_exponent(currency)
    if len(fraction) > exponent:
        raise _CellError(
            f"{text!r} has {len(fraction)} decimal places, {currency} allows {exponent}"
        )
    minor = int(whole or "0") * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return Money.of_minor(-minor if negative else minor, currency)


def _split_number(text: str, body: str, columns: CsvColumns) -> tuple[str, str]:
    """Integer digits and fraction digits of an unsigned number."""
    whole, separator, fraction = body.partition(columns.decimal_separator)
    if separator and _DIGITS.fullmatch(fraction) is None:
        raise _not_a_number(text, columns)
    if not whole and separator:
        return "", fraction
    thousands = columns.thousands_separator
    if _DIGITS.fullmatch(whole) is None and not (thousands and _grouped(whole, thousands)):
        raise _not_a_number(text, columns)
    return whole.replace(thousands, "") if thousands else whole, fraction


def _grouped(whole: str, thousands: str) -> bool:
    """Western (1,234,567) or Indian (12,34,567) digit grouping with `thousands`."""
    sep = re.escape(thousands)
    western = rf"[0-9]{{1,3}}(?:{sep}[0-9]{{3}})+"
    indian = rf"[0-9]{{1,2}}(?:{sep}[0-9]{{2}})*{sep}[0-9]{{3}}"
    return re.fullmatch(western, whole) is not None or re.fullmatch(indian, whole) is not None


def _not_a_number(text: str, columns: CsvColumns) -> _CellError:
    return _CellError(
        f"{text!r} is not an amount with decimal separator {columns.decimal_separator!r} "
        f"and thousands separator {columns.thousands_separator!r}"
    )
