"""DSO, collection effectiveness, customer behaviour and the forecast over projected events,
against numbers worked out by hand; duplicates and out-of-order delivery change nothing."""

from __future__ import annotations

import random
import uuid
from datetime import date
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.projections.tables import Tables
from services.reporting.tests.conftest import Ledger, auth, get
from shared.contracts import payments as pay
from shared.events.envelope import EventEnvelope
from shared.money import Money

D = date.fromisoformat


async def two_months(ledger: Ledger) -> dict[str, uuid.UUID]:
    """Jan: A 300.00 (due Feb 9) paid Jan 25; B 600.00 (due Feb 19).
    Feb: C 200.00 (due Mar 7); B partly paid 400.00 on Feb 15."""
    await ledger.deliver(ledger.customer_event("c1", "Acme"))
    a, issued_a = ledger.issue("c1", 30_000, D("2026-01-10"), D("2026-02-09"))
    b, issued_b = ledger.issue("c1", 60_000, D("2026-01-20"), D("2026-02-19"))
    c, issued_c = ledger.issue("c1", 20_000, D("2026-02-05"), D("2026-03-07"))
    await ledger.deliver(issued_a, issued_b)
    await ledger.pay(a, 30_000, D("2026-01-25"), paid_in_full=True)
    await ledger.deliver(issued_c)
    await ledger.pay(b, 40_000, D("2026-02-15"))
    return {"a": a, "b": b, "c": c}


async def test_dso_standard_countback_and_best_possible(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    await two_months(ledger)
    report = await get(
        api, tenant, "/v1/reports/dso", **{"from": "2026-01-30", "to": "2026-01-31"}, window_days=30
    )
    assert report["currency"] == "EUR"
    # Jan 31: receivables 600.00 (B), sales over Jan 2..31 = 900.00 -> 600/900*30 = 20.00
    assert report["series"] == [
        {"date": "2026-01-30", "receivables": 60_000, "credit_sales": 90_000, "dso": "20.00"},
        {"date": "2026-01-31", "receivables": 60_000, "credit_sales": 90_000, "dso": "20.00"},
    ]
    # countback: January (31 days) sold 900.00 >= 600.00 -> 600/900*31 = 20.67
    assert report["countback_dso"] == "20.67"
    # best possible: all 600.00 is not yet due -> 600/900*30 = 20.00
    assert report["best_possible_dso"] == "20.00"
    assert report["current_receivables"] == 60_000
    # Feb 28 over 90 days: receivables 200.00 (B) + 200.00 (C), sales 1100.00 -> 400/1100*90
    late = await get(api, tenant, "/v1/reports/dso", **{"from": "2026-02-28", "to": "2026-02-28"})
    assert late["series"][0]["dso"] == "32.73"
    # countback from Feb 28: Jan 29 - Feb 28 (31 days) sold 200.00 < 400.00 -> 31 days and
    # 200.00 left; Dec 29 - Jan 28 (31 days) sold 900.00 -> 200/900*31 = 6.89; 37.89 in all
    assert late["countback_dso"] == "37.89"


async def test_collection_effectiveness_turnover_and_days_to_pay(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    await two_months(ledger)
    report = await get(
        api, tenant, "/v1/reports/collection", **{"from": "2026-01-01", "to": "2026-02-28"}
    )
    jan, feb = report["periods"]
    assert (jan["start"], jan["end"], feb["start"], feb["end"]) == (
        "2026-01-01",
        "2026-01-31",
        "2026-02-01",
        "2026-02-28",
    )
    # January: CEI = (0 + 900 - 600) / (0 + 900 - 600 not yet due) * 100 = 100.00
    assert jan["collections"] == 30_000 and jan["closing_receivables"] == 60_000
    assert jan["closing_current"] == 60_000
    assert jan["cei"] == "100.00"
    # A: received Jan 25, invoiced Jan 10 -> 15 days to pay, not late
    assert jan["average_days_to_pay"] == "15.00" and jan["average_days_late"] == "0.00"
    # February: CEI = (600 + 200 - 400) / (600 + 200 - 200 current) * 100 = 400/600 = 66.67
    assert feb["opening_receivables"] == 60_000 and feb["credit_sales"] == 20_000
    assert feb["closing_receivables"] == 40_000 and feb["closing_current"] == 20_000
    assert feb["cei"] == "66.67"
    # turnover 200 / ((600 + 400) / 2) = 0.40; no write-offs
    assert feb["ar_turnover"] == "0.40" and feb["bad_debt_ratio"] == "0.00"
    # B: received Feb 15, invoiced Jan 20 -> 26 days
    assert feb["average_days_to_pay"] == "26.00"
    csv = await api.get(
        "/v1/reports/collection",
        params={"from": "2026-02-01", "to": "2026-02-28", "format": "csv"},
        headers=auth(tenant),
    )
    assert "66.67" in csv.text and "600.00" in csv.text


async def test_customer_behaviour(api: httpx.AsyncClient, ledger: Ledger, tenant: str) -> None:
    await two_months(ledger)
    await ledger.deliver(ledger.customer_event("c2", "Slow Co"))
    late, issued = ledger.issue("c2", 50_000, D("2026-01-01"), D("2026-01-31"))
    await ledger.deliver(issued)
    payment = await ledger.pay(late, 50_000, D("2026-03-10"), paid_in_full=True)
    reversed_ = pay.PaymentReversed(
        payment_id=payment,
        amount=Money.of_minor(50_000, "EUR"),
        reversed_on=D("2026-03-12"),
        reason="bounced",
        kind="bounced",
    )
    await ledger.deliver(ledger.on_payment(payment, reversed_, "c2"))
    report = await get(api, tenant, "/v1/reports/customers", as_of="2026-03-31", months=3)
    acme, slow = report["customers"]
    assert (acme["customer_id"], acme["invoices_paid"], acme["on_time_rate"]) == ("c1", 1, "1.0000")
    # weighted: 300.00 after 15 days and 400.00 after 26 -> (300*15 + 400*26) / 700 = 21.29
    assert acme["average_days_to_pay"] == "21.29" and acme["average_days_late"] == "0.00"
    assert acme["open"] == {"EUR": {"total": 40_000, "overdue": 40_000}}
    # Slow Co paid 38 days late (Jan 31 -> Mar 10), and the payment bounced
    assert (slow["invoices_paid"], slow["paid_on_time"], slow["on_time_rate"]) == (1, 0, "0.0000")
    assert slow["average_days_late"] == "38.00" and slow["reversals"] == 1
    assert [m["month"] for m in slow["days_late_by_month"]] == ["2026-01", "2026-02", "2026-03"]
    assert slow["trend"] == "unknown"  # one month with payments is not a trend


async def test_forecast_spreads_open_money_over_weeks(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    await two_months(ledger)
    _, far = ledger.issue("c9", 70_000, D("2026-03-01"), D("2026-09-30"))
    await ledger.deliver(far)
    report = await get(api, tenant, "/v1/reports/forecast", as_of="2026-03-05", weeks=4)
    weeks = report["weeks"]
    assert [w["week_start"] for w in weeks] == [
        "2026-03-02",
        "2026-03-09",
        "2026-03-16",
        "2026-03-23",
    ]
    # c1 pays on time (0 days late): B's 200.00 is overdue -> expected now (week 1);
    # C's 200.00 due Sat Mar 7 -> week 1; c9 has no history: default 0 days late -> Sep 30: later
    assert weeks[0]["expected"] == 40_000 and weeks[0]["items"] == 2
    assert report["later"] == 70_000 and report["total_open"] == 110_000


async def deliver_all(ledger: Ledger, envelopes: list[EventEnvelope]) -> None:
    for envelope in envelopes:
        await ledger.deliver(envelope)


async def table_rows(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> dict[str, list[tuple[Any, ...]]]:
    t = Tables("reporting")
    result = {}
    async with sessions() as session:
        for name in ("invoices", "obligations", "settlements", "payments", "allocations"):
            rows = await session.execute(
                text(f"SELECT * FROM {t.table(name)} WHERE tenant_id = :t"), {"t": tenant}
            )
            result[name] = sorted(tuple(str(v) for v in r[1:]) for r in rows)
    return result


async def test_out_of_order_and_duplicate_delivery_give_the_same_reports(
    api: httpx.AsyncClient,
    reporting_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The same events for two tenants: in order for one; for the other the payment and its
    allocation arrive before the invoice (another topic), every event twice, and the streams
    interleaved at random (each stream's own order kept, as Kafka keeps it)."""
    in_order = Ledger(reporting_sessions, f"t{uuid.uuid4().hex[:10]}", Tables("reporting"))
    shuffled = Ledger(reporting_sessions, f"t{uuid.uuid4().hex[:10]}", Tables("reporting"))
    customer = in_order.customer_event("c1", "Acme")
    invoice_id, issued = in_order.issue("c1", 50_000, D("2026-01-01"), D("2026-01-31"))
    payment_id, received = in_order.received("c1", 50_000, D("2026-02-10"))
    allocated = in_order.allocated(payment_id, invoice_id, 50_000, D("2026-02-10"), "c1")
    applied = in_order.applied(invoice_id, 50_000, D("2026-02-10"), payment_id=payment_id)
    streams = [[customer], [issued, applied], [received, allocated]]

    def copied(envelope: EventEnvelope) -> EventEnvelope:
        return envelope.model_copy(update={"tenant_id": shuffled.tenant})

    # in order: invoice first, then the payment
    await deliver_all(in_order, [e for stream in streams for e in stream])
    # out of order: the payments topic first; then all again, interleaved, each event twice
    await deliver_all(shuffled, [copied(e) for e in streams[2]])
    rng = random.Random(7)
    rest = [[copied(e) for e in stream] for stream in streams]
    merged: list[EventEnvelope] = []
    while any(rest):
        event = rng.choice([s for s in rest if s]).pop(0)
        merged += [event, event]
    await deliver_all(shuffled, merged)

    assert await table_rows(reporting_sessions, in_order.tenant) == await table_rows(
        reporting_sessions, shuffled.tenant
    )
    for path, params in (
        ("/v1/reports/aging", {"as_of": "2026-02-01"}),
        ("/v1/reports/customers", {"as_of": "2026-03-01"}),
        ("/v1/reports/collection", {"from": "2026-01-01", "to": "2026-02-28"}),
    ):
        a = await get(api, in_order.tenant, path, **params)
        b = await get(api, shuffled.tenant, path, **params)
        assert a == b, path
    behaviour = await get(api, shuffled.tenant, "/v1/reports/customers", as_of="2026-03-01")
    # the allocation seen before its invoice still counts: Feb 10 - Jan 31 = 10 days late
    assert behaviour["customers"][0]["average_days_late"] == "10.00"


async def test_a_stale_event_changes_nothing(
    api: httpx.AsyncClient, ledger: Ledger, tenant: str
) -> None:
    invoice, issued = ledger.issue("c1", 10_000, D("2026-01-01"), D("2026-01-31"))
    await ledger.deliver(issued)
    await ledger.pay(invoice, 10_000, D("2026-02-01"), paid_in_full=True)
    await ledger.deliver(issued)  # redelivered after the invoice was paid
    report = await get(api, tenant, "/v1/reports/customers", as_of="2026-03-01")
    assert report["customers"][0]["invoices_paid"] == 1
    assert (await get(api, tenant, "/v1/reports/aging", as_of="2026-03-01"))["totals"] == []
