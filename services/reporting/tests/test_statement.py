"""The statement of account's pure parts: lines and running balance from dated movements, the
aging summary that adds up to the closing balance, and the CSV and PDF renderings."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.reporting.application.statement import statement_json
from services.reporting.application.statement_render import filename, render_csv, render_pdf
from services.reporting.domain.aging import InvoicePosition, Obligation
from services.reporting.domain.statement import (
    DISPUTED,
    ON_ACCOUNT,
    Movement,
    Statement,
    build_statement,
    describe,
    statement_lines,
)

D = date.fromisoformat
BUCKETS = ["current", "1-30", "31-60", "61-90", "90+"]


def mv(
    on: str,
    kind: str,
    amount: int,
    doc: str = "d1",
    *,
    reference: str | None = None,
    due_date: date | None = None,
    detail: str | None = None,
) -> Movement:
    return Movement(D(on), "EUR", kind, amount, doc, f"{kind}:{doc}", reference, due_date, detail)


def test_lines_in_date_order_with_running_balance() -> None:
    """Opening 100.00; an invoice of 500.00, a payment of 200.00 the same day (the invoice comes
    first), a credit note of 50.00 and a late fee of 10.00."""
    movements = [
        mv("2026-03-10", "credit_note", -5_000, "inv-a", reference="INV-1"),
        mv("2026-03-02", "payment", -20_000, "pay-1", detail="bank_transfer"),
        mv("2026-03-02", "invoice", 50_000, "inv-a", reference="INV-1", due_date=D("2026-04-01")),
        mv("2026-03-20", "late_fee", 1_000, "inv-a", reference="INV-1"),
    ]
    lines = statement_lines(10_000, movements)
    assert [(line.kind, line.debit, line.credit, line.balance) for line in lines] == [
        ("invoice", 50_000, 0, 60_000),
        ("payment", 0, 20_000, 40_000),
        ("credit_note", 0, 5_000, 35_000),
        ("late_fee", 1_000, 0, 36_000),
    ]
    assert [line.description for line in lines] == [
        "Invoice INV-1, due 2026-04-01",
        "Payment received (bank transfer)",
        "Credit note on invoice INV-1",
        "Late fee on invoice INV-1",
    ]


def test_descriptions_of_every_kind() -> None:
    assert describe(mv("2026-01-01", "refund", 100, "p")) == "Payment refunded"
    assert describe(mv("2026-01-01", "reversal", 100, "p", detail="chargeback")) == (
        "Payment charged back"
    )
    assert describe(mv("2026-01-01", "discount", -100, "i", reference="X")) == (
        "Early-payment discount on invoice X"
    )
    assert describe(mv("2026-01-01", "discount", 100, "i", reference="X")).endswith("reversed")
    assert describe(mv("2026-01-01", "write_off", -100, "i", reference="X")) == (
        "Invoice X written off"
    )
    assert describe(mv("2026-01-01", "void", -100, "i", reference="X")) == "Invoice X voided"
    assert describe(mv("2026-01-01", "payment", -100, "p")) == "Payment received"
    assert describe(mv("2026-01-01", "credit_note", -100, "i", reference="CN-7", detail="X")) == (
        "Credit note CN-7 on invoice X"
    )


def test_statement_with_aging_disputes_and_money_on_account() -> None:
    """On Mar 31: invoice A 300.00 due Feb 15 (44 days late), 100.00 of it disputed; invoice B
    200.00 due Apr 10 with 50.00 applied; 70.00 received and not applied yet."""
    positions = [
        InvoicePosition(
            "a", "c1", "EUR", D("2026-01-16"), (Obligation(D("2026-02-15"), 30_000),), 0, 10_000
        ),
        InvoicePosition(
            "b", "c1", "EUR", D("2026-03-11"), (Obligation(D("2026-04-10"), 20_000),), 5_000
        ),
    ]
    movements = [
        mv("2026-03-11", "invoice", 20_000, "b", reference="INV-B"),
        mv("2026-03-20", "payment", -5_000, "p1"),
        mv("2026-03-25", "payment", -7_000, "p2"),
    ]
    st_ = build_statement(
        "c1", "Acme", D("2026-03-01"), D("2026-03-31"), {"EUR": 30_000}, movements, positions
    )
    (eur,) = st_.currencies
    assert (eur.opening_balance, eur.debits, eur.credits, eur.closing_balance) == (
        30_000,
        20_000,
        12_000,
        38_000,
    )
    assert eur.aging == {
        "current": 15_000,
        "1-30": 0,
        "31-60": 20_000,
        "61-90": 0,
        "90+": 0,
        DISPUTED: 10_000,
        ON_ACCOUNT: -7_000,
    }
    assert sum(eur.aging.values()) == eur.closing_balance
    body = statement_json(st_)
    assert body["customer_name"] == "Acme" and body["from_date"] == "2026-03-01"
    block = body["currencies"][0]
    assert block["opening_balance_minor"] == 30_000 and block["closing_balance_minor"] == 38_000
    assert block["lines"][-1] == {
        "date": "2026-03-25",
        "kind": "payment",
        "document_id": "p2",
        "reference": None,
        "description": "Payment received",
        "debit_minor": 0,
        "credit_minor": 7_000,
        "balance_minor": 38_000,
    }


def test_an_unknown_customer_and_one_without_activity_get_the_same_empty_statement() -> None:
    empty = build_statement("nobody", None, D("2026-01-01"), D("2026-01-31"), {}, [], [])
    assert statement_json(empty) == {
        "customer_id": "nobody",
        "customer_name": None,
        "from_date": "2026-01-01",
        "to_date": "2026-01-31",
        "currencies": [],
    }
    one = build_statement("nobody", None, D("2026-01-01"), D("2026-01-31"), {}, [], [], "USD")
    (usd,) = statement_json(one)["currencies"]
    assert usd["lines"] == [] and usd["closing_balance_minor"] == 0
    assert usd["aging"] == dict.fromkeys([*BUCKETS, DISPUTED, ON_ACCOUNT], 0)


def test_only_currencies_with_something_to_show() -> None:
    """A currency whose balance is zero and that moved nothing in the period is left out."""
    movements = [mv("2026-01-05", "invoice", 100, "i")]
    result = build_statement(
        "c", None, D("2026-01-01"), D("2026-01-31"), {"USD": 0, "GBP": 5}, movements, []
    )
    assert [c.currency for c in result.currencies] == ["EUR", "GBP"]


def test_refuses_movements_outside_the_period_and_a_reversed_period() -> None:
    with pytest.raises(ValueError):
        build_statement(
            "c", None, D("2026-01-01"), D("2026-01-31"), {}, [mv("2026-02-01", "invoice", 1)], []
        )
    with pytest.raises(ValueError):
        build_statement("c", None, D("2026-02-01"), D("2026-01-31"), {}, [], [])


# ---- property: the statement adds up, whatever happened -----------------------------------------

START = D("2026-01-01")

invoices = st.lists(
    st.tuples(
        st.integers(0, 120),  # issued, days after START
        st.integers(0, 90),  # terms
        st.integers(1, 1_000_000),  # total
        st.lists(
            st.tuples(st.integers(0, 60), st.integers(0, 20), st.integers(1, 500_000)), max_size=3
        ),
        st.integers(0, 100_000),  # credit note (0: none)
        st.integers(0, 50_000),  # disputed
    ),
    max_size=6,
)
on_account = st.lists(st.tuples(st.integers(0, 150), st.integers(1, 300_000)), max_size=3)


@settings(max_examples=300, deadline=None)
@given(invoices, on_account, st.integers(0, 150), st.integers(0, 60))
def test_closing_is_opening_plus_debits_minus_credits_and_the_sum_of_the_aging(
    invoice_specs: list[tuple[int, int, int, list[tuple[int, int, int]], int, int]],
    cash: list[tuple[int, int]],
    from_offset: int,
    length: int,
) -> None:
    """Invoices with payments applied (received a few days earlier), credit notes and disputes,
    and money received that is never applied: the closing balance is opening + debits - credits,
    equals every movement up to to_date, and the aging buckets add up to it, with exactly the
    unapplied money on account."""
    start, end = START + timedelta(days=from_offset), START + timedelta(days=from_offset + length)
    movements: list[Movement] = []
    positions: list[InvoicePosition] = []
    unapplied = 0

    def add(on: date, kind: str, amount: int, doc: str) -> None:
        movements.append(Movement(on, "EUR", kind, amount, doc, f"{kind}:{doc}:{len(movements)}"))

    for n, (issued_at, terms, total, payments, credit, disputed) in enumerate(invoice_specs):
        issued = START + timedelta(days=issued_at)
        add(issued, "invoice", total, f"i{n}")
        settled, left = 0, total
        for k, (after, lag, amount) in enumerate(payments):
            applied = issued + timedelta(days=after)
            received = applied - timedelta(days=lag)
            amount = min(amount, left)
            left -= amount
            if amount == 0:
                continue
            add(received, "payment", -amount, f"p{n}.{k}")
            if received <= end < applied:
                unapplied += amount
            if applied <= end:
                settled += amount
        credit = min(credit, left)
        if credit:
            add(issued + timedelta(days=10), "credit_note", -credit, f"i{n}")
            if issued + timedelta(days=10) <= end:
                settled += credit
        if issued <= end:
            obligation = (Obligation(issued + timedelta(days=terms), total),)
            open_amount = total - settled
            positions.append(
                InvoicePosition(
                    f"i{n}", "c", "EUR", issued, obligation, settled, min(disputed, open_amount)
                )
            )
    for k, (at, amount) in enumerate(cash):
        add(START + timedelta(days=at), "payment", -amount, f"cash{k}")
        if START + timedelta(days=at) <= end:
            unapplied += amount

    opening = sum(m.amount for m in movements if m.on < start)
    period = [m for m in movements if start <= m.on <= end]
    result = build_statement("c", None, start, end, {"EUR": opening}, period, positions, "EUR")
    (eur,) = result.currencies
    assert eur.closing_balance == eur.opening_balance + eur.debits - eur.credits
    assert eur.closing_balance == sum(m.amount for m in movements if m.on <= end)
    assert eur.closing_balance == (eur.lines[-1].balance if eur.lines else opening)
    assert sum(eur.aging.values()) == eur.closing_balance
    assert eur.aging[ON_ACCOUNT] == -unapplied
    assert all(v >= 0 for k, v in eur.aging.items() if k != ON_ACCOUNT)


# ---- renderings -------------------------------------------------------------------------------


def _sample() -> Statement:
    positions = [
        InvoicePosition(
            "a", "c-1", "EUR", D("2026-01-16"), (Obligation(D("2026-02-15"), 30_000),), 0
        )
    ]
    movements = [
        mv("2026-01-16", "invoice", 30_000, "a", reference='=HYPERLINK("x")'),
        mv("2026-01-20", "payment", -1_050, "p"),
    ]
    return build_statement(
        "c-1",
        "Zoë Ŀtd 株式会社",
        D("2026-01-01"),
        D("2026-01-31"),
        {"EUR": 0},
        movements,
        positions,
    )


def test_csv_has_opening_lines_closing_and_aging_per_currency() -> None:
    st_ = _sample()
    assert filename(st_, "csv") == "statement-c-1-2026-01-01-2026-01-31.csv"
    rows = list(csv.DictReader(io.StringIO(render_csv(st_))))
    assert [r["kind"] for r in rows] == [
        "opening_balance",
        "invoice",
        "payment",
        "closing_balance",
        *["aging"] * 7,
    ]
    assert rows[0]["balance"] == "0.00"
    assert rows[1]["reference"].startswith("'=")  # no formula
    assert (rows[2]["credit"], rows[2]["balance"]) == ("10.50", "289.50")
    assert (rows[3]["debit"], rows[3]["credit"], rows[3]["balance"]) == (
        "300.00",
        "10.50",
        "289.50",
    )
    aging = {r["reference"]: r["balance"] for r in rows[4:]}
    assert aging["current"] == "300.00" and aging["on_account"] == "-10.50"


def test_pdf_renders_any_name_and_names_the_customer() -> None:
    st_ = _sample()
    pdf = render_pdf(st_, compress=False)
    assert pdf.startswith(b"%PDF")
    assert b"Statement of account" in pdf and b"c-1" in pdf
    assert b"289.50" in pdf and b"Opening balance" in pdf
    assert render_pdf(st_) == render_pdf(st_)
    empty = build_statement("x", None, D("2026-01-01"), D("2026-01-31"), {}, [], [])
    assert render_pdf(empty).startswith(b"%PDF")
