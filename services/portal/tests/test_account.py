"""The portal's pure rules: what the customer sees, and what its forms may ask for."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from services.portal.domain import account as accounts
from shared.errors import NotFound, ValidationFailed
from shared.money import Money

TODAY = date(2026, 11, 24)


def invoice(
    number: str,
    open_minor: int,
    *,
    customer: str = "c1",
    status: str = "issued",
    due: date = TODAY,
    currency: str = "EUR",
    disputed: int = 0,
    total: int | None = None,
) -> dict[str, Any]:
    def eur(minor: int) -> dict[str, Any]:
        return {"amount": minor, "currency": currency}

    return {
        "invoice_id": str(uuid.uuid4()),
        "customer_id": customer,
        "number": number,
        "status": status,
        "currency": currency,
        "issue_date": (due - timedelta(days=30)).isoformat(),
        "due_date": due.isoformat(),
        "total_due": eur(total if total is not None else open_minor),
        "open_amount": eur(open_minor),
        "disputed_amount": eur(disputed),
    }


def payment(customer: str, minor: int, on: date, allocated: list[str]) -> dict[str, Any]:
    return {
        "payment_id": str(uuid.uuid4()),
        "customer_id": customer,
        "amount": {"amount": minor, "currency": "EUR"},
        "method": "card",
        "received_on": on.isoformat(),
        "reference": None,
        "status": "received",
        "allocations": [{"invoice_id": i} for i in allocated],
    }


def test_the_page_shows_only_the_customers_own_documents_sorted_with_days_overdue() -> None:
    late = invoice("INV-1", 10_000, due=TODAY - timedelta(days=12))
    soon = invoice("INV-2", 5_000, due=TODAY + timedelta(days=5))
    paid = invoice("INV-0", 0, status="paid", total=2_500)
    theirs = invoice("INV-9", 99_999, customer="c2")
    pays = [payment("c1", 2_500, TODAY, [paid["invoice_id"]]), payment("c2", 1, TODAY, [])]
    promises = [
        {"invoice_ids": [late["invoice_id"]], "promised_date": "2026-12-01"},
        {"invoice_ids": [late["invoice_id"], soon["invoice_id"]], "promised_date": "2026-12-05"},
    ]
    acct = accounts.account(
        "c1",
        [soon, theirs, late, paid],
        pays,
        [{"amount": 700, "currency": "EUR"}],
        TODAY,
        name="Alice",
        promises=promises,
    )
    assert acct.promised == {
        late["invoice_id"]: date(2026, 12, 5),
        soon["invoice_id"]: date(2026, 12, 5),
    }
    assert [i.number for i in acct.open_invoices] == ["INV-1", "INV-2"]
    assert [i.days_overdue for i in acct.open_invoices] == [12, 0]
    assert [i.number for i in acct.paid_invoices] == ["INV-0"]
    assert [p.invoice_numbers for p in acct.payments] == [["INV-0"]]
    assert acct.totals == {"EUR": Money.of_minor(15_000, "EUR")}
    assert acct.overdue == {"EUR": Money.of_minor(10_000, "EUR")}
    assert acct.unapplied == [Money.of_minor(700, "EUR")]


def test_a_changed_id_finds_nothing_whether_it_is_another_customers_or_nobodys() -> None:
    mine, theirs = invoice("INV-1", 100), invoice("INV-2", 100, customer="c2")
    acct = accounts.account("c1", [mine, theirs], [], [], TODAY)
    for probe in (theirs["invoice_id"], str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(NotFound) as refused:
            accounts.owned_open_invoice(acct, probe)
        assert refused.value.message == "no open invoice of yours with that id"


def test_paying_chosen_invoices_pays_what_is_not_disputed_in_one_currency() -> None:
    a, b = invoice("INV-1", 10_000, disputed=4_000), invoice("INV-2", 2_550)
    usd = invoice("INV-3", 100, currency="USD")
    acct = accounts.account("c1", [a, b, usd], [], [], TODAY)
    lines = accounts.selected(acct, [a["invoice_id"], b["invoice_id"]])
    assert accounts.checkout_amount(lines) == Money.of_minor(8_550, "EUR")
    with pytest.raises(ValidationFailed, match="different currencies"):
        accounts.selected(acct, [a["invoice_id"], usd["invoice_id"]])
    with pytest.raises(ValidationFailed, match="at least one"):
        accounts.selected(acct, [])
    with pytest.raises(ValidationFailed, match="twice"):
        accounts.selected(acct, [a["invoice_id"], a["invoice_id"]])
    fully = accounts.account("c1", [invoice("INV-4", 500, disputed=500)], [], [], TODAY)
    with pytest.raises(ValidationFailed, match="nothing payable"):
        accounts.checkout_amount(fully.open_invoices)


def test_a_dispute_is_the_whole_undisputed_amount_or_a_part_of_it() -> None:
    line = accounts.account("c1", [invoice("INV-1", 10_000, disputed=1_000)], [], [], TODAY)
    only = line.open_invoices[0]
    assert accounts.dispute_amount(only, "") == Money.of_minor(9_000, "EUR")
    assert accounts.dispute_amount(only, "12.5") == Money.of_minor(1_250, "EUR")
    for bad in ("90.01", "0", "-1", "abc", "1.234"):
        with pytest.raises(ValidationFailed):
            accounts.dispute_amount(only, bad)


def test_a_promise_needs_a_date_from_today_within_six_months_and_at_most_what_is_owed() -> None:
    acct = accounts.account(
        "c1", [invoice("INV-1", 10_000), invoice("INV-2", 5_000)], [], [], TODAY
    )
    lines = acct.open_invoices
    assert accounts.promise(lines, "", "2026-12-01", TODAY) == (
        Money.of_minor(15_000, "EUR"),
        date(2026, 12, 1),
    )
    assert accounts.promise(lines, "100", TODAY.isoformat(), TODAY)[0] == Money.of_minor(
        10_000, "EUR"
    )
    for amount, when in (
        ("150.01", "2026-12-01"),
        ("", "2026-11-23"),
        ("", "2027-06-01"),
        ("", ""),
        ("", "tomorrow"),
    ):
        with pytest.raises(ValidationFailed):
            accounts.promise(lines, amount, when, TODAY)


def test_a_statement_period_defaults_to_the_month_to_date_and_is_bounded() -> None:
    assert accounts.statement_period(None, None, TODAY) == (date(2026, 11, 1), TODAY)
    assert accounts.statement_period("2026-01-01", "2026-03-31", TODAY) == (
        date(2026, 1, 1),
        date(2026, 3, 31),
    )
    for start, end in (("2026-03-01", "2026-02-01"), (None, "2026-12-01"), ("x", None)):
        with pytest.raises(ValidationFailed):
            accounts.statement_period(start, end, TODAY)
