"""What the services' PDF renderers (fpdf2, Helvetica core font) have in common.

Core fonts embed nothing and read no font file, but only cover a single-byte encoding:
Windows-1252 (WinAnsi, which fpdf2 declares for core fonts), a superset of Latin-1 that
also has "€", "—" and typographic quotes. :func:`pdf_safe_text` makes any string printable
in it (never an encoding error on a customer's name), and :class:`FittedTextDocument`
draws one line of text in a box, shrunk or ellipsised rather than overflowing. Also here:
the house palette and the locale-independent date and money formats.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import ClassVar, Final

from fpdf import FPDF
from fpdf.fonts import CoreFont

from shared.money import Money

__all__ = [
    "ACCENT",
    "ACCENT_LIGHT",
    "CORE_ENCODING",
    "DEFAULT_TEXT_RULES",
    "ELLIPSIS",
    "FONT",
    "MUTED",
    "RULE",
    "SPACES",
    "TEXT",
    "WHITE",
    "ZEBRA",
    "FittedTextDocument",
    "Rgb",
    "TextRules",
    "format_date",
    "format_money",
    "pdf_safe_text",
]

# ---------------------------------------------------------------------------- text

#: Single-byte encoding of the core fonts; fpdf2 declares them /WinAnsiEncoding.
CORE_ENCODING: Final = "cp1252"
REPLACEMENT: Final = "?"
ELLIPSIS: Final = "\u2026"
DASH: Final = "\u2014"

#: Characters outside cp1252 with an obvious plain equivalent (NFKD handles the rest).
TRANSLITERATIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2015": "\u2014",  # horizontal bar -> em dash
        "\u2212": "-",  # minus sign
        "\u2043": "-",  # hyphen bullet
        "\u2044": "/",  # fraction slash
        "\u2190": "<-",
        "\u2192": "->",
        "\u2194": "<->",
        "\u21d2": "=>",
        "\u2264": "<=",
        "\u2265": ">=",
        "\u2260": "!=",
        "\u2248": "~",
        "\u2116": "No.",
        "\u2032": "'",
        "\u2033": '"',
        "\u201b": "'",
        "\u201f": '"',
        "\u2027": "\u00b7",
        "\u2219": "\u00b7",
        "\u2713": "v",
        "\u2714": "v",
        "\u2715": "x",
        "\u2717": "x",
        "\u0141": "L",
        "\u0142": "l",
        "\u0110": "D",
        "\u0111": "d",
        "\u0131": "i",
        "\u0127": "h",
        "\u0126": "H",
        "\u1e9e": "SS",
    }
)

#: Tabs and the exotic spaces, printed as a plain space.
SPACES: Final = frozenset(
    "\t\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
#: Zero-width characters, dropped.
INVISIBLE: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff")


@dataclass(frozen=True)
class TextRules:
    """How :func:`pdf_safe_text` treats a character before the generic cp1252 fallback.

    In order: a line break ("\\r" or "\\n") is kept when multiline, else a space; one of
    ``spaces`` becomes a space; one of ``dropped`` goes; one of ``transliterations`` is
    replaced; a character of a Unicode category in ``dropped_categories`` goes.
    ``fold_crlf`` first turns "\\r\\n" and "\\r" into one "\\n" (else "\\r\\n" is two breaks).
    """

    spaces: frozenset[str] = SPACES
    dropped: frozenset[str] = INVISIBLE
    transliterations: Mapping[str, str] = field(default_factory=lambda: TRANSLITERATIONS)
    dropped_categories: frozenset[str] = frozenset({"Cc"})
    fold_crlf: bool = True


DEFAULT_TEXT_RULES: Final = TextRules()


def _encodable(ch: str) -> bool:
    try:
        ch.encode(CORE_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def pdf_safe_text(
    text: str, *, multiline: bool = False, rules: TextRules = DEFAULT_TEXT_RULES
) -> str:
    """Make ``text`` printable with the Windows-1252 core fonts, never raising.

    With the default rules exotic spaces become plain spaces, zero-width characters and
    control characters are dropped, line breaks are kept only when ``multiline`` (else
    they become spaces). A character outside cp1252 is transliterated (explicit table,
    then Unicode compatibility decomposition with combining marks removed, so "ő" -> "o",
    "ﬁ" -> "fi", full-width "\uff21" -> "A"); anything still unprintable becomes "?".
    """
    if rules.fold_crlf:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for ch in text:
        if ch in "\r\n":
            out.append("\n" if multiline else " ")
        elif ch in rules.spaces:
            out.append(" ")
        elif ch in rules.dropped:
            continue
        elif ch in rules.transliterations:
            out.append(rules.transliterations[ch])
        elif unicodedata.category(ch) in rules.dropped_categories:
            continue
        elif _encodable(ch):
            out.append(ch)
        else:
            decomposed = "".join(
                part
                for part in unicodedata.normalize("NFKD", ch)
                if not unicodedata.combining(part) and _encodable(part)
            )
            out.append(decomposed or REPLACEMENT)
    return "".join(out)


# ------------------------------------------------------------------------- formats

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


def format_money(amount: Money, *, with_currency: bool = True) -> str:
    """``1,234.50 EUR``: thousands separators and exactly the currency's decimals."""
    text = f"{amount.to_decimal():,.{amount.exponent}f}"
    return f"{text} {amount.currency}" if with_currency else text


def format_date(value: date | None) -> str:
    """``14 Mar 2025``: unambiguous and independent of the process locale; "—" for none."""
    if value is None:
        return DASH
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


# ------------------------------------------------------------------------ document

Rgb = tuple[int, int, int]

ACCENT: Final[Rgb] = (30, 58, 95)
ACCENT_LIGHT: Final[Rgb] = (234, 240, 247)
TEXT: Final[Rgb] = (33, 37, 41)
MUTED: Final[Rgb] = (108, 117, 125)
RULE: Final[Rgb] = (206, 212, 218)
ZEBRA: Final[Rgb] = (245, 247, 250)
WHITE: Final[Rgb] = (255, 255, 255)

FONT: Final = "Helvetica"
MARGIN: Final = 15.0  # left, right and top margin in mm
CELL_PAD_X: Final = 1.6


class FittedTextDocument(FPDF):
    """A4 portrait in mm with the core font in cp1252, drawing text fitted into boxes.

    Subclasses choose how far ordinary text may shrink before it is ellipsised
    (``shrink_floor``, a fraction of the font size) and the :class:`TextRules` applied
    to every string drawn (``text_rules``).
    """

    shrink_floor: ClassVar[float] = 0.7
    text_rules: ClassVar[TextRules] = DEFAULT_TEXT_RULES

    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.core_fonts_encoding = CORE_ENCODING
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.c_margin = CELL_PAD_X

    def use_font(self, size: float, style: str = "", colour: Rgb = TEXT) -> None:
        self.set_font(FONT, style, size)
        self.set_text_color(*colour)

    def text_width(self, text: str) -> float:
        """Width in mm of ``text`` in the current font.

        Core-font metrics are summed directly: ``get_string_width`` runs fpdf2's
        bidi/fragment machinery and dominated the render time of long documents.
        """
        font = self.current_font
        if isinstance(font, CoreFont):
            encoded = text.encode(CORE_ENCODING, "replace").decode("latin-1")
            return sum(font.cw[ch] for ch in encoded) * self.font_size_pt * 0.001 / self.k
        return float(self.get_string_width(text))

    def put_fitted(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        text: str,
        align: str = "L",
        *,
        exact: bool = False,
    ) -> None:
        """One line of text in a box, fitted rather than overflowing.

        Text is shrunk down to ``shrink_floor`` of the font size and then ellipsised.
        ``exact`` text (amounts, numbers, references) is never shortened: it shrinks
        further instead, down to 4 pt.
        """
        self.set_xy(x, y)
        text = pdf_safe_text(text, rules=self.text_rules)
        size = self.font_size_pt
        fitted = size
        floor = 4.0 if exact else size * self.shrink_floor
        available = w - 2 * self.c_margin
        while fitted - 0.25 >= floor and self.text_width(text) > available:
            fitted -= 0.25
            self.set_font_size(fitted)
        if not exact and self.text_width(text) > available:
            while len(text) > 1 and self.text_width(text + ELLIPSIS) > available:
                text = text[:-1]
            text = text.rstrip() + ELLIPSIS
        self.cell(w, h, text, align=align)
        if fitted != size:
            self.set_font_size(size)
