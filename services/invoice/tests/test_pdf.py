"""Invoice PDF renderer: structure, printed text, pagination, formatting, reproducibility.

No PDF parser is needed: with ``compress=False`` the page content streams are plain
text, so every printed string appears verbatim as ``(...) Tj`` in Windows-1252 bytes.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from decimal import Decimal

import pytest

from services.invoice.adapters.pdf import (
    InstallmentView,
    InvoicePdfView,
    LineView,
    PartyView,
    format_date,
    format_decimal,
    format_money,
    pdf_safe_text,
    render_invoice_pdf,
)
from shared.money import Money


def eur(value: str) -> Money:
    return Money.from_decimal(value, "EUR")


def line(i: int = 0, *, description: str | None = None, currency: str = "EUR") -> LineView:
    price = Money.of_minor(123_450 + i * 100, currency)
    return LineView(
        description=description or f"Consulting services, item {i + 1}",
        quantity=Decimal(i % 3 + 1),
        unit_price=price,
        discount_percent=Decimal("10") if i % 4 == 0 else Decimal("0"),
        tax_codes=["VAT20"],
        net=price,
    )


def make_view(**overrides: object) -> InvoicePdfView:
    view = InvoicePdfView(
        kind="INVOICE",
        number="INV-2025-000042",
        issue_date=date(2025, 3, 14),
        due_date=date(2025, 4, 13),
        seller=PartyView(
            name="Ledgerline Demo GmbH",
            address_lines=["Bahnhofstrasse 12", "8001 Zurich", "Switzerland"],
            tax_id="CHE-123.456.789 MWST",
            email="billing@ledgerline.example",
        ),
        buyer=PartyView(
            name="Acme Widgets Ltd",
            address_lines=["1 Infinite Loop", "London EC1A 1BB"],
            tax_id="GB123456789",
        ),
        currency="EUR",
        lines=[line(i) for i in range(3)],
        subtotal=eur("3706.50"),
        discount_total=eur("123.45"),
        tax_by_code={"VAT20": eur("716.61")},
        tax_rates={"VAT20": Decimal("20")},
        total=eur("4299.66"),
        paid=eur("1000"),
        credited=Money.zero("EUR"),
        open_amount=eur("3299.66"),
        terms_text="2% 10, Net 30",
        installments=[InstallmentView(date(2025, 4, 13), eur("4299.66"))],
        accepted_payment_methods=["SEPA credit transfer", "Card"],
        po_reference="PO-4500012345",
        notes="Thank you for your business.",
        status="partially_paid",
    )
    return dataclasses.replace(view, **overrides)  # type: ignore[arg-type]


def raw(view: InvoicePdfView) -> bytes:
    return render_invoice_pdf(view, compress=False)


def shown(text: str) -> bytes:
    """How a printed string appears in an uncompressed content stream."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"({escaped}) Tj".encode("cp1252")


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b", pdf))


# ----------------------------------------------------------------------- structure


def test_output_is_a_complete_pdf_document() -> None:
    pdf = render_invoice_pdf(make_view())
    assert isinstance(pdf, bytes)
    assert pdf.startswith(b"%PDF-1.")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"startxref" in pdf
    assert page_count(pdf) == 1
    assert b"/MediaBox [0 0 595.28 841.89]" in pdf or b"595.28 841.89" in pdf  # A4


def test_metadata_title_author_and_creation_date_from_issue_date() -> None:
    pdf = raw(make_view())
    assert b"/Title (Invoice INV-2025-000042)" in pdf
    assert b"/Author (Ledgerline Demo GmbH)" in pdf
    assert b"/CreationDate (D:20250314000000Z)" in pdf


def test_compressed_output_hides_text_but_keeps_metadata() -> None:
    pdf = render_invoice_pdf(make_view())
    assert b"/FlateDecode" in pdf
    assert shown("Acme Widgets Ltd") not in pdf
    assert b"/Title (Invoice INV-2025-000042)" in pdf


def test_same_view_renders_identical_bytes() -> None:
    view = make_view(lines=[line(i) for i in range(40)])
    assert render_invoice_pdf(view) == render_invoice_pdf(view)
    assert raw(view) == raw(view)


def test_different_issue_date_changes_creation_date() -> None:
    pdf = raw(make_view(issue_date=date(2024, 12, 31)))
    assert b"/CreationDate (D:20241231000000Z)" in pdf


# ------------------------------------------------------------------- printed text


def test_header_parties_lines_and_totals_are_printed() -> None:
    pdf = raw(make_view())
    for text in [
        "INVOICE",
        "INV-2025-000042",
        "14 Mar 2025",
        "13 Apr 2025",
        "PARTIALLY PAID",
        "Ledgerline Demo GmbH",
        "Acme Widgets Ltd",
        "1 Infinite Loop",
        "Tax ID: GB123456789",
        "PO-4500012345",
        "Consulting services, item 1",
        "1,234.50",
        "10%",
        "VAT20",
        "3,706.50 EUR",
        "-123.45 EUR",
        "VAT20 (20%)",
        "716.61 EUR",
        "4,299.66 EUR",
        "-1,000.00 EUR",
        "Amount due",
        "3,299.66 EUR",
        "2% 10, Net 30. Payment due by 13 Apr 2025.",
        "SEPA credit transfer, Card",
        "Thank you for your business.",
        "Page 1 of 1",
    ]:
        assert shown(text) in pdf, text


def test_zero_deductions_are_not_printed() -> None:
    pdf = raw(make_view(paid=Money.zero("EUR"), discount_total=Money.zero("EUR")))
    assert shown("Paid") not in pdf
    assert shown("Discount") not in pdf
    assert shown("Credited") not in pdf
    assert shown("Amount due") in pdf


def test_credited_amount_is_printed_as_a_deduction() -> None:
    pdf = raw(make_view(credited=eur("250")))
    assert shown("Credited") in pdf
    assert shown("-250.00 EUR") in pdf


def test_installment_schedule_only_with_more_than_one_installment() -> None:
    assert shown("INSTALMENT SCHEDULE") not in raw(make_view())
    schedule = [
        InstallmentView(date(2025, 4, 13), eur("2149.83")),
        InstallmentView(date(2025, 5, 13), eur("2149.83")),
    ]
    pdf = raw(make_view(installments=schedule))
    assert shown("INSTALMENT SCHEDULE") in pdf
    assert shown("13 May 2025") in pdf
    assert pdf.count(shown("2,149.83 EUR")) == 2


def test_credit_note_title_and_credit_total_box() -> None:
    pdf = raw(make_view(kind="CREDIT NOTE", number="CN-7", status="issued"))
    assert shown("CREDIT NOTE") in pdf
    assert shown("CREDIT TOTAL") in pdf
    assert shown("ISSUED") in pdf
    assert b"/Title (Credit Note CN-7)" in pdf


def test_invoice_without_lines_or_optional_sections() -> None:
    pdf = raw(
        make_view(
            lines=[],
            po_reference=None,
            notes=None,
            accepted_payment_methods=[],
            installments=[],
        )
    )
    assert shown("No line items.") in pdf
    assert shown("PO reference:") not in pdf
    assert shown("NOTES") not in pdf
    assert shown("ACCEPTED PAYMENT METHODS") not in pdf


def test_long_description_wraps_over_several_lines() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    pdf = raw(make_view(lines=[line(0, description=words)]))
    assert shown(words) not in pdf
    assert b"word0 word1" in pdf
    assert b"word59) Tj" in pdf


def test_parentheses_in_text_are_escaped() -> None:
    pdf = raw(make_view(lines=[line(0, description="Support (annual) \\ backslash")]))
    assert shown("Support (annual) \\ backslash") in pdf


# ---------------------------------------------------------------------- pagination


def test_hundred_twenty_lines_span_several_pages_with_repeated_table_header() -> None:
    pdf = raw(make_view(lines=[line(i) for i in range(120)]))
    pages = page_count(pdf)
    assert pages >= 3
    for page in range(1, pages + 1):
        assert shown(f"Page {page} of {pages}") in pdf
    assert shown(f"Page {pages + 1} of {pages}") not in pdf
    # The table header is drawn on every page the table touches (all but perhaps
    # the last, which may hold only the totals) and the running header on page 2+.
    assert pdf.count(shown("Description")) >= pages - 1
    assert pdf.count(shown("INVOICE INV-2025-000042")) == pages - 1
    assert shown("Consulting services, item 120") in pdf


def test_two_page_invoice_numbers_its_pages() -> None:
    pdf = raw(make_view(lines=[line(i) for i in range(30)]))
    assert page_count(pdf) == 2
    assert shown("Page 1 of 2") in pdf
    assert shown("Page 2 of 2") in pdf


def test_description_taller_than_a_page_is_split_across_pages() -> None:
    description = "A very long description line. " * 600
    pdf = raw(make_view(lines=[line(0, description=description), line(1)]))
    assert page_count(pdf) >= 3
    assert shown("Consulting services, item 2") in pdf


def test_long_instalment_schedule_flows_over_pages() -> None:
    schedule = [InstallmentView(date(2025, 1 + i % 12, 1), eur("10.00")) for i in range(80)]
    pdf = raw(make_view(installments=schedule))
    assert page_count(pdf) >= 2
    assert pdf.count(shown("10.00 EUR")) == 80


# --------------------------------------------------------------------- watermarks


def test_draft_has_a_diagonal_draft_watermark() -> None:
    pdf = raw(make_view(number=None, issue_date=None, status="draft"))
    # The badge prints DRAFT once; the watermark once more on every page.
    assert pdf.count(shown("DRAFT")) == 2
    assert b"/ca 0.1" in pdf  # translucent text
    assert b"/Title (Invoice DRAFT)" in pdf
    assert shown("Draft") in pdf  # in place of the number


def test_multi_page_draft_is_watermarked_on_every_page() -> None:
    pdf = raw(make_view(number=None, status="draft", lines=[line(i) for i in range(60)]))
    assert pdf.count(shown("DRAFT")) == 1 + page_count(pdf)


def test_issued_invoice_has_no_watermark() -> None:
    pdf = raw(make_view(status="issued"))
    assert shown("DRAFT") not in pdf
    assert shown("VOID") not in pdf
    assert b"/ca 0.1" not in pdf


def test_void_invoice_has_a_void_watermark() -> None:
    pdf = raw(make_view(status="void"))
    assert pdf.count(shown("VOID")) == 2  # badge + watermark
    assert b"/ca 0.1" in pdf


def test_draft_is_reproducible_without_issue_date() -> None:
    view = make_view(number=None, issue_date=None, status="draft")
    assert render_invoice_pdf(view) == render_invoice_pdf(view)


# ---------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (123_450, "EUR", "1,234.50 EUR"),
        (5, "EUR", "0.05 EUR"),
        (0, "EUR", "0.00 EUR"),
        (-123_456_789, "EUR", "-1,234,567.89 EUR"),
        (1_234_567, "JPY", "1,234,567 JPY"),
        (1_234_500, "KWD", "1,234.500 KWD"),
        (7, "KWD", "0.007 KWD"),
    ],
)
def test_format_money(minor: int, currency: str, expected: str) -> None:
    assert format_money(Money.of_minor(minor, currency)) == expected


def test_format_money_without_currency() -> None:
    assert format_money(eur("1234.5"), with_currency=False) == "1,234.50"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", "1"), ("2.50", "2.5"), ("1000", "1,000"), ("0.000", "0"), ("19.0", "19")],
)
def test_format_decimal(value: str, expected: str) -> None:
    assert format_decimal(Decimal(value)) == expected


def test_format_date() -> None:
    assert format_date(date(2025, 1, 5)) == "5 Jan 2025"
    assert format_date(None) == "\u2014"


def test_jpy_invoice_has_no_decimals() -> None:
    jpy = [line(i, currency="JPY") for i in range(2)]
    pdf = raw(
        make_view(
            currency="JPY",
            lines=jpy,
            subtotal=Money.of_minor(1_234_567, "JPY"),
            discount_total=Money.zero("JPY"),
            tax_by_code={"VAT10": Money.of_minor(123_457, "JPY")},
            tax_rates={"VAT10": Decimal("10")},
            total=Money.of_minor(1_358_024, "JPY"),
            paid=Money.zero("JPY"),
            credited=Money.zero("JPY"),
            open_amount=Money.of_minor(1_358_024, "JPY"),
            installments=[],
        )
    )
    assert shown("1,234,567 JPY") in pdf
    assert shown("1,358,024 JPY") in pdf
    assert shown("123,450") in pdf  # unit price column, no decimals
    assert shown("Net (JPY)") in pdf
    assert b"1,234,567.00" not in pdf


def test_kwd_invoice_has_three_decimals() -> None:
    kwd = [line(i, currency="KWD") for i in range(2)]
    pdf = raw(
        make_view(
            currency="KWD",
            lines=kwd,
            subtotal=Money.of_minor(1_234_500, "KWD"),
            discount_total=Money.zero("KWD"),
            tax_by_code={},
            tax_rates={},
            total=Money.of_minor(1_234_500, "KWD"),
            paid=Money.of_minor(500, "KWD"),
            credited=Money.zero("KWD"),
            open_amount=Money.of_minor(1_234_000, "KWD"),
            installments=[],
        )
    )
    assert shown("1,234.500 KWD") in pdf
    assert shown("-0.500 KWD") in pdf
    assert shown("1,234.000 KWD") in pdf
    assert shown("123.450") in pdf


def test_huge_amounts_are_never_truncated() -> None:
    huge = Money.of_minor(99_999_999_999_999, "EUR")
    pdf = raw(make_view(lines=[dataclasses.replace(line(0), net=huge)], total=huge))
    assert shown("999,999,999,999.99") in pdf
    assert shown("999,999,999,999.99 EUR") in pdf


# ------------------------------------------------------------------ non-Latin-1 text


def test_pdf_safe_text_keeps_windows_1252_and_replaces_the_rest() -> None:
    assert pdf_safe_text("Zürich") == "Zürich"
    assert pdf_safe_text("€ 5 — “ok” …") == "€ 5 — “ok” …"
    assert pdf_safe_text("東京") == "??"
    assert pdf_safe_text("Łódź Őrség ﬁle") == "Lódz Orség file"
    assert pdf_safe_text("a\u2212b \u2192 c") == "a-b -> c"
    assert pdf_safe_text("x\u200by\tz\x00") == "xy z"
    assert pdf_safe_text("one\r\ntwo") == "one two"
    assert pdf_safe_text("one\r\ntwo", multiline=True) == "one\ntwo"
    assert pdf_safe_text("😀") == "?"


def test_non_latin1_text_renders_without_crashing() -> None:
    seller = PartyView(
        name="Zürich Trading AG — 株式会社",
        address_lines=["Straße 1", "東京都千代田区"],
        tax_id="CHE-1 €",
        email="ünï@example.com",
    )
    view = make_view(
        seller=seller,
        buyer=dataclasses.replace(make_view().buyer, name="Ωmega Ltd — Łódź"),
        lines=[line(0, description="Licence € — 東京 region 😀")],
        notes="Merci — danke — 谢谢\nSecond line",
        accepted_payment_methods=["Überweisung", "支付宝"],
        po_reference="PO—東",
        terms_text="Net 30 — 30 日",
        kind="INVOICE",
        tax_by_code={"MwSt—19": eur("1.00")},
        tax_rates={"MwSt—19": Decimal("19")},
    )
    pdf = raw(view)
    assert pdf.startswith(b"%PDF")
    assert shown("Zürich Trading AG — ????") in pdf
    assert shown("Licence € — ?? region ?") in pdf
    assert shown("Merci — danke — ??") in pdf
    assert shown("Second line") in pdf
    assert shown("?mega Ltd — Lódz") in pdf
    assert b"\x80" in pdf and b"\x97" in pdf  # € and — in WinAnsi
    # Metadata keeps the real Unicode name (UTF-16 in the info dictionary).
    author = "Zürich Trading AG — 株式会社".encode("utf-16-be").hex()
    assert f"/Author <feff{author}>".encode() in pdf
