"""Pure parsers for bank statements: CSV exports, ISO 20022 camt.053 and OFX.

Every format ends up as one `ParsedStatement` whose lines carry signed `Money` (positive =
money received), so matching and booking never need to know where a line came from. Parsing is
all-or-nothing: a file that can't be read exactly raises `StatementFormatError` naming the line
or element, because a half-imported statement would silently leave payments unmatched. Nothing
here touches the database or the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from shared.errors import ValidationFailed
from shared.money import InexactAmount, Money, UnknownCurrency, currency_exponent

__all__ = [
    "MAX_LINES",
    "CsvColumns",
    "ParsedLine",
    "ParsedStatement",
    "StatementFormat",
    "StatementFormatError",
    "parse_statement",
]

#: More lines than any real daily/monthly statement; beyond it the upload is refused rather
#: than holding a huge import in memory and in one transaction.
MAX_LINES: Final = 100_000

StatementFormat = Literal["csv", "camt053", "ofx"]


@dataclass(frozen=True)
class ParsedLine:
    booking_date: date
    value_date: date | None
    amount: Money  # signed: positive = money received (credit), negative = money out (debit)
    reference: str  # remittance information / memo / description ("" if none), whitespace-collapsed
    counterparty_name: str | None
    counterparty_account: str | None  # IBAN / account number of the payer, if given
    bank_reference: str | None  # the bank's id for the entry (FITID, AcctSvcrRef, CSV id column)


@dataclass(frozen=True)
class ParsedStatement:
    format: str  # "csv" | "camt053" | "ofx"
    account: str | None  # IBAN / account id of OUR account
    statement_ref: str | None  # statement id given in the file
    currency: str
    opening_balance: Money | None
    closing_balance: Money | None
    lines: tuple[ParsedLine, ...]


class StatementFormatError(ValidationFailed):
    """The file can't be read as the declared format; details name the line/element."""


class CsvColumns(BaseModel):
    """How to read one bank's CSV export: header names and number/date formatting.

    Header names are matched case-insensitively after trimming. Either one signed `amount`
    column or unsigned `credit` and/or `debit` columns; giving `credit`/`debit` without
    mentioning `amount` switches the default `amount` column off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    booking_date: str = "date"
    amount: str | None = "amount"
    credit: str | None = None
    debit: str | None = None
    currency: str | None = None
    reference: str = "reference"
    counterparty_name: str | None = "name"
    counterparty_account: str | None = None
    bank_reference: str | None = None
    value_date: str | None = None
    date_format: str = "%Y-%m-%d"
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal["", ",", ".", " ", "'"] = ""
    delimiter: Literal[",", ";", "\t", "|"] = ","

    @model_validator(mode="before")
    @classmethod
    def _credit_debit_replace_default_amount(cls, data: Any) -> Any:
        if isinstance(data, dict) and "amount" not in data:
            if data.get("credit") is not None or data.get("debit") is not None:
                return {**data, "amount": None}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CsvColumns:
        split = self.credit is not None or self.debit is not None
        if (self.amount is None) == (not split):
            raise ValueError("configure exactly one of `amount` or `credit`/`debit`")
        if self.credit is not None and self.debit is not None:
            if self.credit.strip().lower() == self.debit.strip().lower():
                raise ValueError("`credit` and `debit` must be different columns")
        if self.decimal_separator == self.thousands_separator:
            raise ValueError("decimal and thousands separators must differ")
        return self


def parse_statement(
    content: str,
    fmt: Literal["csv", "camt053", "ofx"],
    *,
    currency: str | None = None,
    csv_columns: CsvColumns | None = None,
) -> ParsedStatement:
    """Parse `content` as `fmt`.

    `currency` is the statement currency for CSV (unless the file has a currency column); for
    camt.053 and OFX the file names its currency and `currency`, if given, must agree (it is
    the currency of the bank account the upload is for) or is used when the file omits it.
    """
    if currency is not None:
        require_currency(currency, {"field": "currency"})
    if fmt != "csv" and csv_columns is not None:
        raise StatementFormatError(
            "csv_columns only applies to CSV statements", {"field": "csv_columns"}
        )
    # Imported here, not at the top: the format modules import the types defined above.
    if fmt == "csv":
        from services.payments.adapters.statements.csv_format import parse_csv

        return parse_csv(content, csv_columns or CsvColumns(), currency=currency)
    if fmt == "camt053":
        from services.payments.adapters.statements.camt053 import parse_camt053

        return parse_camt053(content, currency=currency)
    if fmt == "ofx":
        from services.payments.adapters.statements.ofx import parse_ofx

        return parse_ofx(content, currency=currency)
    raise StatementFormatError(
        f"unknown statement format {fmt!r}",
        {"field": "format", "allowed": ["csv", "camt053", "ofx"]},
    )


# ------------------------------------------------------- helpers shared by the format modules


def collapse(text: str | None) -> str:
    """Trim and collapse runs of whitespace (incl. newlines, NBSP) to one space."""
    return " ".join(text.split()) if text else ""


def optional_text(text: str | None) -> str | None:
    """Collapsed text, or None when there is nothing but whitespace."""
    return collapse(text) or None


def compact_account(text: str | None) -> str | None:
    """An account id without any whitespace: IBANs are printed in groups of four."""
    compact = "".join(text.split()) if text else ""
    return compact or None


def require_currency(code: str, details: dict[str, Any]) -> str:
    """`code` if it is an ISO 4217 currency shared.money knows (exponent defined)."""
    try:
        currency_exponent(code)
    except UnknownCurrency as exc:
        raise StatementFormatError(str(exc), details) from None
    return code


def agree_currency(found: str, declared: str | None, details: dict[str, Any]) -> str:
    """The file's currency, refusing a file for a different account currency than declared."""
    if declared is not None and found != declared:
        raise StatementFormatError(
            f"the statement is in {found}, expected {declared}",
            {**details, "expected": declared, "found": found},
        )
    return found


def check_line_count(count: int, details: dict[str, Any]) -> None:
    if count > MAX_LINES:
        raise StatementFormatError(
            f"the statement has more than {MAX_LINES} lines; split the file",
            {**details, "max_lines": MAX_LINES},
        )


_DECIMAL_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def exact_money(text: str | None, currency: str, details: dict[str, Any]) -> Money:
    """A machine-written decimal ("." separator, optional sign) as exact Money.

    Used for XML formats, where the number syntax is fixed; trailing zeros beyond the
    currency's exponent are harmless there ("1000.00" JPY), any non-zero excess is refused.
    """
    raw = (text or "").strip()
    if _DECIMAL_RE.fullmatch(raw) is None:
        raise StatementFormatError(f"{raw!r} is not an amount", details)
    try:
        return Money.from_decimal(raw, currency)
    except InexactAmount:
        raise StatementFormatError(
            f"{raw!r} has more decimal places than {currency} allows", details
        ) from None
