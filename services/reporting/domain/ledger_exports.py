"""Renderers from journal entries to what accounting systems import. Pure: text in memory.

Exports are incremental and idempotent: the caller selects the entries that changed since the
previous export (it owns that cursor and passes it in), and the same entries always render to
the same bytes, with identifiers derived from ``entry_id`` (so a re-import is recognisable).

* Beancount (``render_beancount``): ``option "operating_currency"`` and ``open`` directives,
  then one transaction per entry (payee the customer, the narration, tag ``#ledgerline`` and the
  event type, links ``^<invoice number>`` / ``^payment-<id>``, metadata ``entry_id``,
  ``event_id``, ``event_type``). Each posting is in its transaction currency with the functional
  value as a total price (``-100.00 EUR @@ 108.45 USD``), so Beancount checks the balance in the
  functional currency and still keeps the foreign balances; a line that exists only in the
  functional currency (FX gains, losses, rounding) is written in it. Amounts have exactly the
  currency's ISO 4217 places (JPY 0, EUR 2, KWD 3). A chunk to append to an existing file takes
  the accounts already opened and returns the new set, so no account is opened twice, and only
  the first chunk carries the options. The cursor is written as a comment.
* QuickBooks Online journal-entry import (``render_quickbooks_csv``): ``JournalNo, JournalDate,
  Currency, Account, Debits, Credits, Description, Name``. Rows sharing a JournalNo form one
  journal; the date is MM/DD/YYYY; Debits and Credits are positive, the other one blank; Account
  is the full ``Parent:Sub`` name (account numbers off); Name is the customer (QBO needs one on
  A/R lines). JournalNo is at most 21 characters (QBO's limit), ``LL-`` and a hash of the entry.
* Xero manual-journal import (``render_xero_csv``): ``*Narration, *Date, Description,
  *AccountCode, *TaxRate, *Amount, TrackingName1, TrackingOption1, TrackingName2,
  TrackingOption2`` as in Xero's template. Rows with the same narration and date form one journal,
  so the narration ends with the journal number; the date is dd/mm/yyyy; Amount is signed
  (debit positive); accounts are codes (``account_codes``: Xero refuses manual journals on its
  Accounts Receivable system account, so map receivables to a secondary asset account); tax is
  already on its own line, so every line takes one non-tax rate (``tax_rate``).
* Both CSVs carry functional-currency amounts: Xero manual journals are in the base currency
  only, and FX and rounding lines exist only there. The transaction-currency amount of a foreign
  line is kept in its description. Lines worth zero in the functional currency are left out.
  Text cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or
  carriage return) are prefixed with an apostrophe; numeric cells never are.
* JSON feed (``json_feed`` / ``render_json_feed``): ``{"format", "cursor", "entries"}`` with
  stable field names, amounts as signed minor-unit integers beside their currency, ids as strings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Final

from services.reporting.domain.postings import AccountRole, JournalEntry, JournalLine
from shared.money import Money

__all__ = [
    "FEED_FORMAT",
    "QUICKBOOKS_COLUMNS",
    "XERO_COLUMNS",
    "XERO_DEFAULT_CODES",
    "BeancountChunk",
    "journal_number",
    "json_feed",
    "render_beancount",
    "render_json_feed",
    "render_quickbooks_csv",
    "render_xero_csv",
    "safe_cell",
]

FEED_FORMAT: Final = "ledgerline.journal.v1"

QUICKBOOKS_COLUMNS: Final = (
    "JournalNo",
    "JournalDate",
    "Currency",
    "Account",
    "Debits",
    "Credits",
    "Description",
    "Name",
)

XERO_COLUMNS: Final = (
    "*Narration",
    "*Date",
    "Description",
    "*AccountCode",
    "*TaxRate",
    "*Amount",
    "TrackingName1",
    "TrackingOption1",
    "TrackingName2",
    "TrackingOption2",
)

XERO_DEFAULT_CODES: Final[Mapping[AccountRole, str]] = MappingProxyType(
    {
        AccountRole.RECEIVABLES: "LL-AR",
        AccountRole.BANK: "LL-BANK",
        AccountRole.CLEARING: "LL-CLEAR",
        AccountRole.UNAPPLIED_CASH: "LL-UNAPP",
        AccountRole.TAX_PAYABLE: "LL-TAX",
        AccountRole.REVENUE: "LL-SALES",
        AccountRole.SALES_RETURNS: "LL-RETURNS",
        AccountRole.LATE_FEES: "LL-FEES",
        AccountRole.FX_GAIN: "LL-FXGAIN",
        AccountRole.DISCOUNTS: "LL-DISC",
        AccountRole.BAD_DEBT: "LL-BADDEBT",
        AccountRole.FX_LOSS: "LL-FXLOSS",
        AccountRole.FX_ROUNDING: "LL-FXROUND",
        AccountRole.CONVERSIONS: "LL-CONV",
        AccountRole.FX_UNREALIZED_GAIN: "LL-FXUGAIN",
        AccountRole.FX_UNREALIZED_LOSS: "LL-FXULOSS",
    }
)
"""Placeholder codes (Xero allows up to 10 characters): create these accounts in Xero, or pass
the organisation's own codes."""

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


# --------------------------------------------------------------------------- shared


def _decimal_text(amount: int, currency: str) -> str:
    return f"{Money.of_minor(amount, currency).to_decimal():f}"


def journal_number(entry: JournalEntry) -> str:
    """A short, stable journal number (QBO allows 21 characters): the same entry always gets
    the same number, so a re-import shows up as a duplicate instead of a second journal."""
    return "LL-" + hashlib.sha256(entry.entry_id.encode()).hexdigest()[:18]


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet will not evaluate as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------- Beancount


@dataclass(frozen=True)
class BeancountChunk:
    """Text to write (or append) and the accounts open once it is in the file."""

    text: str
    open_accounts: frozenset[str]


def render_beancount(
    entries: Sequence[JournalEntry],
    *,
    operating_currency: str,
    cursor: str,
    already_open: frozenset[str] = frozenset(),
    start_date: date | None = None,
    title: str | None = None,
) -> BeancountChunk:
    """A ledger chunk. With nothing ``already_open`` it is the start of a file (options first);
    otherwise it is meant to be appended. Accounts open on ``start_date`` or on their first use
    in this chunk, whichever is earlier."""
    parts: list[str] = []
    if not already_open:
        parts.append(_beancount_header(operating_currency, title))
    opens = _opening_dates(entries, already_open, start_date)
    if opens:
        parts.append("".join(f"{on.isoformat()} open {account}\n" for account, on in opens))
    parts.extend(_beancount_transaction(entry) for entry in entries)
    parts.append(f"; ledgerline export cursor: {_one_line(cursor)}\n")
    return BeancountChunk("\n".join(parts), already_open | {account for account, _ in opens})


def _beancount_header(operating_currency: str, title: str | None) -> str:
    header = "; Ledgerline journal export (generated; do not edit)\n"
    if title is not None:
        header += f"option {_quoted('title')} {_quoted(title)}\n"
    return header + f'option "operating_currency" "{operating_currency}"\n'


def _opening_dates(
    entries: Iterable[JournalEntry], already_open: frozenset[str], start_date: date | None
) -> list[tuple[str, date]]:
    first_use: dict[str, date] = {}
    for entry in entries:
        for line in entry.lines:
            if line.account not in already_open:
                known = first_use.get(line.account, entry.date)
                first_use[line.account] = min(known, entry.date)
    if start_date is not None:
        first_use = {account: min(on, start_date) for account, on in first_use.items()}
    return sorted(first_use.items())


def _quoted(text: str) -> str:
    escaped = _one_line(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


_LINK_UNSAFE: Final = re.compile(r"[^A-Za-z0-9\-_/.]")


def _link(text: str) -> str:
    return "^" + _LINK_UNSAFE.sub("-", text)


def _tags_and_links(entry: JournalEntry) -> str:
    marks = ["#ledgerline", f"#{_LINK_UNSAFE.sub('-', entry.source_event_type)}"]
    if entry.document_number is not None:
        marks.append(_link(entry.document_number))
    elif entry.invoice_id is not None:
        marks.append(_link(f"invoice-{entry.invoice_id}"))
    if entry.payment_id is not None:
        marks.append(_link(f"payment-{entry.payment_id}"))
    return " ".join(marks)


def _beancount_transaction(entry: JournalEntry) -> str:
    payee = entry.customer_id or ""
    head = f"{entry.date.isoformat()} * {_quoted(payee)} {_quoted(entry.narration)}"
    meta = {
        "entry_id": entry.entry_id,
        "event_id": str(entry.source_event_id),
        "event_type": entry.source_event_type,
    }
    lines = [f"{head} {_tags_and_links(entry)}"]
    lines += [f"  {key}: {_quoted(value)}" for key, value in meta.items()]
    lines += [f"  {line.account}  {_beancount_amount(line, entry)}" for line in entry.lines]
    return "\n".join(lines) + "\n"


def _beancount_amount(line: JournalLine, entry: JournalEntry) -> str:
    functional = entry.functional_currency
    if line.currency == functional or (line.amount == 0 and line.functional_amount != 0):
        return f"{_decimal_text(line.functional_amount, functional)} {functional}"
    units = f"{_decimal_text(line.amount, line.currency)} {line.currency}"
    if line.amount == 0:
        return units
    price = _decimal_text(abs(line.functional_amount), functional)
    return f"{units} @@ {price} {functional}"


# ------------------------------------------------------------------------ CSV files


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _line_description(entry: JournalEntry, line: JournalLine) -> str:
    """The narration, plus the transaction-currency amount when the line is foreign."""
    text = _one_line(entry.narration)
    if line.currency != entry.functional_currency and line.amount:
        text += f" ({_decimal_text(abs(line.amount), line.currency)} {line.currency})"
    return text


def _exported_lines(entry: JournalEntry) -> list[JournalLine]:
    return [line for line in entry.lines if line.functional_amount]


def render_quickbooks_csv(
    entries: Iterable[JournalEntry], customer_names: Mapping[str, str] | None = None
) -> str:
    """QuickBooks Online journal entries (functional currency); ``customer_names`` maps
    customer ids to QBO display names (default: the id)."""
    names = customer_names or {}
    rows = []
    for entry in entries:
        number = journal_number(entry)
        day = entry.date.strftime("%m/%d/%Y")
        name = names.get(entry.customer_id or "", entry.customer_id or "")
        currency = entry.functional_currency
        for line in _exported_lines(entry):
            debit = _decimal_text(line.functional_debit, currency) if line.functional_debit else ""
            credit = (
                _decimal_text(line.functional_credit, currency) if line.functional_credit else ""
            )
            rows.append(
                [
                    number,
                    day,
                    currency,
                    safe_cell(line.account),
                    debit,
                    credit,
                    safe_cell(_line_description(entry, line)),
                    safe_cell(name),
                ]
            )
    return _csv_text(QUICKBOOKS_COLUMNS, rows)


def render_xero_csv(
    entries: Iterable[JournalEntry],
    account_codes: Mapping[AccountRole, str] = XERO_DEFAULT_CODES,
    tax_rate: str = "Tax Exempt",
) -> str:
    """Xero manual journals (base = functional currency), one signed amount per line."""
    rows = []
    for entry in entries:
        narration = safe_cell(f"{_one_line(entry.narration)} [{journal_number(entry)}]")
        day = entry.date.strftime("%d/%m/%Y")
        for line in _exported_lines(entry):
            amount = _decimal_text(line.functional_amount, entry.functional_currency)
            rows.append(
                [
                    narration,
                    day,
                    safe_cell(_line_description(entry, line)),
                    safe_cell(account_codes[line.role]),
                    safe_cell(tax_rate),
                    amount,
                    "",
                    "",
                    "",
                    "",
                ]
            )
    return _csv_text(XERO_COLUMNS, rows)


# ------------------------------------------------------------------------ JSON feed


def _line_json(line: JournalLine) -> dict[str, Any]:
    return {
        "account": line.account,
        "role": line.role.value,
        "currency": line.currency,
        "amount": line.amount,
        "debit": line.debit,
        "credit": line.credit,
        "functional_amount": line.functional_amount,
        "functional_debit": line.functional_debit,
        "functional_credit": line.functional_credit,
    }


def _optional(value: object | None) -> str | None:
    return None if value is None else str(value)


def _entry_json(entry: JournalEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "kind": entry.kind,
        "journal_number": journal_number(entry),
        "tenant_id": entry.tenant_id,
        "date": entry.date.isoformat(),
        "source_event_id": str(entry.source_event_id),
        "source_event_type": entry.source_event_type,
        "customer_id": entry.customer_id,
        "invoice_id": _optional(entry.invoice_id),
        "payment_id": _optional(entry.payment_id),
        "allocation_id": _optional(entry.allocation_id),
        "document_number": entry.document_number,
        "narration": entry.narration,
        "functional_currency": entry.functional_currency,
        "rate": f"{entry.rate.normalize():f}",
        "lines": [_line_json(line) for line in entry.lines],
    }


def json_feed(entries: Iterable[JournalEntry], cursor: str) -> dict[str, Any]:
    """The feed as a JSON-ready document: the caller's cursor comes back with the entries."""
    return {
        "format": FEED_FORMAT,
        "cursor": cursor,
        "entries": [_entry_json(entry) for entry in entries],
    }


def render_json_feed(entries: Iterable[JournalEntry], cursor: str) -> str:
    return json.dumps(json_feed(entries, cursor), sort_keys=True, ensure_ascii=False, indent=1)
