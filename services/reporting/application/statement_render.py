"""A statement of account as CSV and as PDF: pure functions from a `Statement` to bytes/text.

The PDF follows the invoice service's renderer (services/invoice/adapters/pdf.py) without
importing it (services share only `shared/`): fpdf2 with the Helvetica core font in
Windows-1252, every string made printable first (never an encoding error on a customer's
name), numbers right-aligned and shrunk rather than cut, and a reproducible document (creation
date from the period's end, so the same statement renders the same bytes).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from fpdf import FPDF
from fpdf.fonts import CoreFont

from services.reporting.domain.statement import CurrencyStatement, Statement
from shared.money import Money
from shared.web.spreadsheet import safe_cell

CSV_COLUMNS: Final = (
    "currency",
    "date",
    "kind",
    "document_id",
    "reference",
    "description",
    "debit",
    "credit",
    "balance",
)


def filename(st: Statement, extension: str) -> str:
    """statement-<customer>-<from>-<to>.<ext>; the customer id is already [A-Za-z0-9._:-]."""
    customer = re.sub(r"[^A-Za-z0-9._:-]", "_", st.customer_id)
    return f"statement-{customer}-{st.from_date.isoformat()}-{st.to_date.isoformat()}.{extension}"


def major(amount: int, currency: str) -> str:
    """Amounts leave as major units with the currency's exact decimals (12.34), like the other
    reporting CSVs: what spreadsheets and accountants expect."""
    return f"{Money.of_minor(amount, currency).to_decimal():f}"


# ---- CSV ----------------------------------------------------------------------------------------


def render_csv(st: Statement) -> str:
    """A header row; then per currency an opening-balance row, the lines, a closing-balance row
    (debit and credit hold the period's totals) and one row per aging bucket (as of to_date,
    the amount in `balance`). Text cells are neutralised against formula injection."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    start, end = st.from_date.isoformat(), st.to_date.isoformat()
    for c in st.currencies:
        cur = c.currency
        writer.writerow(
            [
                cur,
                start,
                "opening_balance",
                "",
                "",
                "Opening balance",
                "",
                "",
                major(c.opening_balance, cur),
            ]
        )
        for line in c.lines:
            writer.writerow(
                [
                    cur,
                    line.date.isoformat(),
                    line.kind,
                    safe_cell(line.document_id),
                    safe_cell(line.reference),
                    safe_cell(line.description),
                    major(line.debit, cur),
                    major(line.credit, cur),
                    major(line.balance, cur),
                ]
            )
        writer.writerow(
            [
                cur,
                end,
                "closing_balance",
                "",
                "",
                "Closing balance",
                major(c.debits, cur),
                major(c.credits, cur),
                major(c.closing_balance, cur),
            ]
        )
        for bucket, amount in c.aging.items():
            writer.writerow(
                [cur, end, "aging", "", bucket, f"Aging: {bucket}", "", "", major(amount, cur)]
            )
    return out.getvalue()


# ---- PDF text helpers (after the invoice renderer's) ---------------------------------------------

_ENCODING: Final = "cp1252"  # fpdf2 declares the core fonts /WinAnsiEncoding
_SPACES: Final = frozenset(
    "\t\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_ELLIPSIS: Final = "\u2026"


def _encodable(ch: str) -> bool:
    try:
        ch.encode(_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def pdf_safe_text(value: str) -> str:
    """Printable with the Windows-1252 core fonts, never raising: odd spaces become spaces,
    control characters go, other characters are decomposed ("ő" -> "o") or become "?"."""
    out: list[str] = []
    for ch in value:
        if ch in _SPACES or ch in "\r\n":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            continue
        elif _encodable(ch):
            out.append(ch)
        else:
            plain = "".join(
                part
                for part in unicodedata.normalize("NFKD", ch)
                if not unicodedata.combining(part) and _encodable(part)
            )
            out.append(plain or "?")
    return "".join(out)


def format_date(value: date) -> str:
    """14 Mar 2026: unambiguous whatever the reader's locale."""
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def format_money(amount: int, currency: str) -> str:
    """1,234.50 with the currency's decimals."""
    money = Money.of_minor(amount, currency)
    return f"{money.to_decimal():,.{money.exponent}f}"


# ---- PDF ----------------------------------------------------------------------------------------

_RGB = tuple[int, int, int]
_ACCENT: Final[_RGB] = (30, 58, 95)
_ACCENT_LIGHT: Final[_RGB] = (234, 240, 247)
_TEXT: Final[_RGB] = (33, 37, 41)
_MUTED: Final[_RGB] = (108, 117, 125)
_RULE: Final[_RGB] = (206, 212, 218)
_ZEBRA: Final[_RGB] = (245, 247, 250)
_WHITE: Final[_RGB] = (255, 255, 255)
_FONT: Final = "Helvetica"
_MARGIN: Final = 15.0
_BOTTOM: Final = 20.0
_BODY_PT: Final = 8.5
_ROW_H: Final = 5.6
_HEADER_H: Final = 6.5
TITLE: Final = "Statement of account"


@dataclass(frozen=True)
class _Column:
    title: str
    width: float
    align: str


class _StatementDocument(FPDF):
    """A4 portrait with a footer naming the statement and the page."""

    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        self.core_fonts_encoding = _ENCODING
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(auto=False)
        self.c_margin = 1.6

    def use_font(self, size: float, style: str = "", colour: _RGB = _TEXT) -> None:
        self.set_font(_FONT, style, size)
        self.set_text_color(*colour)

    def text_width(self, value: str) -> float:
        font = self.current_font
        if isinstance(font, CoreFont):
            encoded = value.encode(_ENCODING, "replace").decode("latin-1")
            return sum(font.cw[ch] for ch in encoded) * self.font_size_pt * 0.001 / self.k
        return float(self.get_string_width(value))

    def put(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        value: str,
        align: str = "L",
        *,
        exact: bool = False,
    ) -> None:
        """One line in a box: shrunk to fit (to 4 pt for `exact` text such as amounts, which is
        never shortened), else ellipsised."""
        self.set_xy(x, y)
        value = pdf_safe_text(value)
        size = self.font_size_pt
        fitted, floor = size, 4.0 if exact else size * 0.75
        available = w - 2 * self.c_margin
        while fitted - 0.25 >= floor and self.text_width(value) > available:
            fitted -= 0.25
            self.set_font_size(fitted)
        if not exact and self.text_width(value) > available:
            while len(value) > 1 and self.text_width(value + _ELLIPSIS) > available:
                value = value[:-1]
            value = value.rstrip() + _ELLIPSIS
        self.cell(w, h, value, align=align)
        if fitted != size:
            self.set_font_size(size)

    def hrule(self, y: float, colour: _RGB = _RULE, width: float = 0.2) -> None:
        self.set_draw_color(*colour)
        self.set_line_width(width)
        self.line(self.l_margin, y, self.l_margin + self.epw, y)

    @property
    def bottom(self) -> float:
        return self.h - _BOTTOM

    def footer(self) -> None:
        y = self.h - 13
        self.hrule(y - 1.5)
        self.use_font(7.5, "", _MUTED)
        self.put(self.l_margin, y, self.epw * 0.7, 5, self.footer_text)
        self.put(
            self.l_margin + self.epw * 0.7,
            y,
            self.epw * 0.3,
            5,
            f"Page {self.page_no()} of {{nb}}",
            "R",
        )


def render_pdf(st: Statement, *, compress: bool = True) -> bytes:
    """The statement as an A4 PDF. Pure; `compress=False` leaves the page text readable in the
    raw bytes (for tests)."""
    return _Renderer(st, compress).render()


class _Renderer:
    def __init__(self, st: Statement, compress: bool) -> None:
        self.st = st
        who = st.customer_name or st.customer_id
        self.pdf = _StatementDocument(
            f"{TITLE} \u00b7 {who} \u00b7 {st.from_date.isoformat()} to {st.to_date.isoformat()}"
        )
        self.pdf.set_compression(compress)
        self.pdf.alias_nb_pages()

    def render(self) -> bytes:
        pdf, st = self.pdf, self.st
        pdf.set_title(
            f"{TITLE} {st.customer_id} {st.from_date.isoformat()} to {st.to_date.isoformat()}"
        )
        pdf.set_subject(f"{TITLE} for customer {st.customer_id}")
        pdf.set_creator("Ledgerline")
        pdf.set_producer("Ledgerline reporting (fpdf2)")
        end = st.to_date
        pdf.set_creation_date(datetime(end.year, end.month, end.day, tzinfo=UTC))
        pdf.add_page()
        self._header()
        if not st.currencies:
            pdf.use_font(_BODY_PT + 1, "I", _MUTED)
            pdf.put(
                pdf.l_margin,
                pdf.get_y() + 2,
                pdf.epw,
                8,
                "No activity and nothing owed in this period.",
                "C",
            )
        for block in st.currencies:
            self._currency(block)
        return bytes(pdf.output())

    def _header(self) -> None:
        pdf, st = self.pdf, self.st
        top = pdf.t_margin
        pdf.use_font(20, "B", _ACCENT)
        pdf.put(pdf.l_margin, top, pdf.epw * 0.6, 10, TITLE)
        facts = [
            ("Customer", st.customer_name or st.customer_id),
            ("Customer id", st.customer_id),
            ("Period", f"{format_date(st.from_date)} - {format_date(st.to_date)}"),
        ]
        y = top + 13
        for label, value in facts:
            pdf.use_font(_BODY_PT + 0.5, "", _MUTED)
            pdf.put(pdf.l_margin, y, 28, 5.2, label)
            pdf.use_font(_BODY_PT + 0.5, "B")
            pdf.put(pdf.l_margin + 28, y, pdf.epw - 28, 5.2, value)
            y += 5.2
        pdf.hrule(y + 3, _ACCENT, 0.5)
        pdf.set_y(y + 8)

    def _columns(self) -> list[_Column]:
        fixed = [
            _Column("Date", 22, "L"),
            _Column("Reference", 30, "L"),
            _Column("Debit", 25, "R"),
            _Column("Credit", 25, "R"),
            _Column("Balance", 27, "R"),
        ]
        description = _Column("Description", self.pdf.epw - sum(c.width for c in fixed), "L")
        return [fixed[0], fixed[1], description, *fixed[2:]]

    def _room(self, height: float, columns: Sequence[_Column] | None = None) -> None:
        """A new page (with the table header again) when `height` does not fit."""
        pdf = self.pdf
        if pdf.get_y() + height > pdf.bottom:
            pdf.add_page()
            if columns is not None:
                self._table_header(columns)

    def _table_header(self, columns: Sequence[_Column]) -> None:
        pdf = self.pdf
        y = pdf.get_y()
        pdf.set_fill_color(*_ACCENT)
        pdf.rect(pdf.l_margin, y, pdf.epw, _HEADER_H, style="F")
        pdf.use_font(_BODY_PT - 0.5, "B", _WHITE)
        x = pdf.l_margin
        for col in columns:
            pdf.put(x, y, col.width, _HEADER_H, col.title, col.align)
            x += col.width
        pdf.set_y(y + _HEADER_H)

    def _row(
        self,
        columns: Sequence[_Column],
        cells: Sequence[str],
        *,
        zebra: bool = False,
        bold: bool = False,
        fill: _RGB | None = None,
    ) -> None:
        self._room(_ROW_H, columns)
        pdf = self.pdf
        y = pdf.get_y()
        colour = fill or (_ZEBRA if zebra else None)
        if colour is not None:
            pdf.set_fill_color(*colour)
            pdf.rect(pdf.l_margin, y, pdf.epw, _ROW_H, style="F")
        x = pdf.l_margin
        for col, value in zip(columns, cells, strict=True):
            pdf.use_font(_BODY_PT, "B" if bold else "")
            pdf.put(x, y + 0.3, col.width, _ROW_H - 0.6, value, col.align, exact=col.align == "R")
            x += col.width
        pdf.set_y(y + _ROW_H)

    def _currency(self, c: CurrencyStatement) -> None:
        pdf, cur = self.pdf, c.currency
        columns = self._columns()
        self._room(12 + _HEADER_H + 2 * _ROW_H)
        pdf.set_y(pdf.get_y() + 2)
        pdf.use_font(12, "B", _ACCENT)
        pdf.put(pdf.l_margin, pdf.get_y(), pdf.epw, 7, f"Account in {cur}")
        pdf.set_y(pdf.get_y() + 8)
        self._table_header(columns)
        start = format_date(self.st.from_date)
        self._row(
            columns,
            [start, "", "Opening balance", "", "", format_money(c.opening_balance, cur)],
            bold=True,
            fill=_ACCENT_LIGHT,
        )
        for i, line in enumerate(c.lines):
            self._row(
                columns,
                [
                    format_date(line.date),
                    line.reference or "",
                    line.description,
                    format_money(line.debit, cur) if line.debit else "",
                    format_money(line.credit, cur) if line.credit else "",
                    format_money(line.balance, cur),
                ],
                zebra=i % 2 == 1,
            )
        if not c.lines:
            self._row(columns, ["", "", "No transactions in this period.", "", "", ""])
        self._row(
            columns,
            [
                format_date(self.st.to_date),
                "",
                "Closing balance",
                format_money(c.debits, cur),
                format_money(c.credits, cur),
                format_money(c.closing_balance, cur),
            ],
            bold=True,
            fill=_ACCENT_LIGHT,
        )
        pdf.hrule(pdf.get_y(), _ACCENT, 0.4)
        pdf.set_y(pdf.get_y() + 4)
        self._aging(c)

    def _aging(self, c: CurrencyStatement) -> None:
        pdf = self.pdf
        keys = list(c.aging)
        width = pdf.epw / max(len(keys), 1)
        self._room(5 + 2 * _ROW_H)
        pdf.use_font(_BODY_PT, "B", _ACCENT)
        pdf.put(
            pdf.l_margin,
            pdf.get_y(),
            pdf.epw,
            5,
            f"Aging on {format_date(self.st.to_date)} ({c.currency})",
        )
        y = pdf.get_y() + 5.5
        for i, key in enumerate(keys):
            x = pdf.l_margin + i * width
            pdf.use_font(_BODY_PT - 0.5, "B", _MUTED)
            pdf.put(x, y, width, _ROW_H, key.replace("_", " "), "R")
            pdf.use_font(_BODY_PT)
            pdf.put(
                x,
                y + _ROW_H,
                width,
                _ROW_H,
                format_money(c.aging[key], c.currency),
                "R",
                exact=True,
            )
        pdf.set_y(y + 2 * _ROW_H + 6)
