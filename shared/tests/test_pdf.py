"""The shared PDF helpers: text sanitising, formats and fitted text in a box.

With compression off the page content stream is plain text: each drawn string appears as
``(...) Tj`` in Windows-1252 bytes, after the ``/F1 <size> Tf`` that sets its font size.
"""

from __future__ import annotations

import re
from datetime import date

from shared.money import Money
from shared.pdf import (
    SPACES,
    FittedTextDocument,
    TextRules,
    format_date,
    format_money,
    pdf_safe_text,
)


def test_characters_outside_windows_1252_are_transliterated_or_replaced() -> None:
    assert pdf_safe_text("Zürich € “ok” …") == "Zürich € “ok” …"
    assert pdf_safe_text("Łódź Őrség ﬁle \uff21") == "Lódz Orség file A"
    assert pdf_safe_text("a\u2212b \u2192 c") == "a-b -> c"
    assert pdf_safe_text("東京 😀") == "?? ?"


def test_control_and_zero_width_characters_are_dropped_and_odd_spaces_made_plain() -> None:
    assert pdf_safe_text("x\u200by\x00z\x07") == "xyz"
    assert pdf_safe_text("a\tb\u2009c\u3000d") == "a b c d"
    assert pdf_safe_text("a\u00a0b") == "a\u00a0b"  # in cp1252: kept
    assert pdf_safe_text("a\u200eb") == "a?b"  # a format character not in the table


def test_line_breaks_are_kept_only_when_multiline() -> None:
    assert pdf_safe_text("one\r\ntwo\rthree\nfour") == "one two three four"
    assert pdf_safe_text("one\r\ntwo\rthree", multiline=True) == "one\ntwo\nthree"


def test_other_text_rules() -> None:
    rules = TextRules(
        spaces=SPACES | {"\u00a0"},
        dropped=frozenset(),
        transliterations={},
        dropped_categories=frozenset({"Cc", "Cf"}),
        fold_crlf=False,
    )
    assert pdf_safe_text("a\u00a0b\u200ec\u200bd", rules=rules) == "a bcd"
    assert pdf_safe_text("a\u2212b ő", rules=rules) == "a?b o"
    assert pdf_safe_text("one\r\ntwo", rules=rules) == "one  two"


def test_formats() -> None:
    assert format_money(Money.of_minor(123_456_789, "EUR")) == "1,234,567.89 EUR"
    assert format_money(Money.of_minor(-1_050, "EUR"), with_currency=False) == "-10.50"
    assert format_money(Money.of_minor(1_234, "JPY")) == "1,234 JPY"
    assert format_date(date(2025, 3, 14)) == "14 Mar 2025"
    assert format_date(None) == "\u2014"


def _drawn(doc: FittedTextDocument) -> list[tuple[str, bytes]]:
    """(font size, text) of every string drawn, in order."""
    out = bytes(doc.output())
    found = re.findall(rb"/F\d+ ([\d.]+) Tf|\((.*?)\) Tj", out)
    drawn: list[tuple[str, bytes]] = []
    size = ""
    for tf, text in found:
        if tf:
            size = tf.decode()
        else:
            drawn.append((size, text))
    return drawn


def _document() -> FittedTextDocument:
    doc = FittedTextDocument()
    doc.set_compression(False)
    doc.add_page()
    doc.use_font(10)
    return doc


def test_text_that_fits_is_drawn_as_it_is() -> None:
    doc = _document()
    doc.put_fitted(15, 20, 60, 5, "Fits \u2192 here")
    assert _drawn(doc) == [("10.00", b"Fits -> here")]


def test_long_text_shrinks_to_the_floor_then_is_ellipsised() -> None:
    doc = _document()
    doc.put_fitted(15, 20, 30, 5, "A rather long description that cannot fit")
    assert _drawn(doc) == [("7.00", b"A rather long descripti\x85")]
    assert doc.font_size_pt == 10  # restored after the box


def test_the_shrink_floor_is_the_subclass_choice() -> None:
    class Floor(FittedTextDocument):
        shrink_floor = 0.75

    doc = Floor()
    doc.set_compression(False)
    doc.add_page()
    doc.use_font(10)
    doc.put_fitted(15, 20, 30, 5, "A rather long description that cannot fit")
    [(size, text)] = _drawn(doc)
    assert size == "7.50" and text.endswith(b"\x85")


def test_exact_text_is_shrunk_never_shortened() -> None:
    doc = _document()
    doc.put_fitted(15, 20, 20, 5, "1,234,567,890.00", "R", exact=True)
    assert _drawn(doc) == [("6.00", b"1,234,567,890.00")]
    assert doc.font_size_pt == 10
