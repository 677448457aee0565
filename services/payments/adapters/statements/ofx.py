"""OFX bank and credit-card statements: OFX 1.x (SGML) and OFX 2.x (XML).

One small tokenizer reads both: OFX 1.x leaves have no closing tag (`<TRNAMT>-12.00`), so an
element followed by text is a leaf whether or not `</TRNAMT>` follows, and an element followed
by another tag is an aggregate that lasts until its closing tag. Headers (`OFXHEADER:100`
lines or `<?OFX ...?>`) are skipped; the document must close `</OFX>`, so a truncated download
is refused instead of silently losing its last transactions.

OFX has no statement id and no opening balance; LEDGERBAL is the closing balance.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

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
from shared.money import Money

__all__ = ["parse_ofx"]

_TOKEN: Final = re.compile(
    r"<(?P<close>/?)(?P<name>[A-Za-z][A-Za-z0-9_.]*)\s*(?P<empty>/?)>"
    r"|<!--.*?-->|<[?!][^>]*>",
    re.DOTALL,
)
_OFX_START: Final = re.compile(r"<OFX\s*>", re.IGNORECASE)
_DATETIME: Final = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})"
    r"(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,3})?)?)?)?"
    r"\s*(?:\[[^\]]*\])?"
)
_STATEMENTS: Final = ("STMTRS", "CCSTMTRS")


@dataclass
class _Node:
    """An OFX element: a leaf has `text`, an aggregate has `children`."""

    name: str
    line: int
    text: str | None = None
    children: list[_Node] = field(default_factory=list)

    def child(self, *path: str) -> _Node | None:
        node: _Node | None = self
        for name in path:
            node = next((c for c in node.children if c.name == name), None) if node else None
        return node

    def value(self, *path: str) -> str | None:
        """Trimmed text of the leaf at `path`, None when absent or empty."""
        node = self.child(*path)
        return None if node is None else node.text or None

    def walk(self) -> Iterator[_Node]:
        for c in self.children:
            yield c
            yield from c.walk()


def parse_ofx(content: str, *, currency: str | None = None) -> ParsedStatement:
    """Parse the one bank or credit-card statement in an OFX file."""
    stmt = _single_statement(_tree(content))
    statement_currency = _currency(stmt, currency)
    lines: list[ParsedLine] = []
    transactions = stmt.child("BANKTRANLIST")
    for i, trn in enumerate(_named(transactions, "STMTTRN"), start=1):
        check_line_count(i, {"element": "STMTTRN", "line": trn.line})
        lines.append(_line(trn, f"STMTTRN[{i}]", statement_currency))
    return ParsedStatement(
        format="ofx",
        account=compact_account(
            stmt.value("BANKACCTFROM", "ACCTID") or stmt.value("CCACCTFROM", "ACCTID")
        ),
        statement_ref=None,
        currency=statement_currency,
        opening_balance=None,
        closing_balance=_closing(stmt, statement_currency),
        lines=tuple(lines),
    )


# -------------------------------------------------------------------------- tokenizer


def _tree(content: str) -> _Node:
    """The OFX element as a tree, from SGML or XML alike."""
    start = _OFX_START.search(content)
    if start is None:
        raise StatementFormatError("not an OFX file: no <OFX> element", {"element": "OFX"})
    document = _Node("#document", 1)
    stack = [document]
    pending: _Node | None = None  # just opened: a leaf if text follows, else an aggregate
    line, counted = content.count("\n", 0, start.start()) + 1, start.start()
    position = start.start()
    for token in _TOKEN.finditer(content, start.start()):
        text = html.unescape(content[position : token.start()]).strip()
        line += content.count("\n", counted, token.start())
        counted, position = token.start(), token.end()
        if text and pending is not None:
            pending.text, pending = text, None
        name, closing = (token.group("name") or "").upper(), token.group("close") == "/"
        if not name:
            continue  # comment, processing instruction or declaration
        if pending is not None:
            if closing and name == pending.name:  # <MEMO></MEMO>: an empty leaf
                pending = None
                continue
            if not closing:
                stack.append(pending)
            pending = None  # before a closing tag: an empty SGML leaf
        if closing:
            _close(stack, name)
        else:
            node = _Node(name, line)
            stack[-1].children.append(node)
            pending = None if token.group("empty") else node
    if len(stack) > 1:
        raise StatementFormatError(
            f"the OFX file is truncated: <{stack[-1].name}> is never closed",
            {"element": stack[-1].name, "line": stack[-1].line},
        )
    return document


def _close(stack: list[_Node], name: str) -> None:
    """Close `name`; a stray end tag (of a leaf already complete) is ignored.

    Aggregates always have end tags, so anything still open inside `name` was an empty
    SGML leaf (`<MEMO>` right before the next tag): its supposed children are its siblings.
    """
    for depth in range(len(stack) - 1, 0, -1):
        if stack[depth].name == name:
            for inner in range(len(stack) - 1, depth, -1):
                _unwrap(stack[inner - 1], stack[inner])
            del stack[depth:]
            return


def _unwrap(parent: _Node, node: _Node) -> None:
    """Turn `node` into an empty leaf, moving its children up right after it."""
    at = parent.children.index(node) + 1
    parent.children[at:at] = node.children
    node.children = []


# ------------------------------------------------------------------------- statement


def _single_statement(document: _Node) -> _Node:
    statements = [n for n in document.walk() if n.name in _STATEMENTS]
    if len(statements) != 1:
        raise StatementFormatError(
            f"expected exactly one STMTRS or CCSTMTRS per file, found {len(statements)}",
            {"element": "STMTRS", "count": len(statements)},
        )
    return statements[0]


def _currency(stmt: _Node, declared: str | None) -> str:
    """CURDEF, else the declared account currency."""
    named = stmt.value("CURDEF")
    if named is None:
        if declared is None:
            raise StatementFormatError(
                "the statement has no CURDEF; pass the account currency", {"element": "CURDEF"}
            )
        return declared
    details = _at(stmt.child("CURDEF"), "CURDEF")
    return agree_currency(require_currency(named.upper(), details), declared, details)


def _closing(stmt: _Node, currency: str) -> Money | None:
    amount = stmt.child("LEDGERBAL", "BALAMT")
    if amount is None:
        return None
    return _money(amount, "LEDGERBAL/BALAMT", currency)


def _line(trn: _Node, where: str, currency: str) -> ParsedLine:
    amount = trn.child("TRNAMT")
    if amount is None:
        raise StatementFormatError(f"{where}: no TRNAMT", _at(trn, f"{where}/TRNAMT"))
    _check_currency(trn, where, currency)
    name = optional_text(trn.value("NAME") or trn.value("PAYEE", "NAME"))
    memo = collapse(trn.value("MEMO"))
    return ParsedLine(
        booking_date=_required_date(trn, "DTPOSTED", where),
        value_date=_date(trn.child("DTAVAIL"), f"{where}/DTAVAIL"),
        amount=_money(amount, f"{where}/TRNAMT", currency),
        # Banks put the payer in NAME and the remittance text in MEMO; without a MEMO the NAME
        # is all the description there is.
        reference=memo or (name or ""),
        counterparty_name=name,
        counterparty_account=compact_account(
            trn.value("BANKACCTTO", "ACCTID") or trn.value("CCACCTTO", "ACCTID")
        ),
        bank_reference=optional_text(trn.value("FITID")),
    )


def _check_currency(trn: _Node, where: str, currency: str) -> None:
    """A CURRENCY aggregate means TRNAMT is in another currency; one currency per statement.

    ORIGCURRENCY is fine: the amount was already converted into CURDEF.
    """
    other = trn.value("CURRENCY", "CURSYM")
    if other is not None and other.upper() != currency:
        raise StatementFormatError(
            f"{where} is in {other}, the statement in {currency}; a statement has one currency",
            {**_at(trn.child("CURRENCY"), f"{where}/CURRENCY"), "expected": currency},
        )


# ------------------------------------------------------------------------ leaf values


def _money(node: _Node, where: str, currency: str) -> Money:
    """OFX amounts are signed decimals; the spec allows a comma as the decimal mark."""
    text = (node.text or "").replace(",", ".")
    return exact_money(text, currency, _at(node, where))


def _required_date(trn: _Node, name: str, where: str) -> date:
    node = trn.child(name)
    parsed = _date(node, f"{where}/{name}")
    if parsed is None:
        raise StatementFormatError(f"{where}: no {name}", _at(trn, f"{where}/{name}"))
    return parsed


def _date(node: _Node | None, where: str) -> date | None:
    """YYYYMMDD[HHMMSS[.XXX]][[gmt offset:tz]]: the date as the bank wrote it."""
    if node is None:
        return None
    raw = node.text or ""
    match = _DATETIME.fullmatch(raw)
    try:
        if match is None:
            raise ValueError(raw)
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise StatementFormatError(f"{where}: {raw!r} is not a date", _at(node, where)) from None


def _named(parent: _Node | None, name: str) -> list[_Node]:
    return [] if parent is None else [c for c in parent.children if c.name == name]


def _at(node: _Node | None, where: str) -> dict[str, Any]:
    return {"element": where} if node is None else {"element": where, "line": node.line}
