"""Ledger exports: Beancount checked by the real ``bean-check``, QuickBooks and Xero CSV layouts,
and the JSON feed, all from one realistic scenario."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.reporting.domain.ledger_exports import (
    FEED_FORMAT,
    QUICKBOOKS_COLUMNS,
    XERO_COLUMNS,
    XERO_DEFAULT_CODES,
    journal_number,
    json_feed,
    render_beancount,
    render_json_feed,
    render_quickbooks_csv,
    render_xero_csv,
    safe_cell,
)
from services.reporting.domain.postings import JournalEntry, assert_balanced
from services.reporting.tests.test_postings import (
    DAY0,
    Journal,
    allocation,
    issued,
    money,
    received,
)
from shared.contracts import invoice as inv
from shared.contracts import payments as pay

BEAN_CHECK = Path(sys.executable).parent / "bean-check"


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def scenario() -> list[JournalEntry]:
    """Three customers, EUR and USD invoices with tax, USD functional: a partial payment, an
    early-payment discount, a late fee, a credit note, a write-off, an over-payment refunded,
    and one customer whose name would be a spreadsheet formula."""
    journal = Journal()
    acme = issued("acme", 100000, 20000, "EUR", day(0), "INV-2024-001")
    globex = issued("globex", 50000, 5000, "USD", day(1), "INV-2024-002")
    formula = issued("=HYPERLINK(evil)", 9999, 0, "EUR", day(2), "INV-2024-003")
    jp = issued("initech", 123456, 0, "JPY", day(2), "INV/2024 004")
    for invoice in (acme, globex, formula, jp):
        journal.post(invoice, invoice.customer_id)

    journal.post(
        inv.LateFeeCharged(
            invoice_id=acme.invoice_id,
            fee_id=uuid.uuid4(),
            amount=money(2500, "EUR"),
            reason='Late fee, "30 days"',
            charged_on=day(40),
            debit_note_number="DN-1",
        ),
        "acme",
    )
    journal.post(
        inv.CreditNoteIssued(
            invoice_id=acme.invoice_id,
            credit_note_id=uuid.uuid4(),
            number="CN-1",
            amount=money(12000, "EUR"),
            reason="two units returned",
            issued_on=day(41),
        ),
        "acme",
    )
    partial = received(60000, "EUR", "acme", day(45))
    journal.post(partial, "acme")
    for half in allocation(partial, acme, 60000, on=day(45)):
        journal.post(half, "acme")

    cash = received(60000, "USD", "globex", day(8))
    journal.post(cash, "globex")
    for half in allocation(cash, globex, 53900, discount=1100, on=day(8)):
        journal.post(half, "globex")
    journal.post(
        pay.PaymentRefunded(
            payment_id=cash.payment_id,
            amount=money(6100, "USD"),
            refunded_on=day(12),
            reason="over-payment",
        ),
        "globex",
    )
    journal.post(
        inv.InvoiceWrittenOff(
            invoice_id=formula.invoice_id,
            amount=money(9999, "EUR"),
            reason="customer vanished",
            written_off_on=day(120),
        ),
        formula.customer_id,
    )
    assert_balanced(journal.entries)
    return journal.entries


def bean_check(tmp_path: Path, text: str, name: str = "ledger.beancount") -> str:
    assert BEAN_CHECK.exists(), f"bean-check not installed next to {sys.executable}"
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(  # noqa: S603 (our own file, the venv's own script)
        [str(BEAN_CHECK), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


# ------------------------------------------------------------------------- Beancount


def test_the_scenario_renders_to_a_ledger_that_bean_check_accepts(tmp_path: Path) -> None:
    entries = scenario()
    chunk = render_beancount(entries, operating_currency="USD", cursor="c-1", title="acme books")
    assert bean_check(tmp_path, chunk.text) == ""

    assert 'option "operating_currency" "USD"' in chunk.text
    assert "Assets:AccountsReceivable" in chunk.open_accounts
    assert "^INV-2024-001" in chunk.text and "^INV/2024-004" in chunk.text
    assert '  event_id: "' in chunk.text
    assert "1234.56 JPY" not in chunk.text and "123456 JPY @@" in chunk.text  # JPY: 0 places
    assert "1200.00 EUR @@ " in chunk.text
    assert '"Late fee DN-1 on invoice INV-2024-001: Late fee, \\"30 days\\""' in chunk.text
    assert "; ledgerline export cursor: c-1" in chunk.text
    again = render_beancount(entries, operating_currency="USD", cursor="c-1", title="acme books")
    assert again == chunk


def test_an_incremental_file_from_two_chunks_opens_each_account_once(tmp_path: Path) -> None:
    entries = scenario()
    first = render_beancount(
        entries[:5], operating_currency="USD", cursor="c-5", start_date=date(2023, 12, 1)
    )
    second = render_beancount(
        entries[5:], operating_currency="USD", cursor="c-9", already_open=first.open_accounts
    )
    bean_check(tmp_path, first.text + "\n" + second.text)

    assert "option" not in second.text
    assert second.open_accounts > first.open_accounts
    opened = [x.split()[-1] for x in (first.text + second.text).splitlines() if " open " in x]
    assert len(opened) == len(set(opened)) == len(second.open_accounts)
    assert first.text.count("2023-12-01 open ") == len(first.open_accounts)


def test_bean_check_does_reject_a_ledger_that_does_not_balance(tmp_path: Path) -> None:
    text = render_beancount(scenario(), operating_currency="USD", cursor="x").text
    tampered = text.replace("Income:Sales  -500.00 USD", "Income:Sales  -500.01 USD", 1)
    assert tampered != text
    with pytest.raises(AssertionError, match="balance"):
        bean_check(tmp_path, tampered)


def test_amounts_follow_each_currency_exponent() -> None:
    journal = Journal()
    journal.post(issued("k", 1234, 0, "KWD"), "k")
    journal.post(issued("j", 1000, 0, "JPY", number="INV-2"), "j")
    text = render_beancount(journal.entries, operating_currency="USD", cursor="x").text
    assert "1.234 KWD @@ " in text
    assert "1000 JPY @@ " in text


# ------------------------------------------------------------------------------ CSV


def _rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


def test_quickbooks_journal_csv_balances_per_journal(tmp_path: Path) -> None:
    entries = scenario()
    header, rows = _rows(render_quickbooks_csv(entries, {"acme": "ACME GmbH"}))
    assert header == list(QUICKBOOKS_COLUMNS)

    debits: dict[str, Decimal] = defaultdict(Decimal)
    credits: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        assert (row["Debits"] == "") != (row["Credits"] == "")
        debits[row["JournalNo"]] += Decimal(row["Debits"] or 0)
        credits[row["JournalNo"]] += Decimal(row["Credits"] or 0)
        assert row["Currency"] == "USD"
        assert len(row["JournalNo"]) <= 21
        month, dd, year = row["JournalDate"].split("/")
        assert len(month) == 2 and len(dd) == 2 and len(year) == 4
    assert debits == credits
    assert set(debits) == {journal_number(e) for e in entries}

    expected = sum(x.functional_debit for e in entries for x in e.lines)
    assert sum(debits.values()) == Decimal(expected) / 100
    assert {r["Name"] for r in rows} >= {"ACME GmbH", "globex", "'=HYPERLINK(evil)"}
    assert any(r["Description"].endswith("(1200.00 EUR)") for r in rows)


def test_xero_manual_journal_csv_has_signed_amounts_that_sum_to_zero() -> None:
    entries = scenario()
    header, rows = _rows(render_xero_csv(entries, tax_rate="No VAT"))
    assert header == list(XERO_COLUMNS)

    per_journal: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        per_journal[row["*Narration"], row["*Date"]] += Decimal(row["*Amount"])
        assert row["*TaxRate"] == "No VAT"
        assert row["*AccountCode"] in XERO_DEFAULT_CODES.values()
        dd, month, year = row["*Date"].split("/")
        assert len(dd) == 2 and len(month) == 2 and len(year) == 4
    assert len(per_journal) == len(entries)  # the narration tells journals apart
    assert set(per_journal.values()) == {Decimal(0)}
    negative = [r["*Amount"] for r in rows if r["*Amount"].startswith("-")]
    assert negative, "credits are negative numbers, never apostrophe-prefixed text"
    assert all(not r["*Amount"].startswith("'") for r in rows)


def test_text_cells_that_look_like_formulas_are_defused() -> None:
    assert safe_cell("=1+2") == "'=1+2"
    assert safe_cell("+1") == "'+1"
    assert safe_cell("-1") == "'-1"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("Invoice 1") == "Invoice 1"


def test_csv_exports_are_idempotent() -> None:
    entries = scenario()
    assert render_quickbooks_csv(entries) == render_quickbooks_csv(entries)
    assert render_xero_csv(entries) == render_xero_csv(entries)


# ------------------------------------------------------------------------ JSON feed


def test_the_json_feed_carries_entries_in_minor_units_and_the_cursor() -> None:
    entries = scenario()
    text = render_json_feed(entries, cursor="42:17")
    feed = json.loads(text)
    assert feed["format"] == FEED_FORMAT
    assert feed["cursor"] == "42:17"
    assert [e["entry_id"] for e in feed["entries"]] == [e.entry_id for e in entries]
    assert feed == json_feed(entries, "42:17")
    assert text == render_json_feed(entries, cursor="42:17")

    first = feed["entries"][0]
    assert first["source_event_type"] == "InvoiceIssued"
    assert first["document_number"] == "INV-2024-001"
    assert first["lines"][0] == {
        "account": "Assets:AccountsReceivable",
        "role": "receivables",
        "currency": "EUR",
        "amount": 120000,
        "debit": 120000,
        "credit": 0,
        "functional_amount": first["lines"][0]["functional_amount"],
        "functional_debit": first["lines"][0]["functional_amount"],
        "functional_credit": 0,
    }
    for entry in feed["entries"]:
        per_currency: dict[str, int] = defaultdict(int)
        for line in entry["lines"]:
            assert isinstance(line["amount"], int)
            per_currency[line["currency"]] += line["amount"]
        assert set(per_currency.values()) == {0}
        assert sum(line["functional_amount"] for line in entry["lines"]) == 0
