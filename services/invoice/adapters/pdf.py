"""Invoice PDF rendering: a pure function from a view model to PDF bytes.

The renderer draws an A4 document with fpdf2 and the PDF core fonts (Helvetica), so
nothing is embedded and no font file is read. Core fonts only cover a single-byte
encoding; we use Windows-1252 (WinAnsi, which fpdf2 declares for core fonts), a
superset of Latin-1 that also has "€", "—" and typographic quotes. Every string is
passed through :func:`pdf_safe_text` first, which transliterates what it can (e.g.
"ő" -> "o", "ﬁ" -> "fi") and replaces anything else (CJK, emoji) with "?" instead of
letting fpdf2 raise.

Output is reproducible: the PDF creation date comes from the issue date (midnight
UTC) and fpdf2 derives the file /ID from the content, so the same view always
renders the same bytes.

Layout, top to bottom: seller block and document title with number, dates and a
status badge; bill-to block with an "amount due" box and the PO reference; the
line-items table (wrapping descriptions, right-aligned numbers, zebra rows, header
repeated after every page break); the totals block with payment terms, instalment
schedule and accepted payment methods beside it; notes; and a footer with
"Page X of Y" on every page. Drafts carry a diagonal "DRAFT" watermark and void
documents a "VOID" one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from shared.money import Money
from shared.pdf import (
    ACCENT,
    ACCENT_LIGHT,
    CELL_PAD_X,
    FONT,
    MUTED,
    RULE,
    TEXT,
    WHITE,
    ZEBRA,
    FittedTextDocument,
    Rgb,
    format_date,
    format_money,
    pdf_safe_text,
)

__all__ = [
    "InstallmentView",
    "InvoicePdfView",
    "LineView",
    "PartyView",
    "format_date",
    "format_decimal",
    "format_money",
    "pdf_safe_text",
    "render_invoice_pdf",
]


# ------------------------------------------------------------------------- views


@dataclass(frozen=True)
class PartyView:
    """A seller or buyer as printed on the document."""

    name: str
    address_lines: list[str]
    tax_id: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class LineView:
    """One invoice line. ``discount_percent`` is a percentage (``10`` means 10 %)."""

    description: str
    quantity: Decimal
    unit_price: Money
    discount_percent: Decimal
    tax_codes: list[str]
    net: Money


@dataclass(frozen=True)
class InstallmentView:
    """One instalment of the payment schedule."""

    due_date: date
    amount: Money


@dataclass(frozen=True)
class InvoicePdfView:
    """Everything printed on an invoice, credit note or debit note.

    ``tax_rates`` holds percentages keyed like ``tax_by_code`` (``20`` means 20 %).
    ``number`` is ``None`` for a draft, which is then watermarked "DRAFT"; a
    ``status`` of ``"void"`` is watermarked "VOID".
    """

    kind: str
    number: str | None
    issue_date: date | None
    due_date: date | None
    seller: PartyView
    buyer: PartyView
    currency: str
    lines: list[LineView]
    subtotal: Money
    discount_total: Money
    tax_by_code: dict[str, Money]
    tax_rates: dict[str, Decimal]
    total: Money
    paid: Money
    credited: Money
    open_amount: Money
    terms_text: str
    installments: list[InstallmentView]
    accepted_payment_methods: list[str]
    po_reference: str | None
    notes: str | None
    status: str


# ---------------------------------------------------------------------- text helpers


def _format_negated(amount: Money, *, with_currency: bool = True) -> str:
    """A deduction shown with a leading minus sign (``-12.00 EUR``)."""
    return format_money(-amount, with_currency=with_currency)


def format_decimal(value: Decimal) -> str:
    """A quantity or percentage without trailing zeros: ``1,000``, ``2.5``, ``19``."""
    if value.is_zero():
        return "0"
    return f"{value.normalize():,f}"


# ----------------------------------------------------------------------- styling

_STATUS_COLOURS: Final[dict[str, Rgb]] = {
    "draft": (108, 117, 125),
    "issued": (37, 99, 170),
    "partially_paid": (196, 122, 0),
    "paid": (34, 139, 74),
    "void": (190, 40, 40),
    "written_off": (90, 70, 140),
}

_BOTTOM: Final = 20.0  # space reserved for the footer
_BODY_PT: Final = 9.0
_LINE_H: Final = 4.4  # line height for 9 pt text
_SMALL_PT: Final = 8.0
_ROW_PAD_Y: Final = 1.5
_TABLE_HEADER_H: Final = 7.0
#: Where content starts on pages 2+, below the running header.
_CONTINUATION_TOP: Final = 21.0

#: Reproducible creation date for documents without an issue date (drafts).
_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Column:
    title: str
    width: float
    align: str  # "L" or "R"


@dataclass
class _Op:
    """A piece of vertical flow: its height and how to draw it at (x, y) in width w."""

    height: float
    draw: Callable[[float, float, float], None]
    keep_with_next: bool = False


@dataclass
class _RunningHeader:
    title: str
    seller: str
    reference: str
    total_pages: int | None


@dataclass
class _Watermark:
    text: str
    colour: Rgb


# ------------------------------------------------------------------------ document


class _InvoiceDocument(FittedTextDocument):
    """The running header, the footer and the watermark of an invoice."""

    def __init__(self, running: _RunningHeader, watermark: _Watermark | None) -> None:
        super().__init__()
        self.running = running
        self.watermark = watermark
        self.set_auto_page_break(auto=True, margin=_BOTTOM)

    # -- drawing helpers

    def wrap(self, text: str, width: float) -> list[str]:
        """Greedy word wrap to ``width`` mm with the current font (cell margins included).

        Explicit newlines are honoured; a word longer than a line is broken by
        characters. Returns at least one (possibly empty) line.
        """
        available = width - 2 * self.c_margin
        lines: list[str] = []
        for paragraph in pdf_safe_text(text, multiline=True).split("\n"):
            current = ""
            for word in paragraph.split(" "):
                if not word:
                    continue
                candidate = f"{current} {word}" if current else word
                if self.text_width(candidate) <= available:
                    current = candidate
                    continue
                if current:
                    lines.append(current)
                    current = ""
                while self.text_width(word) > available and len(word) > 1:
                    cut = len(word) - 1
                    while cut > 1 and self.text_width(word[:cut]) > available:
                        cut -= 1
                    lines.append(word[:cut])
                    word = word[cut:]
                current = word
            lines.append(current)
        return lines or [""]

    def hrule(self, x: float, y: float, w: float, colour: Rgb = RULE, width: float = 0.2) -> None:
        self.set_draw_color(*colour)
        self.set_line_width(width)
        self.line(x, y, x + w, y)

    @property
    def content_bottom(self) -> float:
        return float(self.page_break_trigger)

    # -- page furniture

    def header(self) -> None:
        if self.page_no() == 1:
            return
        r = self.running
        top = 10.0
        self.use_font(_SMALL_PT, "B")
        self.put_fitted(self.l_margin, top, self.epw / 2, 5, r.seller)
        self.use_font(_SMALL_PT, "", MUTED)
        self.put_fitted(
            self.l_margin + self.epw / 2, top, self.epw / 2, 5, f"{r.title} {r.reference}", "R"
        )
        self.hrule(self.l_margin, top + 6.5, self.epw)
        self.set_y(_CONTINUATION_TOP)

    def footer(self) -> None:
        if self.watermark is not None:
            self._draw_watermark(self.watermark)
        r = self.running
        y = self.h - 13
        self.hrule(self.l_margin, y - 1.5, self.epw)
        self.use_font(7.5, "", MUTED)
        self.put_fitted(
            self.l_margin, y, self.epw * 0.7, 5, f"{r.title} {r.reference} \u00b7 {r.seller}"
        )
        # The total is known on the second pass (see render_invoice_pdf); printing it
        # directly rather than through fpdf2's "{nb}" alias keeps "Page X of Y" one
        # text run, which text extraction and the tests rely on.
        total = r.total_pages if r.total_pages is not None else self.page_no()
        self.put_fitted(
            self.l_margin + self.epw * 0.7,
            y,
            self.epw * 0.3,
            5,
            f"Page {self.page_no()} of {total}",
            "R",
        )

    def _draw_watermark(self, mark: _Watermark) -> None:
        size = 110.0
        cx, cy = self.w / 2, self.h / 2
        with self.local_context(fill_opacity=0.10):
            self.set_font(FONT, "B", size)
            self.set_text_color(*mark.colour)
            width = self.text_width(mark.text)
            cap_height = size * 0.718 / self.k  # Helvetica cap height in mm
            with self.rotation(angle=55, x=cx, y=cy):
                self.text(cx - width / 2, cy + cap_height / 2, mark.text)


# -------------------------------------------------------------------------- render


def render_invoice_pdf(view: InvoicePdfView, *, compress: bool = True) -> bytes:
    """Render ``view`` as an A4 PDF and return its bytes.

    Pure: no file or network I/O, and the same view renders identical bytes.
    ``compress=False`` leaves page content streams uncompressed so tests (and
    humans with a text editor) can find the printed text in the raw bytes.
    """
    # Two passes: the first only counts pages (the footer's width does not depend on
    # the total, so the second pass lays out exactly the same pages).
    first = _Renderer(view, compress=compress, total_pages=None)
    first.layout()
    return _Renderer(view, compress=compress, total_pages=first.pdf.pages_count).render()


class _Renderer:
    def __init__(self, view: InvoicePdfView, *, compress: bool, total_pages: int | None) -> None:
        self.view = view
        self.title = pdf_safe_text(view.kind.strip().upper() or "INVOICE")
        self.reference = view.number if view.number is not None else "DRAFT"
        watermark: _Watermark | None = None
        if view.status.lower() == "void":
            watermark = _Watermark("VOID", (190, 40, 40))
        elif view.number is None:
            watermark = _Watermark("DRAFT", (90, 90, 90))
        self.pdf = _InvoiceDocument(
            _RunningHeader(
                title=self.title,
                seller=view.seller.name,
                reference=self.reference,
                total_pages=total_pages,
            ),
            watermark,
        )
        self.pdf.set_compression(compress)

    # ---------------------------------------------------------------- top level

    def render(self) -> bytes:
        self.layout()
        return bytes(self.pdf.output())

    def layout(self) -> None:
        pdf, view = self.pdf, self.view
        pdf.set_title(f"{self.title.title()} {self.reference}")
        pdf.set_author(view.seller.name)
        pdf.set_subject(f"{self.title.title()} {self.reference} for {view.buyer.name}")
        pdf.set_creator("Ledgerline")
        pdf.set_producer("Ledgerline invoice renderer (fpdf2)")
        issued = view.issue_date
        pdf.set_creation_date(
            datetime(issued.year, issued.month, issued.day, tzinfo=UTC) if issued else _EPOCH
        )
        pdf.add_page()
        self._header()
        self._parties()
        self._lines_table()
        self._totals_and_terms()
        self._notes()

    # ----------------------------------------------------------------- header

    def _header(self) -> None:
        pdf, view = self.pdf, self.view
        left_w = pdf.epw * 0.55
        right_w = 78.0
        right_x = pdf.l_margin + pdf.epw - right_w
        top = pdf.t_margin

        # Seller block, left.
        y = top
        pdf.use_font(14, "B", ACCENT)
        for line in pdf.wrap(view.seller.name, left_w):
            pdf.put_fitted(pdf.l_margin, y, left_w, 6.5, line)
            y += 6.5
        y += 0.8
        pdf.use_font(_BODY_PT, "", MUTED)
        for line in self._party_detail_lines(view.seller):
            for wrapped in pdf.wrap(line, left_w):
                pdf.put_fitted(pdf.l_margin, y, left_w, _LINE_H, wrapped)
                y += _LINE_H
        left_end = y

        # Title and document facts, right.
        y = top - 1
        pdf.use_font(22, "B", ACCENT)
        pdf.put_fitted(right_x, y, right_w, 10, self.title, "R")
        y += 12
        label_w = 30.0
        facts = [
            ("Number", view.number if view.number is not None else "Draft"),
            ("Issue date", format_date(view.issue_date)),
            ("Due date", format_date(view.due_date)),
        ]
        for label, value in facts:
            pdf.use_font(_BODY_PT, "", MUTED)
            pdf.put_fitted(right_x, y, label_w, 5, label)
            pdf.use_font(_BODY_PT, "B")
            pdf.put_fitted(right_x + label_w, y, right_w - label_w, 5, value, "R", exact=True)
            y += 5
        pdf.use_font(_BODY_PT, "", MUTED)
        pdf.put_fitted(right_x, y + 0.6, label_w, 5, "Status")
        self._status_badge(right_x + right_w, y + 0.6)
        right_end = y + 7

        bottom = max(left_end, right_end) + 4
        pdf.hrule(pdf.l_margin, bottom, pdf.epw, ACCENT, 0.5)
        pdf.set_y(bottom + 6)

    def _status_badge(self, right_edge: float, y: float) -> None:
        pdf = self.pdf
        status = self.view.status.strip().lower()
        colour = _STATUS_COLOURS.get(status, MUTED)
        label = pdf_safe_text(status.replace("_", " ").upper() or "UNKNOWN")
        pdf.use_font(7.5, "B", WHITE)
        w = pdf.text_width(label) + 5
        x = right_edge - w - CELL_PAD_X
        pdf.set_fill_color(*colour)
        pdf.rect(x, y + 0.4, w, 4.4, style="F", round_corners=True, corner_radius=1.4)
        pdf.set_xy(x, y + 0.4)
        pdf.cell(w, 4.4, label, align="C")

    @staticmethod
    def _party_detail_lines(party: PartyView) -> list[str]:
        lines = [line for line in party.address_lines if line.strip()]
        if party.tax_id:
            lines.append(f"Tax ID: {party.tax_id}")
        if party.email:
            lines.append(party.email)
        return lines

    # ---------------------------------------------------------------- parties

    def _parties(self) -> None:
        pdf, view = self.pdf, self.view
        top = pdf.get_y()
        left_w = pdf.epw * 0.55

        y = top
        pdf.use_font(7.5, "B", MUTED)
        pdf.put_fitted(pdf.l_margin, y, left_w, 4, "BILL TO")
        y += 5
        pdf.use_font(11, "B")
        for line in pdf.wrap(view.buyer.name, left_w):
            pdf.put_fitted(pdf.l_margin, y, left_w, 5.5, line)
            y += 5.5
        pdf.use_font(_BODY_PT, "", TEXT)
        for line in self._party_detail_lines(view.buyer):
            for wrapped in pdf.wrap(line, left_w):
                pdf.put_fitted(pdf.l_margin, y, left_w, _LINE_H, wrapped)
                y += _LINE_H
        if view.po_reference:
            y += 2
            pdf.use_font(_BODY_PT, "B", MUTED)
            label = "PO reference:"
            label_w = pdf.text_width(label) + 2 * CELL_PAD_X
            pdf.put_fitted(pdf.l_margin, y, label_w, _LINE_H, label)
            pdf.use_font(_BODY_PT, "B")
            pdf.put_fitted(
                pdf.l_margin + label_w - 1, y, left_w - label_w, _LINE_H, view.po_reference
            )
            y += _LINE_H

        # Amount-due box, right.
        box_w = 78.0
        box_x = pdf.l_margin + pdf.epw - box_w
        is_credit = "CREDIT" in self.title
        label = "CREDIT TOTAL" if is_credit else "AMOUNT DUE"
        amount = view.total if is_credit else view.open_amount
        sub = (
            f"Issued {format_date(view.issue_date)}"
            if is_credit
            else f"Due {format_date(view.due_date)}"
        )
        box_h = 22.0
        pdf.set_fill_color(*ACCENT_LIGHT)
        pdf.rect(box_x, top, box_w, box_h, style="F")
        pdf.set_fill_color(*ACCENT)
        pdf.rect(box_x, top, 1.4, box_h, style="F")
        pdf.use_font(7.5, "B", MUTED)
        pdf.put_fitted(box_x + 3, top + 2.5, box_w - 5, 4, label, "R")
        pdf.use_font(16, "B", ACCENT)
        pdf.put_fitted(box_x + 3, top + 7, box_w - 5, 8, format_money(amount), "R", exact=True)
        pdf.use_font(_SMALL_PT, "", MUTED)
        pdf.put_fitted(box_x + 3, top + 15.5, box_w - 5, 4, sub, "R")

        pdf.set_y(max(y, top + box_h) + 8)

    # ------------------------------------------------------------- line items

    def _columns(self) -> list[_Column]:
        fixed = [
            _Column("#", 8, "R"),
            _Column("Qty", 16, "R"),
            _Column("Unit price", 24, "R"),
            _Column("Disc.", 14, "R"),
            _Column("Tax", 22, "L"),
            _Column(f"Net ({pdf_safe_text(self.view.currency)})", 28, "R"),
        ]
        desc_w = self.pdf.epw - sum(c.width for c in fixed)
        return [fixed[0], _Column("Description", desc_w, "L"), *fixed[1:]]

    def _table_header(self, columns: Sequence[_Column]) -> None:
        pdf = self.pdf
        y = pdf.get_y()
        h = _TABLE_HEADER_H
        pdf.set_fill_color(*ACCENT)
        pdf.rect(pdf.l_margin, y, pdf.epw, h, style="F")
        pdf.use_font(_SMALL_PT, "B", WHITE)
        x = pdf.l_margin
        for col in columns:
            pdf.put_fitted(x, y, col.width, h, col.title, col.align)
            x += col.width
        pdf.set_y(y + h)

    def _lines_table(self) -> None:
        pdf, view = self.pdf, self.view
        columns = self._columns()
        self._table_header(columns)
        if not view.lines:
            pdf.use_font(_BODY_PT, "I", MUTED)
            y = pdf.get_y()
            pdf.put_fitted(pdf.l_margin, y + 1, pdf.epw, 7, "No line items.", "C")
            pdf.set_y(y + 9)
        for index, line in enumerate(view.lines):
            self._line_row(columns, index, line)
        pdf.hrule(pdf.l_margin, pdf.get_y(), pdf.epw, ACCENT, 0.4)
        pdf.set_y(pdf.get_y() + 6)

    def _line_row(self, columns: Sequence[_Column], index: int, line: LineView) -> None:
        pdf = self.pdf
        pdf.use_font(_BODY_PT)
        desc_col, tax_col = columns[1], columns[5]
        desc_lines = pdf.wrap(line.description, desc_col.width)
        tax_lines = pdf.wrap(", ".join(line.tax_codes), tax_col.width)
        discount = (
            "" if line.discount_percent.is_zero() else f"{format_decimal(line.discount_percent)}%"
        )
        singles = [
            str(index + 1),
            None,
            format_decimal(line.quantity),
            format_money(line.unit_price, with_currency=False),
            discount,
            None,
            format_money(line.net, with_currency=False),
        ]
        n_lines = max(len(desc_lines), len(tax_lines))
        page_rows = int((pdf.content_bottom - (_CONTINUATION_TOP + _TABLE_HEADER_H)) // _LINE_H) - 1
        first = 0
        while first < n_lines:
            remaining = n_lines - first
            room = int((pdf.content_bottom - pdf.get_y() - 2 * _ROW_PAD_Y) // _LINE_H)
            if room < remaining and (remaining <= page_rows or room < 1):
                # Move the whole row (or what is left of it) to a fresh page.
                pdf.add_page()
                self._table_header(columns)
                continue
            count = min(room, remaining)
            self._draw_row_chunk(
                columns,
                index,
                desc_lines[first : first + count],
                tax_lines[first : first + count],
                singles if first == 0 else [None] * len(singles),
                count,
            )
            first += count

    def _draw_row_chunk(
        self,
        columns: Sequence[_Column],
        index: int,
        desc_lines: Sequence[str],
        tax_lines: Sequence[str],
        singles: Sequence[str | None],
        count: int,
    ) -> None:
        pdf = self.pdf
        y = pdf.get_y()
        h = count * _LINE_H + 2 * _ROW_PAD_Y
        if index % 2 == 1:
            pdf.set_fill_color(*ZEBRA)
            pdf.rect(pdf.l_margin, y, pdf.epw, h, style="F")
        x = pdf.l_margin
        for col_index, col in enumerate(columns):
            text_lines: Sequence[str]
            if col_index == 1:
                text_lines = desc_lines
            elif col_index == 5:
                text_lines = tax_lines
            else:
                single = singles[col_index]
                text_lines = [single] if single is not None else []
            colour = MUTED if col_index in (0, 5) else TEXT
            pdf.use_font(_BODY_PT, "", colour)
            for i, text in enumerate(text_lines):
                pdf.put_fitted(
                    x,
                    y + _ROW_PAD_Y + i * _LINE_H,
                    col.width,
                    _LINE_H,
                    text,
                    col.align,
                    exact=col.align == "R",
                )
            x += col.width
        pdf.hrule(pdf.l_margin, y + h, pdf.epw, (232, 235, 238), 0.15)
        pdf.set_y(y + h)

    # --------------------------------------------------------- totals & terms

    def _totals_ops(self) -> list[_Op]:
        view = self.view
        rows: list[tuple[str, str, str]] = [("Subtotal", format_money(view.subtotal), "")]
        if not view.discount_total.is_zero():
            rows.append(("Discount", _format_negated(abs(view.discount_total)), ""))
        for code, amount in view.tax_by_code.items():
            rate = view.tax_rates.get(code)
            label = f"{code} ({format_decimal(rate)}%)" if rate is not None else code
            rows.append((label, format_money(amount), ""))
        rows.append(("Total", format_money(view.total), "total"))
        if not view.paid.is_zero():
            rows.append(("Paid", _format_negated(view.paid), ""))
        if not view.credited.is_zero():
            rows.append(("Credited", _format_negated(view.credited), ""))
        rows.append(("Amount due", format_money(view.open_amount), "due"))

        ops: list[_Op] = []
        for label, value, kind in rows:
            ops.append(self._totals_row(label, value, kind))
        return ops

    def _totals_row(self, label: str, value: str, kind: str) -> _Op:
        pdf = self.pdf
        row_h = 5.6
        height = row_h + (2.0 if kind else 0.0)

        def draw(x: float, y: float, w: float) -> None:
            label_w = w * 0.5
            if kind == "total":
                pdf.hrule(x, y + 0.6, w, RULE, 0.3)
                y += 1.6
                pdf.use_font(_BODY_PT + 0.5, "B")
            elif kind == "due":
                y += 1.2
                pdf.set_fill_color(*ACCENT)
                pdf.rect(x, y, w, row_h + 0.6, style="F")
                pdf.use_font(_BODY_PT + 1.5, "B", WHITE)
            else:
                pdf.use_font(_BODY_PT, "", MUTED)
            pdf.put_fitted(x, y + 0.3, label_w, row_h, label)
            if not kind:
                pdf.use_font(_BODY_PT, "", TEXT)
            pdf.put_fitted(x + label_w, y + 0.3, w - label_w, row_h, value, "R", exact=True)

        return _Op(height, draw)

    def _terms_ops(self, width: float) -> list[_Op]:
        view = self.view
        ops: list[_Op] = []
        terms = view.terms_text.strip()
        if terms or view.due_date:
            ops.append(self._heading_op("Payment terms"))
            text = terms
            if view.due_date is not None and "CREDIT" not in self.title:
                due = f"Payment due by {format_date(view.due_date)}."
                text = f"{terms}. {due}" if terms and not terms.endswith(".") else f"{terms} {due}"
            ops.extend(self._paragraph_ops(text.strip(), width))
        if len(view.installments) > 1:
            ops.append(self._spacer(2.5))
            ops.append(self._heading_op("Instalment schedule"))
            ops.extend(self._installment_ops())
        methods = [m for m in view.accepted_payment_methods if m.strip()]
        if methods:
            ops.append(self._spacer(2.5))
            ops.append(self._heading_op("Accepted payment methods"))
            ops.extend(self._paragraph_ops(", ".join(methods), width))
        return ops

    def _heading_op(self, title: str) -> _Op:
        pdf = self.pdf

        def draw(x: float, y: float, w: float) -> None:
            pdf.use_font(7.5, "B", ACCENT)
            pdf.put_fitted(x, y, w, 4.5, title.upper())

        return _Op(5.5, draw, keep_with_next=True)

    def _spacer(self, height: float) -> _Op:
        return _Op(height, lambda x, y, w: None)

    def _paragraph_ops(self, text: str, width: float, size: float = _BODY_PT) -> list[_Op]:
        pdf = self.pdf
        pdf.use_font(size)
        ops: list[_Op] = []
        for line in pdf.wrap(text, width):

            def draw(x: float, y: float, w: float, line: str = line) -> None:
                pdf.use_font(size)
                pdf.put_fitted(x, y, w, _LINE_H, line)

            ops.append(_Op(_LINE_H, draw))
        return ops

    def _installment_ops(self) -> list[_Op]:
        pdf = self.pdf
        ops: list[_Op] = []

        def header(x: float, y: float, w: float) -> None:
            pdf.use_font(7.5, "B", MUTED)
            pdf.put_fitted(x, y, 8, 4.5, "#", "R")
            pdf.put_fitted(x + 8, y, w * 0.4, 4.5, "Due date")
            pdf.put_fitted(x + 8 + w * 0.4, y, w - 8 - w * 0.4, 4.5, "Amount", "R")
            pdf.hrule(x, y + 5, w)

        ops.append(_Op(5.5, header, keep_with_next=True))
        for i, inst in enumerate(self.view.installments):

            def draw(
                x: float, y: float, w: float, i: int = i, inst: InstallmentView = inst
            ) -> None:
                if i % 2 == 1:
                    pdf.set_fill_color(*ZEBRA)
                    pdf.rect(x, y, w, _LINE_H + 0.6, style="F")
                pdf.use_font(_BODY_PT, "", MUTED)
                pdf.put_fitted(x, y + 0.3, 8, _LINE_H, str(i + 1), "R", exact=True)
                pdf.use_font(_BODY_PT)
                pdf.put_fitted(x + 8, y + 0.3, w * 0.4, _LINE_H, format_date(inst.due_date))
                pdf.put_fitted(
                    x + 8 + w * 0.4,
                    y + 0.3,
                    w - 8 - w * 0.4,
                    _LINE_H,
                    format_money(inst.amount),
                    "R",
                    exact=True,
                )

            ops.append(_Op(_LINE_H + 0.6, draw))
        return ops

    def _totals_and_terms(self) -> None:
        pdf = self.pdf
        gap = 10.0
        totals_w = 82.0
        terms_w = pdf.epw - totals_w - gap
        totals = self._totals_ops()
        terms = self._terms_ops(terms_w)
        totals_h = sum(op.height for op in totals)
        terms_h = sum(op.height for op in terms)
        fresh_page_room = pdf.content_bottom - _CONTINUATION_TOP
        block_h = max(totals_h, terms_h)
        totals_x = pdf.l_margin + pdf.epw - totals_w

        if block_h <= fresh_page_room:
            # Side by side: terms on the left, totals on the right, kept on one page.
            if pdf.get_y() + block_h > pdf.content_bottom:
                pdf.add_page()
            top = pdf.get_y()
            self._draw_ops(totals, totals_x, top, totals_w)
            self._draw_ops(terms, pdf.l_margin, top, terms_w)
            pdf.set_y(top + block_h + 8)
            return

        # Too tall for one page (a very long instalment schedule): stack and flow.
        if pdf.get_y() + totals_h > pdf.content_bottom:
            pdf.add_page()
        top = pdf.get_y()
        self._draw_ops(totals, totals_x, top, totals_w)
        pdf.set_y(top + totals_h + 6)
        stacked_w = min(pdf.epw, 110.0)
        self._flow(self._terms_ops(stacked_w), pdf.l_margin, stacked_w)
        pdf.set_y(pdf.get_y() + 8)

    @staticmethod
    def _draw_ops(ops: Sequence[_Op], x: float, y: float, w: float) -> None:
        for op in ops:
            op.draw(x, y, w)
            y += op.height

    def _flow(self, ops: Sequence[_Op], x: float, w: float) -> None:
        """Draw ops top to bottom, breaking pages between them (headings stay with text)."""
        pdf = self.pdf
        for i, op in enumerate(ops):
            needed = op.height
            if op.keep_with_next and i + 1 < len(ops):
                needed += ops[i + 1].height
            if pdf.get_y() + needed > pdf.content_bottom:
                pdf.add_page()
            y = pdf.get_y()
            op.draw(x, y, w)
            pdf.set_y(y + op.height)

    # ----------------------------------------------------------------- notes

    def _notes(self) -> None:
        notes = (self.view.notes or "").strip()
        if not notes:
            return
        pdf = self.pdf
        ops = [self._heading_op("Notes"), *self._paragraph_ops(notes, pdf.epw)]
        self._flow(ops, pdf.l_margin, pdf.epw)
