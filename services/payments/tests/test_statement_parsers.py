"""Bank-statement parsers: CSV, camt.053 and OFX fixtures, every error path, a CSV round trip."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.payments.adapters import statements
from services.payments.adapters.statements import (
    CsvColumns,
    ParsedLine,
    ParsedStatement,
    StatementFormatError,
    parse_statement,
)
from services.payments.adapters.statements.csv_format import parse_amount
from shared.errors import ValidationFailed
from shared.money import Money, sum_money

FIXTURES = Path(__file__).parent / "statements"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def amounts(statement: ParsedStatement) -> list[int]:
    return [line.amount.amount for line in statement.lines]


def assert_balances_reconcile(statement: ParsedStatement) -> None:
    """Opening + lines = closing: the file was read completely and with the right signs."""
    assert statement.opening_balance is not None and statement.closing_balance is not None
    total = sum_money((line.amount for line in statement.lines), statement.currency)
    assert statement.opening_balance + total == statement.closing_balance


def format_error(
    content: str, fmt: Any, **kwargs: Any
) -> StatementFormatError:  # Any: fmt may be bad on purpose
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(content, fmt, **kwargs)
    assert isinstance(caught.value, ValidationFailed) and caught.value.status_code == 422
    return caught.value


# ------------------------------------------------------------------------------------ CSV

GERMAN = CsvColumns(
    booking_date="Buchungstag",
    value_date="Valuta",
    amount="Betrag",
    currency="Waehrung",
    reference="Verwendungszweck",
    counterparty_name="Auftraggeber",
    counterparty_account="IBAN",
    bank_reference="Buchungs-ID",
    date_format="%d.%m.%Y",
    decimal_separator=",",
    thousands_separator=".",
    delimiter=";",
)


def test_csv_european_formatting_with_semicolons() -> None:
    statement = parse_statement(fixture("bank_de.csv"), "csv", csv_columns=GERMAN)

    assert (statement.format, statement.currency, statement.account) == ("csv", "EUR", None)
    assert statement.opening_balance is None and statement.closing_balance is None
    assert statement.lines[0] == ParsedLine(
        booking_date=date(2024, 3, 5),
        value_date=date(2024, 3, 6),
        amount=eur(123456),
        reference="RE 2024-0017 Danke",
        counterparty_name="Muster GmbH",
        counterparty_account="DE89370400440532013000",
        bank_reference="B-1",
    )
    assert amounts(statement) == [123456, -9990, 1250000]
    second = statement.lines[1]
    assert (second.value_date, second.counterparty_account) == (None, None)


def test_csv_credit_and_debit_columns() -> None:
    columns = CsvColumns(
        credit="Paid in",
        debit="paid out",
        reference="description",
        counterparty_name="PAYEE",
        thousands_separator=",",
    )
    statement = parse_statement(
        fixture("bank_credit_debit.csv"), "csv", currency="GBP", csv_columns=columns
    )

    assert columns.amount is None
    assert statement.currency == "GBP"
    assert amounts(statement) == [125000, -499, -2000]
    assert [line.reference for line in statement.lines] == ["Invoice INV-77", "Card fee", "Refund"]


def test_csv_default_columns_and_line_numbers_after_blank_and_multiline_rows() -> None:
    content = (
        "\ufeffDate, Amount ,Reference,Name,Id\n"
        "2024-01-02,10.00,first,A,1\n"
        "\n"
        ',,,,\n2024-01-03,5,"two\nlines",,\n'
        "2024-01-0x,1.00,bad,,\n"
    )
    error = format_error(content, "csv", currency="EUR")

    assert error.details == {"line": 7, "column": "date"}
    good = parse_statement(content.rsplit("2024-01-0x", 1)[0], "csv", currency="EUR")
    assert amounts(good) == [1000, 500]
    assert good.lines[1].reference == "two lines"
    assert good.lines[1].counterparty_name is None


@pytest.mark.parametrize(
    ("currency", "text", "minor"),
    [
        ("JPY", "1,500", 1500),
        ("JPY", "-20000", -20000),
        ("KWD", "1.234", 1234),
        ("KWD", "(0.005)", -5),
        ("EUR", "10", 1000),
    ],
)
def test_csv_currency_exponents(currency: str, text: str, minor: int) -> None:
    content = f'date,amount,reference,name\n2024-05-01,"{text}",x,y\n'
    columns = CsvColumns(thousands_separator=",")
    statement = parse_statement(content, "csv", currency=currency, csv_columns=columns)
    assert statement.lines[0].amount == Money.of_minor(minor, currency)


@pytest.mark.parametrize(
    ("text", "decimal", "thousands", "minor"),
    [
        ("1,234.56", ".", ",", 123456),
        ("-12.00", ".", "", -1200),
        ("(12.00)", ".", "", -1200),
        ("+12.5", ".", "", 1250),
        ("- 3", ".", "", -300),
        (".5", ".", "", 50),
        ("1.234,56", ",", ".", 123456),
        ("-1.234.567,8", ",", ".", -123456780),
        ("1 234,56", ",", " ", 123456),
        ("1\u00a0234,56", ",", " ", 123456),
        ("1'234.56", ".", "'", 123456),
        ("12,34,567.00", ".", ",", 1234567 * 100),
        ("1234.56", ".", ",", 123456),
        ("0,00", ",", "", 0),
    ],
)
def test_csv_amount_syntax(text: str, decimal: Any, thousands: Any, minor: int) -> None:
    columns = CsvColumns(decimal_separator=decimal, thousands_separator=thousands)
    assert parse_amount(text, "EUR", columns) == eur(minor)


@pytest.mark.parametrize(
    ("text", "decimal", "thousands", "currency"),
    [
        ("12.345", ".", "", "EUR"),  # too many decimals
        ("12.50", ".", "", "JPY"),
        ("12.00", ".", "", "JPY"),  # even zeros: "1.000" JPY read with the wrong separator
        ("1.0000", ".", "", "KWD"),
        ("1,23", ".", ",", "EUR"),  # a European decimal read with "," as thousands separator
        ("1,234.56", ".", "", "EUR"),  # thousands separator not configured
        ("1.234,56", ".", ",", "EUR"),
        ("12,50", ".", "", "EUR"),
        ("abc", ".", "", "EUR"),
        ("", ".", "", "EUR"),
        ("-", ".", "", "EUR"),
        ("12.", ".", "", "EUR"),
        ("(-5)", ".", "", "EUR"),
        ("--5", ".", "", "EUR"),
        ("1e3", ".", "", "EUR"),
        ("\u0661\u0662", ".", "", "EUR"),  # Arabic-Indic digits are digits to str.isdigit
        ("1,,234", ".", ",", "EUR"),
    ],
)
def test_csv_amount_syntax_errors(text: str, decimal: Any, thousands: Any, currency: str) -> None:
    columns = CsvColumns(decimal_separator=decimal, thousands_separator=thousands)
    with pytest.raises(ValueError, match=r"amount|decimal places|sign"):
        parse_amount(text, currency, columns)


CSV_HEADER = "date,amount,reference,name\n"


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ("2024-02-30,1.00,x,y", "date", "not a date"),
        (",1.00,x,y", "date", "no date"),
        ("2024-02-01,1.0.0,x,y", "amount", "not an amount"),
        ("2024-02-01,1.001,x,y", "amount", "3 decimal places, EUR allows 2"),
        ("2024-02-01,,x,y", "amount", "not an amount"),
    ],
)
def test_csv_cell_errors_name_line_and_column(row: str, column: str, message: str) -> None:
    content = f"{CSV_HEADER}2024-02-01,1.00,ok,y\n{row}\n"
    error = format_error(content, "csv", currency="EUR")
    assert error.details == {"line": 3, "column": column}
    assert message in error.message and "line 3" in error.message


def test_csv_missing_and_ambiguous_columns() -> None:
    missing = format_error("date,amount,name\n2024-01-01,1,x\n", "csv", currency="EUR")
    assert missing.details["line"] == 1 and missing.details["column"] == "reference"
    assert "missing" in missing.message

    twice = format_error("date,amount,Reference,reference,name\n", "csv", currency="EUR")
    assert twice.details["column"] == "reference" and "more than once" in twice.message


def test_csv_currency_column_one_currency_per_statement() -> None:
    columns = CsvColumns(currency="ccy")
    head = "date,amount,ccy,reference,name\n"
    content = f"{head}2024-01-01,1.00,eur,a,b\n2024-01-02,2.00,USD,c,d\n"
    error = format_error(content, "csv", csv_columns=columns)
    assert error.details == {"line": 3, "column": "ccy", "expected": "EUR", "found": "USD"}

    declared = format_error(content, "csv", currency="USD", csv_columns=columns)
    assert declared.details["line"] == 2

    blank_cell = f"{head}2024-01-01,1.00,,a,b\n"
    assert parse_statement(blank_cell, "csv", currency="EUR", csv_columns=columns).currency == "EUR"
    assert format_error(blank_cell, "csv", csv_columns=columns).details["column"] == "ccy"

    unknown = format_error(f"{head}2024-01-01,1.00,XXX,a,b\n", "csv", csv_columns=columns)
    assert unknown.details == {"line": 2, "column": "ccy"}

    empty = format_error(head, "csv", csv_columns=columns)
    assert empty.details == {"field": "currency"}


def test_csv_credit_debit_errors() -> None:
    columns = CsvColumns(credit="in", debit="out")
    head = "date,in,out,reference,name\n"
    both = format_error(
        f"{head}2024-01-01,1.00,2.00,a,b\n", "csv", currency="EUR", csv_columns=columns
    )
    assert "both" in both.message and both.details["line"] == 2
    neither = format_error(f"{head}2024-01-01,,,a,b\n", "csv", currency="EUR", csv_columns=columns)
    assert "neither" in neither.message
    bad = format_error(f"{head}2024-01-01,,x,a,b\n", "csv", currency="EUR", csv_columns=columns)
    assert bad.details == {"line": 2, "column": "out"}
    zero_other = f"{head}2024-01-01,0.00,2.00,a,b\n"
    statement = parse_statement(zero_other, "csv", currency="EUR", csv_columns=columns)
    assert amounts(statement) == [-200]


def test_csv_statement_level_errors() -> None:
    assert format_error("", "csv", currency="EUR").details == {"line": 1}
    assert format_error(CSV_HEADER, "csv").details == {"field": "currency"}
    assert format_error(CSV_HEADER, "csv", currency="eur").details == {"field": "currency"}
    assert parse_statement(CSV_HEADER, "csv", currency="EUR").lines == ()
    huge = "x" * (csv.field_size_limit() + 1)
    unreadable = format_error(f'{CSV_HEADER}2024-01-01,1.00,"{huge}",c\n', "csv", currency="EUR")
    assert unreadable.details == {"line": 2} and "unreadable CSV" in unreadable.message


def test_more_than_max_lines_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statements, "MAX_LINES", 2)
    rows = "".join(f"2024-01-0{d},1.00,r,n\n" for d in (1, 2, 3))
    error = format_error(CSV_HEADER + rows, "csv", currency="EUR")
    assert error.details == {"line": 4, "max_lines": 2}
    camt = fixture("camt053_v02.xml")
    assert format_error(camt, "camt053").details["element"] == "Stmt/Ntry[3]"
    assert format_error(fixture("ofx102.ofx"), "ofx").details["element"] == "STMTTRN"


def test_csv_columns_validation() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        CsvColumns(amount="amount", credit="in")
    with pytest.raises(ValidationError, match="exactly one"):
        CsvColumns(amount=None)
    with pytest.raises(ValidationError, match="must differ"):
        CsvColumns(decimal_separator=",", thousands_separator=",")
    with pytest.raises(ValidationError, match="different columns"):
        CsvColumns(credit="Amount", debit="amount ")
    with pytest.raises(ValidationError):
        CsvColumns(colour="red")  # type: ignore[call-arg]
    assert CsvColumns(debit="out").amount is None


def test_dispatcher_rejects_bad_arguments() -> None:
    assert format_error("x", "pdf").details["field"] == "format"
    wrong = format_error(fixture("ofx102.ofx"), "ofx", csv_columns=CsvColumns())
    assert wrong.details == {"field": "csv_columns"}


# ------------------------------------------------------------------------------- CSV property

SEPARATORS = [(".", "", ","), (",", ".", ";"), (".", ",", "\t"), (",", " ", "|"), (".", "'", ";")]
ROWS = st.lists(
    st.tuples(
        st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31)),
        st.integers(min_value=-(10**15), max_value=10**15),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(" \t\r\n"),
            max_size=30,
        ),
        st.booleans(),
    ),
    max_size=15,
)


def render(minor: int, exponent: int, decimal: str, thousands: str, parentheses: bool) -> str:
    """How a bank might print `minor`: grouped digits, optional accounting negative."""
    whole, fraction = divmod(abs(minor), 10**exponent)
    digits = f"{whole:,}".replace(",", thousands)
    text = digits + (decimal + str(fraction).zfill(exponent) if exponent else "")
    if minor >= 0:
        return text
    return f"({text})" if parentheses else f"-{text}"


@given(
    rows=ROWS,
    currency=st.sampled_from(["EUR", "JPY", "KWD"]),
    separators=st.sampled_from(SEPARATORS),
    date_format=st.sampled_from(["%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y"]),
)
def test_csv_round_trip(
    rows: list[tuple[date, int, str, bool]],
    currency: str,
    separators: tuple[Any, Any, Any],
    date_format: str,
) -> None:
    decimal, thousands, delimiter = separators
    exponent = Money.zero(currency).exponent
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["Date", "Amount", "Reference", "Name"])
    for day, minor, reference, parentheses in rows:
        amount = render(minor, exponent, decimal, thousands, parentheses)
        writer.writerow([day.strftime(date_format), amount, reference, "payer"])
    columns = CsvColumns(
        date_format=date_format,
        decimal_separator=decimal,
        thousands_separator=thousands,
        delimiter=delimiter,
    )

    statement = parse_statement(buffer.getvalue(), "csv", currency=currency, csv_columns=columns)

    assert [(line.booking_date, line.amount, line.reference) for line in statement.lines] == [
        (day, Money.of_minor(minor, currency), " ".join(reference.split()))
        for day, minor, reference, _ in rows
    ]


# --------------------------------------------------------------------------------- camt.053


def test_camt053_v02() -> None:
    statement = parse_statement(fixture("camt053_v02.xml"), "camt053")

    assert statement.format == "camt053"
    assert statement.account == "DE89370400440532013000"
    assert statement.statement_ref == "0352C5320240305000001"
    assert statement.currency == "EUR"
    assert statement.opening_balance == eur(1050000)  # PRCD
    assert statement.closing_balance == eur(1206794)
    assert statement.lines == (
        ParsedLine(
            booking_date=date(2024, 3, 5),
            value_date=date(2024, 3, 6),
            amount=eur(123456),
            reference="INV-2024-0017 INV-2024- 0018 thank you",
            counterparty_name="ACME Industries Ltd",
            counterparty_account="GB29NWBK60161331926819",
            bank_reference="2024030512345678",
        ),
        ParsedLine(
            booking_date=date(2024, 3, 5),
            value_date=date(2024, 3, 5),
            amount=eur(-16662),
            reference="RF18539007547034",  # EndToEndId NOTPROVIDED is ignored
            counterparty_name="Office Supplies AG",  # a debit's counterparty is the creditor
            counterparty_account="DE02120300000000202051",
            bank_reference="2024030512345679",
        ),
        ParsedLine(
            booking_date=date(2024, 3, 5),
            value_date=date(2024, 3, 5),
            amount=eur(50000),  # reversal of a direct debit: sign from CdtDbtInd
            reference="RUECKLASTSCHRIFT SEPA",
            counterparty_name=None,
            counterparty_account=None,
            bank_reference="RET-7781",
        ),
    )
    assert_balances_reconcile(statement)


def test_camt053_v08_batch_booking_is_split() -> None:
    statement = parse_statement(fixture("camt053_v08.xml"), "camt053", currency="EUR")

    assert statement.account == "0532013000"
    assert statement.opening_balance == eur(-25000)  # OPBD, DBIT: overdrawn
    assert statement.closing_balance == eur(283749)  # CLBD, not CLAV
    batch = statement.lines[:3]
    assert [line.amount for line in batch] == [eur(100000), eur(150000), eur(50000)]
    assert [line.reference for line in batch] == ["Invoice INV-100", "RF47INV101", "INV-102"]
    assert [line.counterparty_name for line in batch] == [
        "Globex Corporation",
        "Initech BV",
        "Umbrella plc",
    ]
    assert [line.counterparty_account for line in batch] == [
        "FR1420041010050500013M02606",
        "NL-ACC-991",
        None,
    ]
    assert [line.bank_reference for line in batch] == ["TX-1", "TXID-2", "BATCH-0628-01#3"]
    assert {line.booking_date for line in batch} == {date(2024, 6, 28)}  # from BookgDt/DtTm

    fee, fx = statement.lines[3:]
    assert (fee.amount, fee.reference, fee.bank_reference) == (
        eur(-1250),
        "Account fee June",
        "FEE-06",
    )
    assert fee.value_date == date(2024, 6, 30)
    # One TxDtls: the entry's amount counts, not the instructed USD amount.
    assert (fx.amount, fx.reference, fx.bank_reference) == (
        eur(9999),
        "PO 7781 / INV-103",
        "FX-555",
    )
    assert fx.counterparty_name == "Stark Industries Inc"
    assert_balances_reconcile(statement)


def test_camt053_batch_that_does_not_add_up_stays_one_line() -> None:
    content = fixture("camt053_v08.xml").replace(
        '<Amt Ccy="EUR">500.00</Amt>\n            <CdtDbtInd>CRDT',
        '<Amt Ccy="EUR">400.00</Amt>\n            <CdtDbtInd>CRDT',
    )
    statement = parse_statement(content, "camt053")

    batch = statement.lines[0]
    assert len(statement.lines) == 3 and batch.amount == eur(300000)
    assert batch.reference == "Invoice INV-100 RF47INV101 INV-102"
    assert (batch.counterparty_name, batch.bank_reference) == (None, "BATCH-0628-01")
    assert_balances_reconcile(statement)


def camt(
    entries: str,
    *,
    currency: str = "EUR",
    namespace: str = ' xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04"',
    statements_: int = 1,
) -> str:
    """A minimal camt.053 document around `entries`."""
    stmt = (
        f"<Stmt><Id>S1</Id><Acct><Id><IBAN>CH93 0076 2011 6238 5295 7</IBAN></Id>"
        f"<Ccy>{currency}</Ccy></Acct>{entries}</Stmt>"
    )
    return f'<?xml version="1.0"?><Document{namespace}><BkToCstmrStmt>{stmt * statements_}</BkToCstmrStmt></Document>'


def entry(
    amount: str = "10.00", ccy: str = "EUR", indicator: str = "CRDT", day: str = "2024-01-31"
) -> str:
    return (
        f'<Ntry><Amt Ccy="{ccy}">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>'
        f"<BookgDt><Dt>{day}</Dt></BookgDt></Ntry>"
    )


@pytest.mark.parametrize(
    ("currency", "amount", "minor"),
    [
        ("JPY", "15000", 15000),
        ("JPY", "15000.00", 15000),
        ("KWD", "1.234", 1234),
        ("KWD", "0.5", 500),
    ],
)
def test_camt053_currency_exponents(currency: str, amount: str, minor: int) -> None:
    statement = parse_statement(camt(entry(amount, currency), currency=currency), "camt053")
    assert statement.lines[0].amount == Money.of_minor(minor, currency)
    assert statement.account == "CH9300762011623852957"


def test_camt053_without_namespace_or_account_currency() -> None:
    content = camt(entry(indicator="DBIT"), namespace="").replace("<Ccy>EUR</Ccy>", "")
    statement = parse_statement(content, "camt053")
    assert (statement.currency, amounts(statement)) == ("EUR", [-1000])
    assert statement.opening_balance is None and statement.closing_balance is None


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Document><BkToCstmrStmt><Stmt><Id>&lol2;</Id></Stmt></BkToCstmrStmt></Document>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!doctype Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Document>&xxe;</Document>"""


@pytest.mark.parametrize(
    ("content", "details"),
    [
        (BILLION_LAUGHS, {"element": "DOCTYPE"}),
        (EXTERNAL_ENTITY, {"element": "DOCTYPE"}),
        (camt(entry(), statements_=2), {"element": "BkToCstmrStmt/Stmt", "count": 2}),
        (camt("", statements_=0), {"element": "BkToCstmrStmt/Stmt", "count": 0}),
        ("<Document><BkToCstmrAcctRpt/></Document>", {"element": "Document"}),
        ("<Document><BkToCstmrStmt><Stmt>", {"line": 1, "column": 31}),
        ("not xml", {"line": 1, "column": 0}),
        (camt(entry(day="2024-13-01")), {"element": "Stmt/Ntry[1]/BookgDt"}),
        (camt(entry(day="31.01.2024")), {"element": "Stmt/Ntry[1]/BookgDt"}),
        (camt(entry(amount="12.345")), {"element": "Stmt/Ntry[1]/Amt"}),
        (camt(entry(amount="-1.00")), {"element": "Stmt/Ntry[1]/Amt"}),
        (camt(entry(amount="1,00")), {"element": "Stmt/Ntry[1]/Amt"}),
        (camt(entry(indicator="CR")), {"element": "Stmt/Ntry[1]/CdtDbtInd"}),
        (
            camt(entry() + entry(ccy="USD")),
            {"element": "Stmt/Ntry[2]/Amt", "expected": "EUR", "found": "USD"},
        ),
        (camt(entry(ccy="EUR"), currency="XYZ"), {"element": "Stmt/Acct/Ccy"}),
        (
            camt(entry()).replace("<BookgDt><Dt>2024-01-31</Dt></BookgDt>", ""),
            {"element": "Stmt/Ntry[1]/BookgDt"},
        ),
        (camt(entry()).replace('<Amt Ccy="EUR">10.00</Amt>', ""), {"element": "Stmt/Ntry[1]/Amt"}),
    ],
)
def test_camt053_errors(content: str, details: dict[str, Any]) -> None:
    assert format_error(content, "camt053").details == details


def test_camt053_declared_currency_must_match() -> None:
    error = format_error(camt(entry()), "camt053", currency="CHF")
    assert error.details == {"element": "Stmt/Acct/Ccy", "expected": "CHF", "found": "EUR"}
    no_ccy = camt(entry(ccy="CHF")).replace("<Ccy>EUR</Ccy>", "")
    assert parse_statement(no_ccy, "camt053", currency="CHF").currency == "CHF"


def test_camt053_value_date_stands_in_for_missing_booking_date() -> None:
    content = camt(entry()).replace("BookgDt", "ValDt")
    line = parse_statement(content, "camt053").lines[0]
    assert line.booking_date == line.value_date == date(2024, 1, 31)


# -------------------------------------------------------------------------------------- OFX


def test_ofx_102_sgml() -> None:
    statement = parse_statement(fixture("ofx102.ofx"), "ofx")

    assert statement.format == "ofx"
    assert (statement.currency, statement.account, statement.statement_ref) == (
        "USD",
        "4000123456",
        None,
    )
    assert statement.opening_balance is None
    assert statement.closing_balance == Money.of_minor(523850, "USD")
    credit, fee, deposit = statement.lines
    assert credit == ParsedLine(
        booking_date=date(2024, 3, 4),
        value_date=None,
        amount=Money.of_minor(250000, "USD"),
        reference="INV-2024-0031 & INV-2024-0032",
        counterparty_name="ACME INDUSTRIES",
        counterparty_account=None,
        bank_reference="202403040001",
    )
    assert (fee.amount.amount, fee.reference, fee.booking_date) == (
        -1200,
        "MONTHLY SERVICE FEE",  # no MEMO: the NAME is the description
        date(2024, 3, 5),
    )
    assert (deposit.amount.amount, deposit.value_date) == (75050, date(2024, 3, 11))
    assert deposit.reference == "PAYMENT INV-2024-0040"


def test_ofx_220_xml() -> None:
    statement = parse_statement(fixture("ofx220.ofx"), "ofx", currency="GBP")

    assert (statement.currency, statement.account) == ("GBP", "GB33BUKB20201555555555")
    assert statement.closing_balance == Money.of_minor(-13589, "GBP")
    first, hosting, transfer = statement.lines
    assert (first.amount.amount, first.reference, first.counterparty_name) == (
        120000,
        "Remittance INV-9001",
        "Cyberdyne Systems Ltd",
    )
    assert (hosting.amount.amount, hosting.reference, hosting.counterparty_account) == (
        -4599,
        "Cloud Hosting",
        "12345678",
    )
    assert hosting.booking_date == date(2024, 6, 10)
    assert (transfer.counterparty_name, transfer.reference, transfer.bank_reference) == (
        "Tyrell & Sons",
        "INV-9002 INV-9003",
        "GB-0615-3",
    )


def ofx(transactions: str, *, curdef: str = "<CURDEF>EUR", statements_: int = 1) -> str:
    """A minimal OFX 1.x SGML document around `transactions`."""
    stmt = (
        f"<STMTRS>{curdef}\n<BANKACCTFROM><ACCTID>1</ACCTID></BANKACCTFROM>"
        f"<BANKTRANLIST>\n{transactions}</BANKTRANLIST></STMTRS>\n"
    )
    return (
        "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\n\n<OFX>\n<BANKMSGSRSV1><STMTTRNRS>\n"
        f"{stmt * statements_}</STMTTRNRS></BANKMSGSRSV1>\n</OFX>\n"
    )


def trn(amount: str = "-12.00", posted: str = "20240102", extra: str = "") -> str:
    return (
        f"<STMTTRN>\n<TRNTYPE>DEBIT\n<DTPOSTED>{posted}\n<TRNAMT>{amount}\n"
        f"<FITID>F1\n<NAME>Shop\n{extra}</STMTTRN>\n"
    )


@pytest.mark.parametrize(
    ("posted", "expected"),
    [
        ("20240102", date(2024, 1, 2)),
        ("20240102235959", date(2024, 1, 2)),
        ("20240102235959.123", date(2024, 1, 2)),
        ("20240102120000.000[-5:EST]", date(2024, 1, 2)),
        ("20240102120000[+5.30:IST]", date(2024, 1, 2)),
        ("202401021200", date(2024, 1, 2)),
    ],
)
def test_ofx_dates(posted: str, expected: date) -> None:
    assert parse_statement(ofx(trn(posted=posted)), "ofx").lines[0].booking_date == expected


def test_ofx_amounts_and_currencies() -> None:
    assert amounts(parse_statement(ofx(trn("-12,00")), "ofx")) == [-1200]
    yen = parse_statement(ofx(trn("-1500"), curdef="<CURDEF>JPY"), "ofx")
    assert yen.lines[0].amount == Money.of_minor(-1500, "JPY")
    kwd = parse_statement(ofx(trn("2.125"), curdef="<CURDEF>KWD"), "ofx")
    assert kwd.lines[0].amount == Money.of_minor(2125, "KWD")
    declared = parse_statement(ofx(trn(), curdef=""), "ofx", currency="CHF")
    assert declared.currency == "CHF"
    memo = parse_statement(ofx(trn(extra="<MEMO>  Order\n 4711  \n")), "ofx").lines[0]
    assert (memo.reference, memo.counterparty_name) == ("Order 4711", "Shop")
    converted = trn(extra="<ORIGCURRENCY><CURRATE>1.1<CURSYM>USD</ORIGCURRENCY>\n")
    assert amounts(parse_statement(ofx(converted), "ofx")) == [-1200]


def test_ofx_empty_sgml_leaf_keeps_its_siblings() -> None:
    """`<MEMO>` with no value looks like an aggregate opening until STMTTRN closes."""
    content = ofx("<STMTTRN>\n<MEMO>\n<DTPOSTED>20240102\n<TRNAMT>-1.00\n<FITID>F9\n</STMTTRN>\n")
    line = parse_statement(content, "ofx").lines[0]
    assert (line.amount, line.bank_reference, line.reference) == (eur(-100), "F9", "")


def test_ofx_credit_card_statement() -> None:
    content = ofx(trn()).replace("STMTRS>", "CCSTMTRS>").replace("BANKACCTFROM", "CCACCTFROM")
    statement = parse_statement(content, "ofx")
    assert (statement.account, amounts(statement)) == ("1", [-1200])


@pytest.mark.parametrize(
    ("content", "details"),
    [
        ("OFXHEADER:100\n\nnothing here", {"element": "OFX"}),
        (ofx(trn()).replace("</OFX>", ""), {"element": "OFX", "line": 5}),
        (ofx(trn())[:-60], {"element": "BANKTRANLIST", "line": 8}),
        (ofx(trn(), statements_=2), {"element": "STMTRS", "count": 2}),
        ("<OFX></OFX>", {"element": "STMTRS", "count": 0}),
        (ofx(trn(posted="2024-01-02")), {"element": "STMTTRN[1]/DTPOSTED", "line": 11}),
        (ofx(trn(posted="20240230")), {"element": "STMTTRN[1]/DTPOSTED", "line": 11}),
        (ofx(trn(amount="12.345")), {"element": "STMTTRN[1]/TRNAMT", "line": 12}),
        (ofx(trn(amount="1,234.00")), {"element": "STMTTRN[1]/TRNAMT", "line": 12}),
        (ofx(trn(amount="")), {"element": "STMTTRN[1]/TRNAMT", "line": 12}),
        (ofx(trn().replace("<TRNAMT>-12.00\n", "")), {"element": "STMTTRN[1]/TRNAMT", "line": 9}),
        (
            ofx(trn().replace("<DTPOSTED>20240102\n", "")),
            {"element": "STMTTRN[1]/DTPOSTED", "line": 9},
        ),
        (ofx(trn(), curdef=""), {"element": "CURDEF"}),
        (ofx(trn(), curdef="<CURDEF>ZZZ"), {"element": "CURDEF", "line": 7}),
        (
            ofx(trn(extra="<CURRENCY><CURRATE>1.1<CURSYM>USD</CURRENCY>\n")),
            {"element": "STMTTRN[1]/CURRENCY", "line": 15, "expected": "EUR"},
        ),
    ],
)
def test_ofx_errors(content: str, details: dict[str, Any]) -> None:
    assert format_error(content, "ofx").details == details


def test_ofx_declared_currency_must_match() -> None:
    error = format_error(ofx(trn()), "ofx", currency="USD")
    assert error.details == {"element": "CURDEF", "line": 7, "expected": "USD", "found": "EUR"}
