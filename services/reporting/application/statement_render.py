"""A statement of account as CSV and as PDF: pure functions from a `Statement` to bytes/text.

The PDF is drawn like the invoice service's (both build on `shared.pdf`): fpdf2 with the
Helvetica core font in Windows-1252, every string made printable first (never an encoding error
on a customer's name), numbers right-aligned and shrunk rather than cut, and a reproducible
document (creation date from the period's end, so the same statement renders the same bytes).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from services.reporting.domain.statement import CurrencyStatement, Statement
from shared.money import Money
from shared.pdf import (
    ACCENT,
    ACCENT_LIGHT,
    MUTED,
    RULE,
    SPACES,
    WHITE,
    ZEBRA,
    FittedTextDocument,
    Rgb,
    TextRules,
    format_date,
)
from shared.pdf import format_money as shared_format_money
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


# ---- PDF ----------------------------------------------------------------------------------------

#: The statement's own rules for every string it draws: no-break spaces print as plain
#: spaces, every format character (not only the zero-width ones) is dropped, there is no
#: transliteration table (NFKD or "?" only), and each of "\r" and "\n" becomes a space.
_TEXT_RULES: Final = TextRules(
    spaces=SPACES | {"\u00a0"},
    dropped=frozenset(),
    transliterations={},
    dropped_categories=frozenset({"Cc", "Cf"}),
    fold_crlf=False,
)


def format_money(amount: int, currency: str) -> str:
    """1,234.50 with the currency's decimals."""
    return shared_format_money(Money.of_minor(amount, currency), with_currency=False)


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


class _StatementDocument(FittedTextDocument):
    """A4 portrait with a footer naming the statement and the page."""

    shrink_floor = 0.75
    text_rules = _TEXT_RULES

    def __init__(self, footer_text: str) -> None:
        super().__init__()
        self.footer_text = footer_text
        self.set_auto_page_break(auto=False)

    def hrule(self, y: float, colour: Rgb = RULE, width: float = 0.2) -> None:
        self.set_draw_color(*colour)
        self.set_line_width(width)
        self.line(self.l_margin, y, self.l_margin + self.epw, y)

    @property
    def bottom(self) -> float:
        return self.h - _BOTTOM

    def footer(self) -> None:
        y = self.h - 13
        self.hrule(y - 1.5)
        self.use_font(7.5, "", MUTED)
        self.put_fitted(self.l_margin, y, self.epw * 0.7, 5, self.footer_text)
        self.put_fitted(
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
            pdf.use_font(_BODY_PT + 1, "I", MUTED)
            pdf.put_fitted(
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
        pdf.use_font(20, "B", ACCENT)
        pdf.put_fitted(pdf.l_margin, top, pdf.epw * 0.6, 10, TITLE)
        facts = [
            ("Customer", st.customer_name or st.customer_id),
            ("Customer id", st.customer_id),
            ("Period", f"{format_date(st.from_date)} - {format_date(st.to_date)}"),
        ]
        y = top + 13
        for label, value in facts:
            pdf.use_font(_BODY_PT + 0.5, "", MUTED)
            pdf.put_fitted(pdf.l_margin, y, 28, 5.2, label)
            pdf.use_font(_BODY_PT + 0.5, "B")
            pdf.put_fitted(pdf.l_margin + 28, y, pdf.epw - 28, 5.2, value)
            y += 5.2
        pdf.hrule(y + 3, ACCENT, 0.5)
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
        pdf.set_fill_color(*ACCENT)
        pdf.rect(pdf.l_margin, y, pdf.epw, _HEADER_H, style="F")
        pdf.use_font(_BODY_PT - 0.5, "B", WHITE)
        x = pdf.l_margin
        for col in columns:
            pdf.put_fitted(x, y, col.width, _HEADER_H, col.title, col.align)
            x += col.width
        pdf.set_y(y + _HEADER_H)

    def _row(
        self,
        columns: Sequence[_Column],
        cells: Sequence[str],
        *,
        zebra: bool = False,
        bold: bool = False,
        fill: Rgb | None = None,
    ) -> None:
        self._room(_ROW_H, columns)
        pdf = self.pdf
        y = pdf.get_y()
        colour = fill or (ZEBRA if zebra else None)
        if colour is not None:
            pdf.set_fill_color(*colour)
            pdf.rect(pdf.l_margin, y, pdf.epw, _ROW_H, style="F")
        x = pdf.l_margin
        for col, value in zip(columns, cells, strict=True):
            pdf.use_font(_BODY_PT, "B" if bold else "")
            pdf.put_fitted(
                x, y + 0.3, col.width, _ROW_H - 0.6, value, col.align, exact=col.align == "R"
            )
            x += col.width
        pdf.set_y(y + _ROW_H)

    def _currency(self, c: CurrencyStatement) -> None:
        pdf, cur = self.pdf, c.currency
        columns = self._columns()
        self._room(12 + _HEADER_H + 2 * _ROW_H)
        pdf.set_y(pdf.get_y() + 2)
        pdf.use_font(12, "B", ACCENT)
        pdf.put_fitted(pdf.l_margin, pdf.get_y(), pdf.epw, 7, f"Account in {cur}")
        pdf.set_y(pdf.get_y() + 8)
        self._table_header(columns)
        start = format_date(self.st.from_date)
        self._row(
            columns,
            [start, "", "Opening balance", "", "", format_money(c.opening_balance, cur)],
            bold=True,
            fill=ACCENT_LIGHT,
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
            fill=ACCENT_LIGHT,
        )
        pdf.hrule(pdf.get_y(), ACCENT, 0.4)
        pdf.set_y(pdf.get_y() + 4)
        self._aging(c)

    def _aging(self, c: CurrencyStatement) -> None:
        pdf = self.pdf
        keys = list(c.aging)
        width = pdf.epw / max(len(keys), 1)
        self._room(5 + 2 * _ROW_H)
        pdf.use_font(_BODY_PT, "B", ACCENT)
        pdf.put_fitted(
            pdf.l_margin,
            pdf.get_y(),
            pdf.epw,
            5,
            f"Aging on {format_date(self.st.to_date)} ({c.currency})",
        )
        y = pdf.get_y() + 5.5
        for i, key in enumerate(keys):
            x = pdf.l_margin + i * width
            pdf.use_font(_BODY_PT - 0.5, "B", MUTED)
            pdf.put_fitted(x, y, width, _ROW_H, key.replace("_", " "), "R")
            pdf.use_font(_BODY_PT)
            pdf.put_fitted(
                x,
                y + _ROW_H,
                width,
                _ROW_H,
                format_money(c.aging[key], c.currency),
                "R",
                exact=True,
            )
        pdf.set_y(y + 2 * _ROW_H + 6)
