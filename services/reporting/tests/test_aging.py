"""Aging as of any date, through the real projector and the API, checked by hand."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.application import reads, reports
from services.reporting.application.reads import Scope
from services.reporting.domain.aging import (
    Basis,
    InvoicePosition,
    Obligation,
    buckets_for,
    open_portions,
    parse_boundaries,
)
from services.reporting.projections.tables import Tables
from services.reporting.tests.conftest import Ledger, auth, get
from shared.contracts import invoice as inv
from shared.money import Money

D = date.fromisoformat


def _eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def buckets(report: dict[str, object], customer: str | None = None) -> dict[str, int]:
    rows = report["customers"] if customer else report["totals"]
    assert isinstance(rows, list)
    row = next(r for r in rows if customer is None or r["customer_id"] == customer)
    return {k: v for k, v in row["buckets"].items() if v} | {
        f"_{k}": row[k] for k in ("disputed", "overdue", "total") if row[k]
    }


def test_buckets_and_boundaries() -> None:
    assert [b.key for b in buckets_for(Basis.DUE_DATE)] == [
        "current",
        "1-30",
        "31-60",
        "61-90",
        "90+",
    ]
    assert [b.key for b in buckets_for(Basis.INVOICE_DATE, (15, 45))] == ["0-15", "16-45", "45+"]
    assert parse_boundaries("7,14,21,28,60") == (7, 14, 21, 28, 60)
    for bad in ("0,30", "30,30", "60,30", "a", "30,", "-5"):
        with pytest.raises(ValueError):
            parse_boundaries(bad)


def test_open_portions_settle_and_dispute_oldest_first() -> None:
    position = InvoicePosition(
        invoice_id="i",
        customer_id="c",
        currency="EUR",
        issue_date=D("2026-01-01"),
        obligations=(
            Obligation(D("2026-03-02"), 40_000),
            Obligation(D("2026-01-31"), 60_000),
            Obligation(D("2026-02-15"), 5_000),
        ),
        settled=30_000,
        disputed=20_000,
    )
    # oldest first: 60_000 - 30_000 settled = 30_000 open, of which 20_000 disputed
    assert [
        (p.due_date.isoformat(), p.undisputed, p.disputed) for p in open_portions(position)
    ] == [
        ("2026-01-31", 10_000, 20_000),
        ("2026-02-15", 5_000, 0),
        ("2026-03-02", 40_000, 0),
    ]
    overpaid = InvoicePosition("i", "c", "EUR", D("2026-01-01"), position.obligations, 200_000)
    assert open_portions(overpaid) == []


async def test_an_invoice_paid_later_is_open_on_earlier_dates(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    await ledger.deliver(ledger.customer_event("c1", "Acme"))
    invoice, issued = ledger.issue("c1", 100_000, D("2026-01-01"), D("2026-01-31"))
    await ledger.deliver(issued)
    await ledger.pay(invoice, 100_000, D("2026-03-10"), paid_in_full=True)

    async def aging(as_of: str, **params: str) -> Any:
        return await get(api, tenant, "/v1/reports/aging", as_of=as_of, **params)

    before = await aging("2025-12-31")
    assert before["totals"] == [] and before["customers"] == []
    assert buckets(await aging("2026-01-15")) == {"current": 100_000, "_total": 100_000}
    # 29 days past due on Mar 1, still open although it was paid on Mar 10
    report = await aging("2026-03-01")
    assert buckets(report, "c1") == {"1-30": 100_000, "_overdue": 100_000, "_total": 100_000}
    assert report["customers"][0]["customer_name"] == "Acme"
    assert report["customers"][0]["oldest_days_overdue"] == 29
    # by invoice date: 59 days since Jan 1
    assert buckets(await aging("2026-03-01", basis="invoice_date")) == {
        "31-60": 100_000,
        "_overdue": 100_000,
        "_total": 100_000,
    }
    assert (await aging("2026-03-10"))["totals"] == []


async def test_instalments_fees_disputes_and_credit_notes_as_of_two_dates(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    invoice, issued = ledger.issue(
        "c1",
        100_000,
        D("2026-01-01"),
        D("2026-03-02"),
        installments=[(D("2026-01-31"), 60_000), (D("2026-03-02"), 40_000)],
    )
    dispute, credit_note = uuid.uuid4(), uuid.uuid4()
    await ledger.deliver(issued)
    await ledger.pay(invoice, 30_000, D("2026-02-10"))
    await ledger.deliver(
        ledger.on_invoice(
            invoice,
            inv.LateFeeCharged(
                invoice_id=invoice,
                fee_id=uuid.uuid4(),
                amount=_eur(5_000),
                reason="late",
                charged_on=D("2026-02-15"),
            ),
        ),
        ledger.on_invoice(
            invoice,
            inv.DisputeOpened(
                invoice_id=invoice,
                dispute_id=dispute,
                amount=_eur(20_000),
                reason="damaged goods",
                opened_on=D("2026-02-20"),
            ),
        ),
        ledger.on_invoice(
            invoice,
            inv.CreditNoteIssued(
                invoice_id=invoice,
                credit_note_id=credit_note,
                amount=_eur(20_000),
                reason="dispute accepted",
                issued_on=D("2026-04-01"),
                dispute_id=dispute,
            ),
        ),
        ledger.on_invoice(
            invoice,
            inv.DisputeResolved(
                invoice_id=invoice,
                dispute_id=dispute,
                outcome="accepted",
                credit_note_id=credit_note,
                resolved_on=D("2026-04-01"),
            ),
        ),
    )
    # Mar 5: open 30_000 of the first instalment (20_000 of it disputed, 33 days late), the fee
    # 5_000 (18 days), the second instalment 40_000 (3 days).
    march = await get(api, tenant, "/v1/reports/aging", as_of="2026-03-05")
    assert buckets(march) == {
        "1-30": 45_000,
        "31-60": 10_000,
        "_disputed": 20_000,
        "_overdue": 55_000,
        "_total": 75_000,
    }
    custom = await get(api, tenant, "/v1/reports/aging", as_of="2026-03-05", buckets="15,45")
    assert [b["key"] for b in custom["buckets"]] == ["current", "1-15", "16-45", "45+"]
    assert buckets(custom)["1-15"] == 40_000 and buckets(custom)["16-45"] == 15_000
    # Apr 2: the credit note settled 20_000 more; the dispute is over. 61, 46 and 31 days late.
    april = await get(api, tenant, "/v1/reports/aging", as_of="2026-04-02")
    assert buckets(april) == {
        "31-60": 45_000,
        "61-90": 10_000,
        "_overdue": 55_000,
        "_total": 55_000,
    }
    items = await get(api, tenant, "/v1/reports/aging/invoices", as_of="2026-04-02")
    assert [(i["due_date"], i["days"], i["open"]) for i in items["items"]] == [
        ("2026-01-31", 61, 10_000),
        ("2026-02-15", 46, 5_000),
        ("2026-03-02", 31, 40_000),
    ]


async def test_a_voided_invoice_leaves_the_aging_on_its_void_date(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    invoice, issued = ledger.issue("c1", 10_000, D("2026-01-01"), D("2026-01-31"))
    voided = inv.InvoiceVoided(invoice_id=invoice, reason="duplicate", voided_on=D("2026-02-10"))
    await ledger.deliver(issued, ledger.on_invoice(invoice, voided))
    assert (
        buckets(await get(api, tenant, "/v1/reports/aging", as_of="2026-02-09"))["_total"] == 10_000
    )
    assert (await get(api, tenant, "/v1/reports/aging", as_of="2026-02-10"))["totals"] == []


async def test_currencies_apart_and_in_the_reporting_currency(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    _, eur = ledger.issue("c1", 10_000, D("2026-02-01"), D("2026-03-03"))
    _, usd = ledger.issue("c2", 5_000, D("2026-02-01"), D("2026-03-03"), currency="USD")
    _, jpy = ledger.issue("c3", 7_000, D("2026-02-01"), D("2026-04-03"), currency="JPY")
    await ledger.deliver(eur, usd, jpy)
    report = await get(api, tenant, "/v1/reports/aging", as_of="2026-03-05")
    assert {t["currency"]: t["total"] for t in report["totals"]} == {
        "EUR": 10_000,
        "JPY": 7_000,
        "USD": 5_000,
    }
    assert report["reporting_total"] is None
    headers = auth(tenant)
    r = await api.put("/v1/settings", json={"reporting_currency": "EUR"}, headers=headers)
    assert r.status_code == 200, r.text
    rates = [
        {"currency": "USD", "to_currency": "EUR", "rate_date": "2026-03-01", "rate": "0.9"},
        {"currency": "USD", "to_currency": "EUR", "rate_date": "2026-03-06", "rate": "2"},
    ]
    r = await api.put("/v1/fx-rates", json={"rates": rates}, headers=headers)
    assert r.status_code == 200, r.text
    total = (await get(api, tenant, "/v1/reports/aging", as_of="2026-03-05"))["reporting_total"]
    # 50.00 USD at 0.9 (the rate of Mar 1, not Mar 6) = 45.00 EUR; JPY has no rate: listed
    assert total["total"] == 10_000 + 4_500 and total["missing_rates"] == ["JPY"]
    assert total["buckets"]["1-30"] == 14_500
    only_usd = await get(api, tenant, "/v1/reports/aging", as_of="2026-03-05", currency="USD")
    assert [t["currency"] for t in only_usd["totals"]] == ["USD"]


async def test_csv_export_in_major_units(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    await ledger.deliver(ledger.customer_event("c1", 'Acme, "the" Ltd'))
    _, issued = ledger.issue("c1", 123_456, D("2026-01-01"), D("2026-01-31"))
    await ledger.deliver(issued)
    r = await api.get(
        "/v1/reports/aging",
        params={"as_of": "2026-02-15", "format": "csv"},
        headers=auth(tenant),
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert (
        lines[0]
        == "customer_id,customer_name,currency,current,1-30,31-60,61-90,90+,disputed,overdue,total"
    )
    assert lines[1] == 'c1,"Acme, ""the"" Ltd",EUR,0.00,1234.56,0.00,0.00,0.00,0.00,1234.56,1234.56'
    assert lines[2] == "TOTAL,,EUR,0.00,1234.56,0.00,0.00,0.00,0.00,1234.56,1234.56"
    await ledger.deliver(ledger.customer_event("c1", '=HYPERLINK("http://x")'))
    r = await api.get(
        "/v1/reports/aging",
        params={"as_of": "2026-02-15", "format": "csv"},
        headers=auth(tenant),
    )
    # a name that a spreadsheet would run as a formula is kept as text
    assert r.text.splitlines()[1].startswith('c1,"\'=HYPERLINK(""http://x"")",EUR,')


async def test_tenants_scopes_and_bad_input(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    _, issued = ledger.issue("c1", 10_000, D("2026-01-01"), D("2026-01-31"))
    await ledger.deliver(issued)
    other = await get(api, "tother" + tenant[1:], "/v1/reports/aging", as_of="2026-02-15")
    assert other["totals"] == []
    r = await api.get("/v1/reports/aging", headers=auth(tenant, ("invoices:read",)))
    assert r.status_code == 403
    assert (await api.get("/v1/reports/aging")).status_code == 401
    for params in (
        {"buckets": "60,30"},
        {"basis": "payment_date"},
        {"as_of": "2026-02-30"},
        {"currency": "EURO"},
        {"currency": "XYZ"},
        {"customer_id": "bad id"},
    ):
        r = await api.get("/v1/reports/aging", params=params, headers=auth(tenant))
        assert r.status_code == 422, (params, r.text)
    bodies = (
        {"reporting_currency": "XYZ"},
        {"reporting_currency": "EUR", "extra": 1},
    )
    for body in bodies:
        r = await api.put("/v1/settings", json=body, headers=auth(tenant))
        assert r.status_code == 422, body
    same = {
        "rates": [{"currency": "EUR", "to_currency": "EUR", "rate_date": "2026-01-01", "rate": "1"}]
    }
    assert (await api.put("/v1/fx-rates", json=same, headers=auth(tenant))).status_code == 422
    zero = {
        "rates": [{"currency": "USD", "to_currency": "EUR", "rate_date": "2026-01-01", "rate": "0"}]
    }
    assert (await api.put("/v1/fx-rates", json=zero, headers=auth(tenant))).status_code == 422
    reader_only = auth(tenant, ("reporting:read",))
    r = await api.put("/v1/settings", json={"reporting_currency": "EUR"}, headers=reader_only)
    assert r.status_code == 403


async def test_todays_aging_from_open_items_equals_the_fold_over_every_invoice(
    ledger: Ledger, reporting_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    """The open-items tables (kept by the projector) must give exactly the aging the fold over
    every invoice gives, for every date on or after the tenant's horizon, both bases, company,
    one customer, one currency, and after payments, fees, credit notes, disputes and voids."""
    rng = random.Random(20261124)
    start = D("2026-01-05")
    customers = ["acme", "globex", "initech"]
    await ledger.deliver(*(ledger.customer_event(c, c.title()) for c in customers))
    for n in range(40):
        customer, currency = rng.choice(customers), rng.choice(["EUR", "EUR", "USD"])
        issued = start + timedelta(days=rng.randrange(60))
        total = rng.randrange(1_000, 500_000)
        due = issued + timedelta(days=rng.choice([0, 15, 30, 60]))
        parts = None
        if n % 5 == 0:
            first = total // 3
            parts = [(due, first), (due + timedelta(days=30), total - first)]
        invoice_id, envelope = ledger.issue(
            customer, total, issued, due, currency=currency, installments=parts
        )
        await ledger.deliver(envelope)
        later = issued + timedelta(days=rng.randrange(1, 40))
        match n % 8:
            case 0 | 1:
                await ledger.pay(invoice_id, rng.randrange(1, total), later, currency=currency)
            case 2:
                await ledger.pay(invoice_id, total, later, currency=currency, paid_in_full=True)
            case 3:
                dispute = inv.DisputeOpened(
                    invoice_id=invoice_id,
                    dispute_id=uuid.uuid4(),
                    amount=Money.of_minor(total // 2, currency),
                    reason="damaged",
                    opened_on=later,
                )
                await ledger.deliver(ledger.on_invoice(invoice_id, dispute))
                if rng.random() < 0.5:
                    resolved = inv.DisputeResolved(
                        invoice_id=invoice_id,
                        dispute_id=dispute.dispute_id,
                        outcome="rejected",
                        resolved_on=later + timedelta(days=5),
                    )
                    await ledger.deliver(ledger.on_invoice(invoice_id, resolved))
            case 4:
                fee = inv.LateFeeCharged(
                    invoice_id=invoice_id,
                    fee_id=uuid.uuid4(),
                    amount=Money.of_minor(1_500, currency),
                    reason="late",
                    charged_on=later,
                )
                await ledger.deliver(ledger.on_invoice(invoice_id, fee))
            case 5:
                note = inv.CreditNoteIssued(
                    invoice_id=invoice_id,
                    credit_note_id=uuid.uuid4(),
                    amount=Money.of_minor(total // 4, currency),
                    reason="goodwill",
                    issued_on=later,
                )
                await ledger.deliver(ledger.on_invoice(invoice_id, note))
            case 6:
                void = inv.InvoiceVoided(invoice_id=invoice_id, reason="error", voided_on=later)
                await ledger.deliver(ledger.on_invoice(invoice_id, void))
    tables = Tables("reporting")
    async with reporting_sessions() as session:
        horizon = await reads.aging_horizon(session, tables, tenant)
        assert horizon is not None
        scopes = [Scope(tenant), Scope(tenant, customer_id="globex"), Scope(tenant, currency="USD")]
        for as_of in (horizon, horizon + timedelta(days=17), horizon + timedelta(days=400)):
            for basis in Basis:
                for scope in scopes:
                    for customers_too in (True, False):
                        args = (session, tables, scope, as_of, basis, (30, 60, 90))
                        fast = await reports.aging(*args, customers=customers_too)
                        fold = await reports.aging(*args, customers=customers_too, open_items=False)
                        assert fast == fold, (as_of, basis, scope, customers_too)
        assert fast["totals"], "the scenario left nothing open"
