"""ISO 20022 camt.053 (BankToCustomerStatement), versions .001.02 to .001.08.

Elements are matched by local name and the namespace URI is ignored: the versions differ in
namespace but agree on the element names this parser reads (where a later version moved one,
e.g. Dbtr/Pty/Nm, both places are tried).

Security: a document containing a DOCTYPE is refused before parsing. Without a DTD no entity
can be declared, which rules out entity-expansion bombs and external entities; expat never
fetches anything itself.

Batch bookings (one entry, several TxDtls) are split into one line per transaction only when
that split is exact: every TxDtls has an amount in the statement currency and the amounts add
up to the entry. Otherwise the entry stays one line, so the money is never misstated.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from typing import Final
from xml.etree.ElementTree import Element

from services.payments.adapters.statements import (
    ParsedLine,
    ParsedStatement,
    StatementFormatError,
    agree_currency,
    check_line_count,
    collapse,
    compact_account,
    exact_money,
    optional_text,
    require_currency,
)
from shared.money import Money, sum_money

__all__ = ["parse_camt053"]

_DTD: Final = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_DATE: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_OPENING_CODES: Final = ("OPBD", "PRCD")  # opening booked; previous closing booked
_CLOSING_CODE: Final = "CLBD"
_NOT_PROVIDED: Final = "NOTPROVIDED"


@dataclass(frozen=True)
class _TxInfo:
    """What one TxDtls says about the payment besides its amount."""

    reference: str
    name: str | None
    account: str | None
    bank_reference: str | None


def parse_camt053(content: str, *, currency: str | None = None) -> ParsedStatement:
    """Parse one camt.053 statement; `currency`, if given, is the expected account currency."""
    stmt = _single_statement(_parse_xml(content))
    statement_currency = _statement_currency(stmt, currency)
    opening, closing = _balances(stmt, statement_currency)
    lines: list[ParsedLine] = []
    for i, entry in enumerate(_children(stmt, "Ntry"), start=1):
        where = f"Stmt/Ntry[{i}]"
        lines.extend(_entry_lines(entry, where, statement_currency))
        check_line_count(len(lines), {"element": where})
    return ParsedStatement(
        format="camt053",
        account=_account(stmt),
        statement_ref=_text(stmt, "Id"),
        currency=statement_currency,
        opening_balance=opening,
        closing_balance=closing,
        lines=tuple(lines),
    )


# ---------------------------------------------------------------------------- document


def _parse_xml(content: str) -> Element:
    """Parse after refusing any DTD (see the module docstring)."""
    if _DTD.search(content):
        raise StatementFormatError(
            "XML documents with a DOCTYPE are refused", {"element": "DOCTYPE"}
        )
    try:
        # Safe: without a DTD expat can neither expand entities nor resolve external ones.
        return ET.fromstring(content.removeprefix("\ufeff").lstrip())  # noqa: S314
    except ET.ParseError as exc:
        line, column = exc.position
        raise StatementFormatError(
            f"not well-formed XML: {exc}", {"line": line, "column": column}
        ) from None


def _single_statement(root: Element) -> Element:
    """The one Stmt of a BkToCstmrStmt document; more than one per file is refused."""
    message = _find(root, "BkToCstmrStmt") if _local(root.tag) == "Document" else None
    if message is None:
        raise StatementFormatError(
            "not a camt.053 document: expected Document/BkToCstmrStmt",
            {"element": _local(root.tag)},
        )
    statements = _children(message, "Stmt")
    if len(statements) != 1:
        raise StatementFormatError(
            f"expected exactly one Stmt per file, found {len(statements)}",
            {"element": "BkToCstmrStmt/Stmt", "count": len(statements)},
        )
    return statements[0]


def _statement_currency(stmt: Element, declared: str | None) -> str:
    """Acct/Ccy, else the declared currency, else the first balance or entry amount's Ccy."""
    named = _text(stmt, "Acct", "Ccy")
    if named is not None:
        found = require_currency(named.upper(), {"element": "Stmt/Acct/Ccy"})
        return agree_currency(found, declared, {"element": "Stmt/Acct/Ccy"})
    if declared is not None:
        return declared
    for holder in [*_children(stmt, "Bal"), *_children(stmt, "Ntry")]:
        amount = _find(holder, "Amt")
        if amount is not None and amount.get("Ccy"):
            code = (amount.get("Ccy") or "").strip().upper()
            return require_currency(code, {"element": f"Stmt/{_local(holder.tag)}/Amt"})
    raise StatementFormatError(
        "the statement names no currency; pass the account currency", {"element": "Stmt/Acct/Ccy"}
    )


def _account(stmt: Element) -> str | None:
    return compact_account(
        _text(stmt, "Acct", "Id", "IBAN") or _text(stmt, "Acct", "Id", "Othr", "Id")
    )


def _balances(stmt: Element, currency: str) -> tuple[Money | None, Money | None]:
    """Opening (OPBD, else PRCD) and closing (CLBD) booked balances; the first of each code."""
    found: dict[str, Money] = {}
    for i, balance in enumerate(_children(stmt, "Bal"), start=1):
        code = _text(balance, "Tp", "CdOrPrtry", "Cd")
        if code in (*_OPENING_CODES, _CLOSING_CODE) and code not in found:
            where = f"Stmt/Bal[{i}]"
            found[code] = _signed(balance, where, currency, _text(balance, "CdtDbtInd"))
    opening = next((found[c] for c in _OPENING_CODES if c in found), None)
    return opening, found.get(_CLOSING_CODE)


# ----------------------------------------------------------------------------- entries


def _entry_lines(entry: Element, where: str, currency: str) -> list[ParsedLine]:
    """One line per entry, or one per TxDtls of a batch booking when the split is exact."""
    indicator = _text(entry, "CdtDbtInd")
    amount = _signed(entry, where, currency, indicator)
    value_date = _date(_find(entry, "ValDt"), f"{where}/ValDt")
    booking_date = _date(_find(entry, "BookgDt"), f"{where}/BookgDt") or value_date
    if booking_date is None:
        raise StatementFormatError(
            f"{where}: no BookgDt (nor ValDt)", {"element": f"{where}/BookgDt"}
        )
    entry_ref = _text(entry, "AcctSvcrRef") or _text(entry, "NtryRef")
    transactions = [tx for d in _children(entry, "NtryDtls") for tx in _children(d, "TxDtls")]
    infos = [
        _tx_info(tx, credit=(_text(tx, "CdtDbtInd") or indicator) == "CRDT") for tx in transactions
    ]

    def line(money: Money, info: _TxInfo, bank_reference: str | None) -> ParsedLine:
        return ParsedLine(
            booking_date=booking_date,
            value_date=value_date,
            amount=money,
            reference=info.reference or collapse(_text(entry, "AddtlNtryInf")),
            counterparty_name=info.name,
            counterparty_account=info.account,
            bank_reference=bank_reference,
        )

    split = _split_amounts(transactions, where, currency, indicator, amount)
    if split is None:
        info = _merge(infos)
        return [line(amount, info, entry_ref or info.bank_reference)]
    return [
        line(money, info, info.bank_reference or (f"{entry_ref}#{n}" if entry_ref else None))
        for n, (money, info) in enumerate(zip(split, infos, strict=True), start=1)
    ]


def _split_amounts(
    transactions: list[Element], where: str, currency: str, indicator: str | None, total: Money
) -> list[Money] | None:
    """Per-transaction amounts of a batch booking, or None when it can't be split exactly."""
    if len(transactions) < 2:
        return None
    amounts: list[Money] = []
    for i, tx in enumerate(transactions, start=1):
        holder = tx if _find(tx, "Amt") is not None else _find(tx, "AmtDtls", "TxAmt")
        amount = _find(holder, "Amt")
        if (
            holder is None
            or amount is None
            or (amount.get("Ccy") or "").strip().upper() != currency
        ):
            return None
        tx_indicator = _text(tx, "CdtDbtInd") or indicator
        amounts.append(_signed(holder, f"{where}/NtryDtls/TxDtls[{i}]", currency, tx_indicator))
    return amounts if sum_money(amounts, currency) == total else None


def _merge(infos: list[_TxInfo]) -> _TxInfo:
    """One entry's worth of TxDtls folded into one: references joined, a party only if shared."""
    references = list(dict.fromkeys(i.reference for i in infos if i.reference))
    names = {i.name for i in infos}
    accounts = {i.account for i in infos}
    refs = {i.bank_reference for i in infos}
    return _TxInfo(
        reference=" ".join(references),
        name=names.pop() if len(names) == 1 else None,
        account=accounts.pop() if len(accounts) == 1 else None,
        bank_reference=refs.pop() if len(refs) == 1 else None,
    )


def _tx_info(tx: Element, *, credit: bool) -> _TxInfo:
    """Remittance text and the other party: the debtor of a credit, the creditor of a debit."""
    party, party_account = ("Dbtr", "DbtrAcct") if credit else ("Cdtr", "CdtrAcct")
    ultimate = "UltmtDbtr" if credit else "UltmtCdtr"
    parties = _find(tx, "RltdPties")
    name = _party_name(parties, party) or _party_name(parties, ultimate)
    account = _text(parties, party_account, "Id", "IBAN") or _text(
        parties, party_account, "Id", "Othr", "Id"
    )
    bank_reference = _text(tx, "Refs", "AcctSvcrRef") or _text(tx, "Refs", "TxId")
    return _TxInfo(_remittance(tx), name, compact_account(account), optional_text(bank_reference))


def _party_name(parties: Element | None, role: str) -> str | None:
    """Role/Nm up to .001.07, Role/Pty/Nm from .001.08 on."""
    return optional_text(_text(parties, role, "Nm") or _text(parties, role, "Pty", "Nm"))


def _remittance(tx: Element) -> str:
    """Unstructured lines, then structured creditor references, then the end-to-end id.

    The end-to-end id is the payer's own reference and often the only place an invoice
    number appears when the remittance information is empty.
    """
    info = _find(tx, "RmtInf")
    parts = [collapse(u.text) for u in _children(info, "Ustrd")]
    for structured in _children(info, "Strd"):
        parts.append(collapse(_text(structured, "CdtrRefInf", "Ref")))
    text = collapse(" ".join(dict.fromkeys(p for p in parts if p)))
    if text:
        return text
    end_to_end = _text(tx, "Refs", "EndToEndId")
    if end_to_end is not None and end_to_end.upper() != _NOT_PROVIDED:
        return collapse(end_to_end)
    return collapse(_text(tx, "AddtlTxInf"))


# ------------------------------------------------------------------------ leaf values


def _signed(holder: Element, where: str, currency: str, indicator: str | None) -> Money:
    """`holder`/Amt signed by a CdtDbtInd: CRDT positive, DBIT negative."""
    amount = _find(holder, "Amt")
    if amount is None:
        raise StatementFormatError(f"{where}: no Amt", {"element": f"{where}/Amt"})
    details = {"element": f"{where}/Amt"}
    code = (amount.get("Ccy") or "").strip().upper()
    if code != currency:
        raise StatementFormatError(
            f"{where}/Amt is in {code or 'no currency'}, the statement in {currency}; "
            "a statement has one currency",
            {**details, "expected": currency, "found": code},
        )
    money = exact_money(amount.text, currency, details)
    if money.is_negative():
        raise StatementFormatError(f"{where}/Amt must not be negative", details)
    if indicator == "CRDT":
        return money
    if indicator == "DBIT":
        return -money
    raise StatementFormatError(
        f"{where}: CdtDbtInd must be CRDT or DBIT, got {indicator!r}",
        {"element": f"{where}/CdtDbtInd"},
    )


def _date(holder: Element | None, where: str) -> date | None:
    """The date of a DateAndDateTimeChoice (Dt or DtTm); the local date as written."""
    if holder is None:
        return None
    raw = _text(holder, "Dt") or _text(holder, "DtTm") or ""
    match = _DATE.fullmatch(raw)
    try:
        if match is None:
            raise ValueError(raw)
        return date.fromisoformat(match.group(1))
    except ValueError:
        raise StatementFormatError(f"{where}: {raw!r} is not a date", {"element": where}) from None


# ----------------------------------------------------------------- namespace-free lookup


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(parent: Element | None, name: str) -> list[Element]:
    return [] if parent is None else [c for c in parent if _local(c.tag) == name]


def _find(parent: Element | None, *path: str) -> Element | None:
    node = parent
    for name in path:
        if node is None:
            return None
        node = next((c for c in node if _local(c.tag) == name), None)
    return node


def _text(parent: Element | None, *path: str) -> str | None:
    """Trimmed text at `path`, None when absent or blank."""
    node = _find(parent, *path)
    text = node.text.strip() if node is not None and node.text else ""
    return text or None
