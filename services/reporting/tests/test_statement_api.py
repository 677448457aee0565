"""GET /v1/customers/{customer_id}/statement over events delivered through the real projector
into the real Postgres, against numbers worked out by hand."""

from __future__ import annotations

import csv
import io
import re
import uuid
import zlib
from datetime import date
from typing import Any

import httpx

from services.reporting.tests.conftest import Ledger, auth, get
from shared.contracts import invoice as inv
from shared.contracts import payments as pay
from shared.money import Money

D = date.fromisoformat
CUSTOMER = "acme-stmt-7731"
PATH = f"/v1/customers/{CUSTOMER}/statement"
BUCKETS = ["current", "1-30", "31-60", "61-90", "90+", "disputed", "on_account"]


def _eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


async def history(ledger: Ledger) -> dict[str, uuid.UUID]:
    """EUR: A 1000.00 issued Jan 1, due Jan 31; B 500.00 issued Feb 5, due Mar 15; 400.00 paid
    on A Feb 15; a 50.00 credit note CN-0007 on B Feb 20; a 25.00 late fee on A Feb 25; 10.00
    of B disputed Mar 1; 30.00 received (the payer's reference "ACME REMIT 0303") and not
    applied Mar 3, of which 10.00 refunded Mar 5.
    USD: C 200.00 issued Feb 10, due Mar 12. Another customer's invoice, which must not show."""
    await ledger.deliver(ledger.customer_event(CUSTOMER, "Acme Statement GmbH"))
    a, issued_a = ledger.issue(CUSTOMER, 100_000, D("2026-01-01"), D("2026-01-31"))
    b, issued_b = ledger.issue(CUSTOMER, 50_000, D("2026-02-05"), D("2026-03-15"))
    c, issued_c = ledger.issue(CUSTOMER, 20_000, D("2026-02-10"), D("2026-03-12"), currency="USD")
    _, other = ledger.issue("someone-else", 77_700, D("2026-02-01"), D("2026-03-01"))
    await ledger.deliver(issued_a, issued_b, issued_c, other)
    await ledger.pay(a, 40_000, D("2026-02-15"))
    credit_note = inv.CreditNoteIssued(
        invoice_id=b,
        credit_note_id=uuid.uuid4(),
        number="CN-0007",
        amount=_eur(5_000),
        reason="damaged goods",
        issued_on=D("2026-02-20"),
    )
    fee = inv.LateFeeCharged(
        invoice_id=a,
        fee_id=uuid.uuid4(),
        amount=_eur(2_500),
        reason="late",
        charged_on=D("2026-02-25"),
    )
    dispute = inv.DisputeOpened(
        invoice_id=b,
        dispute_id=uuid.uuid4(),
        amount=_eur(1_000),
        reason="short delivery",
        opened_on=D("2026-03-01"),
    )
    await ledger.deliver(
        ledger.on_invoice(b, credit_note), ledger.on_invoice(a, fee), ledger.on_invoice(b, dispute)
    )
    payment_id, received = ledger.received(
        CUSTOMER, 3_000, D("2026-03-03"), reference="ACME REMIT 0303"
    )
    refunded = pay.PaymentRefunded(
        payment_id=payment_id, amount=_eur(1_000), refunded_on=D("2026-03-05"), reason="asked"
    )
    await ledger.deliver(received, ledger.on_payment(payment_id, refunded, CUSTOMER))
    return {"a": a, "b": b, "c": c, "unapplied": payment_id}


def lines_of(block: dict[str, Any]) -> list[tuple[str, str, int, int, int]]:
    return [
        (x["date"], x["kind"], x["debit_minor"], x["credit_minor"], x["balance_minor"])
        for x in block["lines"]
    ]


async def test_statement_across_a_period_boundary_with_hand_computed_numbers(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    ids = await history(ledger)
    january = await get(api, tenant, PATH, from_date="2026-01-01", to_date="2026-01-31")
    assert january["customer_name"] == "Acme Statement GmbH"
    (jan,) = january["currencies"]  # USD has nothing before Feb 10
    assert (jan["currency"], jan["opening_balance_minor"], jan["closing_balance_minor"]) == (
        "EUR",
        0,
        100_000,
    )
    assert lines_of(jan) == [("2026-01-01", "invoice", 100_000, 0, 100_000)]
    assert jan["lines"][0]["document_id"] == str(ids["a"])
    assert jan["lines"][0]["reference"].startswith("INV-")

    report = await get(api, tenant, PATH, from_date="2026-02-01", to_date="2026-03-10")
    assert (report["customer_id"], report["from_date"], report["to_date"]) == (
        CUSTOMER,
        "2026-02-01",
        "2026-03-10",
    )
    eur, usd = report["currencies"]
    # the opening balance of February is January's closing balance
    assert eur["opening_balance_minor"] == jan["closing_balance_minor"] == 100_000
    assert lines_of(eur) == [
        ("2026-02-05", "invoice", 50_000, 0, 150_000),
        ("2026-02-15", "payment", 0, 40_000, 110_000),
        ("2026-02-20", "credit_note", 0, 5_000, 105_000),
        ("2026-02-25", "late_fee", 2_500, 0, 107_500),
        ("2026-03-03", "payment", 0, 3_000, 104_500),
        ("2026-03-05", "refund", 1_000, 0, 105_500),
    ]
    assert (eur["debits_minor"], eur["credits_minor"], eur["closing_balance_minor"]) == (
        53_500,
        48_000,
        105_500,
    )
    assert eur["lines"][4]["document_id"] == str(ids["unapplied"])
    assert eur["lines"][3]["description"].startswith("Late fee on invoice INV-")
    # what the customer reconciles with: the payer's own reference, the credit note's number
    b_number = eur["lines"][0]["reference"]
    assert (eur["lines"][4]["reference"], eur["lines"][4]["description"]) == (
        "ACME REMIT 0303",
        "Payment received (bank transfer)",
    )
    assert (eur["lines"][2]["reference"], eur["lines"][2]["description"]) == (
        "CN-0007",
        f"Credit note CN-0007 on invoice {b_number}",
    )
    # Aging on Mar 10: A's 600.00 left is 38 days past due, its fee (due Feb 25) 13 days; B's
    # 450.00 is not due yet, 10.00 of it disputed; 20.00 received and not applied
    assert eur["aging"] == {
        "current": 44_000,
        "1-30": 2_500,
        "31-60": 60_000,
        "61-90": 0,
        "90+": 0,
        "disputed": 1_000,
        "on_account": -2_000,
    }
    assert sum(eur["aging"].values()) == eur["closing_balance_minor"]
    assert list(eur["aging"]) == BUCKETS
    # the buckets are the aging report's for this customer on the same date
    aging = await get(api, tenant, "/v1/reports/aging", as_of="2026-03-10", customer_id=CUSTOMER)
    eur_row = next(r for r in aging["customers"] if r["currency"] == "EUR")
    assert {k: eur["aging"][k] for k in eur_row["buckets"]} == eur_row["buckets"]
    assert eur_row["disputed"] == eur["aging"]["disputed"]
    assert usd["currency"] == "USD" and lines_of(usd) == [
        ("2026-02-10", "invoice", 20_000, 0, 20_000)
    ]
    assert usd["aging"]["current"] == 20_000 and usd["aging"]["on_account"] == 0

    # the closing balance is the balance on to_date, whatever the period began with
    whole = await get(api, tenant, PATH, from_date="2026-01-01", to_date="2026-03-10")
    assert whole["currencies"][0]["closing_balance_minor"] == 105_500
    assert whole["currencies"][0]["aging"] == eur["aging"]
    only_usd = await get(
        api, tenant, PATH, from_date="2026-02-01", to_date="2026-03-10", currency="USD"
    )
    assert [c["currency"] for c in only_usd["currencies"]] == ["USD"]


async def test_csv_and_pdf(api: httpx.AsyncClient, ledger: Ledger, tenant: str) -> None:
    await history(ledger)
    params = {"from_date": "2026-02-01", "to_date": "2026-03-10"}
    r = await api.get(PATH, params={**params, "format": "csv"}, headers=auth(tenant))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == (
        f'attachment; filename="statement-{CUSTOMER}-2026-02-01-2026-03-10.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    eur = [row for row in rows if row["currency"] == "EUR"]
    assert [row["kind"] for row in eur] == [
        "opening_balance",
        "invoice",
        "payment",
        "credit_note",
        "late_fee",
        "payment",
        "refund",
        "closing_balance",
        *["aging"] * 7,
    ]
    assert eur[0]["balance"] == "1000.00"
    assert (eur[7]["debit"], eur[7]["credit"], eur[7]["balance"]) == ("535.00", "480.00", "1055.00")
    assert {row["reference"]: row["balance"] for row in eur[8:]}["31-60"] == "600.00"
    assert {row["currency"] for row in rows} == {"EUR", "USD"}

    r = await api.get(PATH, params={**params, "format": "pdf"}, headers=auth(tenant))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == (
        f'attachment; filename="statement-{CUSTOMER}-2026-02-01-2026-03-10.pdf"'
    )
    assert r.content.startswith(b"%PDF")
    text = pdf_text(r.content)
    for shown in (CUSTOMER, "Statement of account", "Acme Statement GmbH", "1,055.00", "-20.00"):
        assert f"({shown})".encode() in text, shown


def pdf_text(pdf: bytes) -> bytes:
    """The page content streams, inflated: what a reader of the PDF sees."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
    out = []
    for raw in streams:
        try:
            out.append(zlib.decompress(raw))
        except zlib.error:
            out.append(raw)
    return b"\n".join(out)


async def test_unknown_customer_and_another_tenants_customer_get_the_same_empty_statement(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    await history(ledger)
    stranger = f"t{uuid.uuid4().hex[:10]}"
    params = {"from_date": "2026-01-01", "to_date": "2026-03-31"}
    theirs = await get(api, stranger, PATH, **params)
    nobody = await get(api, tenant, "/v1/customers/nobody-0000/statement", **params)
    empty: dict[str, Any] = {"customer_name": None, **params, "currencies": []}
    assert theirs == {"customer_id": CUSTOMER, **empty}
    assert nobody == {"customer_id": "nobody-0000", **empty}
    for currency in ("EUR", None):
        query = {**params, **({"currency": currency} if currency else {})}
        a = await api.get(PATH, params=query, headers=auth(stranger))
        b = await api.get(
            PATH.replace(CUSTOMER, "nobody-0000"), params=query, headers=auth(stranger)
        )
        assert a.status_code == b.status_code == 200
        assert a.text.replace(CUSTOMER, "X") == b.text.replace("nobody-0000", "X")
    zeros = (
        await api.get(PATH, params={**params, "currency": "EUR"}, headers=auth(stranger))
    ).json()
    (block,) = zeros["currencies"]
    assert block["lines"] == [] and block["closing_balance_minor"] == 0
    assert block["aging"] == dict.fromkeys(BUCKETS, 0)
    # defaults (this month up to today) answer too, and the PDF of nothing is a PDF
    assert (await api.get(PATH, headers=auth(stranger))).status_code == 200
    pdf = await api.get(PATH, params={**params, "format": "pdf"}, headers=auth(stranger))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


async def test_refusals(api: httpx.AsyncClient, tenant: str) -> None:
    r = await api.get(
        PATH, params={"from_date": "2026-03-02", "to_date": "2026-03-01"}, headers=auth(tenant)
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_failed"
    assert set(r.json()["error"]) == {"code", "message", "details"}
    for bad in (
        {"from_date": "1899-12-31"},
        {"to_date": "3000-01-01"},
        {"currency": "XXXX"},
        {"currency": "ABC"},
        {"format": "xls"},
    ):
        r = await api.get(PATH, params=bad, headers=auth(tenant))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["code"] == "validation_failed"
    r = await api.get("/v1/customers/bad%20id/statement", headers=auth(tenant))
    assert r.status_code == 422
    r = await api.get(PATH, headers=auth(tenant, ("invoices:read",)))
    assert r.status_code == 403
    assert (await api.get(PATH)).status_code == 401
