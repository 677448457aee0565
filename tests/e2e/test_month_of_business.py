"""Acceptance: a month of a small business, end to end through the five services.

A fresh tenant sells to four customers over thirty days (day 30 is today, the month end) and
does everything through the services' HTTP APIs: credit limits, invoices on four kinds of terms,
payments (full, partial, early with the discount taken, an over-payment leaving cash unapplied),
a bank statement matched by reference, a dispute, reminders e-mailed by dunning (its scheduler
and mailer run for chosen days, the e-mails read back from the project's local SMTP server),
late fees charged back on the invoices, and an escalation that puts a customer on hold. At the
month end the aging, DSO and every customer's balance are checked against figures worked out by
hand below, and every balance is reconciled across invoice, payments, credit and reporting.

Amounts are minor units: 2_380_00 is 2,380.00.

The customers, their terms and what they are invoiced (EUR invoices carry 19 % VAT):

| customer | terms | invoices (issue day → due day) |
|---|---|---|
| Nordwind Logistik | net 30 | N1 2,000.00 + 380.00 = 2,380.00 (3 → 33), N2 500.00 + 95.00 = 595.00 (12 → 42) |
| Bergmann Bau | 2 % 10, net 30 | B1 1,500.00 + 285.00 = 1,785.00 (5 → 35), B2 800.00 + 152.00 = 952.00 (21 → 51) |
| Kiosk am Markt | due on receipt | K1 400.00 + 76.00 = 476.00 (3), K2 250.00 + 47.50 = 297.50 (11), K3 150.00 + 28.50 = 178.50 (17) |
| Harbor Labs (USD) | net 15 | H1 3,000.00 USD (8 → 23), H2 1,200.00 USD (18 → 33) |

The dunning policy: reminder 3 days before the due date, "overdue" 1 day after, "firm" 7 days
after with a late fee of 2 % of what is collectible, escalation to collections 20 days after;
at least 3 days between two e-mails to one customer; no timing adaptation.
"""

from __future__ import annotations

import calendar
from collections import Counter
from datetime import date
from typing import Any

import pytest

from tests.e2e.ledger import (
    VAT19,
    Customer,
    Email,
    Invoice,
    Json,
    Ledger,
    Month,
    csv_statement,
    dispute,
    draft,
    dunning_sees,
    five_services,
    invoice_state,
    issue,
    known_to_payments,
    line,
    money,
    ok,
    onboard,
    once_settled,
    pay,
    schedule_dunning,
    send_reminders,
)
from tests.helpers import eventually

pytestmark = pytest.mark.integration

NORDWIND = Customer(
    "nordwind",
    "Nordwind Logistik GmbH",
    "ap@nordwind.example",
    "EUR",
    {"kind": "net", "net_days": 30},
    credit_limit=20_000_00,
)
BERGMANN = Customer(
    "bergmann",
    "Bergmann Bau AG",
    "buchhaltung@bergmann.example",
    "EUR",
    {"kind": "net", "net_days": 30, "early_payment_discount": {"percent": "2", "within_days": 10}},
    credit_limit=10_000_00,
)
KIOSK = Customer(
    "kiosk",
    "Kiosk am Markt",
    "inhaber@kiosk.example",
    "EUR",
    {"kind": "due_on_receipt"},
    credit_limit=3_000_00,
)
HARBOR = Customer(
    "harbor",
    "Harbor Labs Inc.",
    "payables@harbor.example",
    "USD",
    {"kind": "net", "net_days": 15},
    credit_limit=10_000_00,
)
CUSTOMERS = (NORDWIND, BERGMANN, KIOSK, HARBOR)

DUNNING_POLICY = {
    "name": "House policy",
    "steps": [
        {"step_id": "pre_due", "offset_days": -3, "template": "reminder"},
        {"step_id": "overdue", "offset_days": 1, "template": "overdue"},
        {
            "step_id": "firm",
            "offset_days": 7,
            "template": "firm",
            "late_fee": {"kind": "percent", "percent": "2"},
        },
        {"step_id": "collections", "offset_days": 20, "template": "escalation", "escalate": True},
    ],
    "min_interval_days": 3,
    "adapt_to_behaviour": False,
}
USD_EUR = "0.90"  # the reporting currency is EUR; 1 USD = 0.90 EUR all month


async def open_the_books(ledger: Ledger, month: Month) -> None:
    """Reporting in EUR with a USD rate, the dunning policy, and the customers with limits."""
    ok(await ledger.reporting.put("/v1/settings", json={"reporting_currency": "EUR"}))
    rate = {"currency": "USD", "to_currency": "EUR", "rate_date": month.day(1).isoformat()}
    ok(await ledger.reporting.put("/v1/fx-rates", json={"rates": [{**rate, "rate": USD_EUR}]}))
    ok(await ledger.dunning.put("/v1/policies/tenant", json=DUNNING_POLICY))
    for customer in CUSTOMERS:
        await onboard(ledger, customer)


async def late_fees_reach_dunning(
    ledger: Ledger, customer: Customer, open_by_number: dict[str, int]
) -> None:
    """A fee goes dunning → Kafka → invoice (debit note) → Kafka → dunning; the mailer reads the
    open amounts when it sends, so wait for the round trip before mailing."""
    await dunning_sees(
        ledger,
        customer,
        lambda inv: all(inv[n]["open_amount"]["amount"] == a for n, a in open_by_number.items()),
    )


async def paid_in_invoicing(ledger: Ledger, invoice: Invoice) -> Json:
    """The allocation travels payments → Kafka → invoice, which records InvoicePaid."""
    body: Json = await eventually(
        ledger.invoice, f"/v1/invoices/{invoice.invoice_id}", lambda b: b["status"] == "paid"
    )
    return body


async def test_a_month_of_a_small_business() -> None:
    month = Month.ending_today()
    day = month.day
    async with five_services() as ledger:
        await open_the_books(ledger, month)

        # ---- Day 3: the kiosk's machine service (due on receipt) and Nordwind's route planning.
        k1 = await issue(ledger, KIOSK, day(3), line("Coffee machine service", 400_00, VAT19))
        n1 = await issue(ledger, NORDWIND, day(3), line("Route planning", 2_000_00, VAT19))
        assert (k1.total, k1.due_date) == (476_00, day(3))  # 400.00 + 19 % = 476.00
        assert (n1.total, n1.due_date) == (2_380_00, day(33))  # 2,000.00 + 19 % = 2,380.00

        # ---- Day 4: the first dunning run. K1 is one day overdue: the "overdue" step fires (the
        # pre-due reminder of day 0 is superseded, not sent as well).
        await dunning_sees(ledger, KIOSK, lambda inv: k1.number in inv)
        await schedule_dunning(ledger, day(4))
        assert await send_reminders(ledger, emails=1) == [
            Email(KIOSK.email, "overdue", {k1.number: "476.00 EUR"})
        ]

        # ---- Day 5 and 8: Bergmann's scaffolding on 2/10 net 30, Harbor's integration work.
        b1 = await issue(ledger, BERGMANN, day(5), line("Scaffolding rental", 1_500_00, VAT19))
        h1 = await issue(ledger, HARBOR, day(8), line("Sensor integration", 3_000_00))
        assert (b1.total, b1.due_date) == (1_785_00, day(35))  # 1,500.00 + 285.00
        assert (h1.total, h1.currency, h1.due_date) == (3_000_00, "USD", day(23))  # net 15

        # ---- Day 11: more beans for the kiosk, and dunning runs again. K1 is 8 days overdue:
        # "firm" with its fee, 2 % of 476.00 = 9.52, charged as a debit note on K1; K2 (due
        # today) gets its pre-due reminder in the same e-mail, whose tone is the firmest step's.
        k2 = await issue(ledger, KIOSK, day(11), line("Espresso beans", 250_00, VAT19))
        assert (k2.total, k2.due_date) == (297_50, day(11))  # 250.00 + 47.50
        await dunning_sees(ledger, KIOSK, lambda inv: k2.number in inv)
        await schedule_dunning(ledger, day(11))
        await late_fees_reach_dunning(ledger, KIOSK, {k1.number: 485_52})  # 476.00 + 9.52
        assert await send_reminders(ledger, emails=1) == [
            Email(KIOSK.email, "firm", {k1.number: "485.52 EUR", k2.number: "297.50 EUR"})
        ]
        k1_now = await invoice_state(ledger, k1)
        assert (k1_now["late_fees"], k1_now["open_amount"]) == (money(9_52), money(485_52))

        # ---- Days 12-18: Nordwind's warehouse handling, a milk frother for the kiosk, Harbor's
        # support retainer.
        n2 = await issue(ledger, NORDWIND, day(12), line("Warehouse handling", 500_00, VAT19))
        k3 = await issue(ledger, KIOSK, day(17), line("Milk frother", 150_00, VAT19))
        h2 = await issue(ledger, HARBOR, day(18), line("Support retainer", 1_200_00))
        assert (n2.total, n2.due_date) == (595_00, day(42))  # 500.00 + 95.00
        assert (k3.total, k3.due_date) == (178_50, day(17))  # 150.00 + 28.50
        assert (h2.total, h2.due_date) == (1_200_00, day(33))

        # ---- Day 19: the frother arrived broken; the kiosk disputes K3 in full.
        await dispute(ledger, k3, 178_50, "frother arrived broken", day(19))
        await dunning_sees(
            ledger, KIOSK, lambda inv: inv[k3.number]["disputed"]["amount"] == 178_50
        )

        # ---- Day 20: Nordwind pays 1,000.00 on account of N1; the reference names N1, the
        # amount is less than it: a partial payment, applied automatically (confidence 0.95).
        await known_to_payments(ledger, n1, 2_380_00)
        partial = await pay(ledger, NORDWIND, 1_000_00, day(20), f"Abschlag {n1.number}")
        assert partial["matching"]["outcome"] == "auto_applied", partial
        assert [a["invoice_id"] for a in partial["allocations"]] == [n1.invoice_id]
        # Dunning, day 20: K2 is 9 days overdue, so "firm" (the "overdue" step of day 12 is
        # superseded) with its fee 2 % of 297.50 = 5.95; K3 is disputed, so it is left out;
        # K1's next step (escalation) is only due on day 23. Harbor's H1 is due on day 23: its
        # pre-due reminder goes out today.
        await dunning_sees(ledger, HARBOR, lambda inv: h1.number in inv)
        await schedule_dunning(ledger, day(20))
        await late_fees_reach_dunning(ledger, KIOSK, {k2.number: 303_45})  # 297.50 + 5.95
        assert await send_reminders(ledger, emails=2) == [
            Email(KIOSK.email, "firm", {k2.number: "303.45 EUR"}),
            Email(HARBOR.email, "reminder", {h1.number: "3,000.00 USD"}),
        ]

        # ---- Day 21: formwork panels for Bergmann, again on 2/10 net 30 (discount to day 31).
        b2 = await issue(ledger, BERGMANN, day(21), line("Formwork panels", 800_00, VAT19))
        assert (b2.total, b2.due_date) == (952_00, day(51))  # 800.00 + 152.00

        # ---- Day 22: Harbor pays 3,100.00 USD naming H1 (3,000.00): an over-payment is
        # proposed (0.85), not applied; a person accepts it from the review queue, H1 is paid
        # and 100.00 USD stays unapplied.
        await known_to_payments(ledger, h1, 3_000_00)
        over = await pay(ledger, HARBOR, 3_100_00, day(22), f"{h1.number} + advance")
        assert over["matching"]["outcome"] == "proposed", over
        queue = ok(await ledger.payments.get("/v1/review/payments"))
        [waiting] = [p for p in queue["items"] if p["payment_id"] == over["payment_id"]]
        proposal = waiting["proposals"][0]
        assert (proposal["rule"], proposal["confidence"]) == ("invoice_number", "0.85")
        accepted = ok(await ledger.payments.post(f"/v1/proposals/{proposal['proposal_id']}/accept"))
        assert (accepted["applied"], accepted["unapplied"]) == (
            money(3_000_00, "USD"),
            money(100_00, "USD"),
        )
        await paid_in_invoicing(ledger, h1)

        # ---- Day 23: K1 is 20 days overdue: escalated to collections, with an e-mail saying
        # so (the last one was on day 20: 3 days ago, just allowed). Credit puts the kiosk on
        # hold when the escalation reaches it.
        await dunning_sees(ledger, HARBOR, lambda inv: not inv[h1.number]["open"])
        await schedule_dunning(ledger, day(23))
        assert await send_reminders(ledger, emails=1) == [
            Email(KIOSK.email, "escalation", {k1.number: "485.52 EUR"})
        ]
        escalations = ok(await ledger.dunning.get("/v1/escalations"))["items"]
        assert [
            (e["customer_id"], e["invoice_ids"], e["amount_due"], e["escalated_on"])
            for e in escalations
        ] == [("kiosk", [k1.invoice_id], money(485_52), day(23).isoformat())]
        held = await eventually(
            ledger.credit,
            "/v1/customers/kiosk/credit",
            lambda a: any(h["rule"] == "escalated" for h in a["holds"]),
        )
        assert held["on_hold"] is True

        # ---- Day 24: the kiosk orders again; on hold, the invoice cannot be issued.
        refused_id = await draft(ledger, KIOSK, line("Paper cups", 40_00, VAT19))
        refused = await ledger.invoice.post(
            f"/v1/invoices/{refused_id}/issue", json={"issue_date": day(24).isoformat()}
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "credit_check_failed"
        assert [r["code"] for r in error["details"]["reasons"]] == ["on_hold"]

        # ---- Day 25: Bergmann pays B1 in full, 1,785.00: its discount window closed on day 15.
        await known_to_payments(ledger, b1, 1_785_00)
        full = await pay(ledger, BERGMANN, 1_785_00, day(25), f"Rechnung {b1.number}")
        assert full["matching"]["outcome"] == "auto_applied", full
        # ---- Day 27: and B2 early, within its window (day 21 + 10 = day 31), taking the
        # discount: 952.00 - 2 % (19.04) = 932.96 settles it.
        await known_to_payments(ledger, b2, 952_00)
        early = await pay(
            ledger, BERGMANN, 932_96, day(27), f"Rechnung {b2.number} abzgl. 2% Skonto"
        )
        assert early["matching"]["outcome"] == "auto_applied", early
        b2_paid = await paid_in_invoicing(ledger, b2)
        assert (b2_paid["paid"], b2_paid["discounts_taken"]) == (money(932_96), money(19_04))

        # ---- Day 30: the bank statement. The 1,785.00 of day 26 confirms Bergmann's payment
        # recorded on day 25 (nothing is applied twice); Nordwind's 595.00 names N2 and settles
        # it (a new payment, matched by reference); the bank's own fee is outgoing.
        await known_to_payments(ledger, n2, 595_00)
        statement = csv_statement(
            [
                (day(26), "1785.00", f"Rechnung {b1.number}", BERGMANN.name),
                (day(29), "595.00", n2.number, NORDWIND.name),
                (day(29), "-12.50", "Kontofuehrung", "Hausbank"),
            ]
        )
        imported = ok(
            await ledger.payments.post(
                "/v1/bank-statements",
                json={"format": "csv", "content": statement, "currency": "EUR"},
            ),
            201,
        )
        assert {
            k: imported[k]
            for k in ("lines_imported", "matched", "proposed", "unmatched", "outgoing")
        } == {
            "lines_imported": 3,
            "matched": 2,
            "proposed": 0,
            "unmatched": 0,
            "outgoing": 1,
        }
        await paid_in_invoicing(ledger, n2)

        # Dunning, day 30: N1 (due day 33) and H2 (due day 33) get their pre-due reminders;
        # N1 shows what is left after the partial payment, 2,380.00 - 1,000.00 = 1,380.00.
        # The kiosk hears nothing: K1 is with collections, K2 escalates only on day 31, K3 is
        # disputed. Bergmann paid everything and has had no e-mail all month.
        await dunning_sees(
            ledger, NORDWIND, lambda inv: inv[n1.number]["open_amount"]["amount"] == 1_380_00
        )
        await schedule_dunning(ledger, day(30))
        assert await send_reminders(ledger, emails=2) == [
            Email(NORDWIND.email, "reminder", {n1.number: "1,380.00 EUR"}),
            Email(HARBOR.email, "reminder", {h2.number: "1,200.00 USD"}),
        ]
        recipients = Counter(str(m["To"]) for m in ledger.smtp.messages)
        assert recipients == {KIOSK.email: 4, HARBOR.email: 2, NORDWIND.email: 1}

        # ================================ month end =================================
        invoices = (n1, n2, b1, b2, k1, k2, k3, h1, h2)
        await month_end_balances(ledger, invoices)
        await month_end_reports(ledger, month)
        await payment_behaviour(ledger, month)
        await balances_reconcile(ledger, month, invoices)
        await the_general_ledger_agrees(ledger)


async def the_general_ledger_agrees(ledger: Ledger) -> None:
    """The journal (every financial event of the month posted in EUR and USD) balances, and
    its receivables per customer equal the aging's open items, to the minor unit."""

    def complete(report: Json) -> bool:
        return report["differences"] == 0 and report["compared_with_aging"] is True

    reconciliation = await eventually(ledger.reporting, "/v1/ledger/reconciliation", complete)
    aging = ok(await ledger.reporting.get("/v1/reports/aging"))
    owing = {row["customer_id"] for row in aging["customers"] if row["total"]}
    assert owing, "the month left nothing open"
    assert {r["customer_id"] for r in reconciliation["customers"]} == owing
    balance = ok(await ledger.reporting.get("/v1/ledger/trial-balance"))
    assert balance["functional_currency"] == "EUR"
    assert balance["balanced"] is True, balance
    assert all(t["difference_minor"] == 0 for t in balance["totals"])


async def month_end_balances(ledger: Ledger, invoices: tuple[Invoice, ...]) -> None:
    """Each invoice, each customer's unapplied cash and credit exposure, by hand."""
    n1, n2, b1, b2, k1, k2, k3, h1, h2 = invoices
    expected_invoices = {
        # number: (status, open, disputed)
        n1.number: ("partially_paid", 1_380_00, 0),  # 2,380.00 - 1,000.00
        n2.number: ("paid", 0, 0),  # 595.00 - 595.00 (bank statement)
        b1.number: ("paid", 0, 0),  # 1,785.00 - 1,785.00
        b2.number: ("paid", 0, 0),  # 952.00 - 932.96 - 19.04 discount
        k1.number: ("issued", 485_52, 0),  # 476.00 + 9.52 fee
        k2.number: ("issued", 303_45, 0),  # 297.50 + 5.95 fee
        k3.number: ("issued", 178_50, 178_50),  # disputed in full
        h1.number: ("paid", 0, 0),  # 3,000.00 of the 3,100.00 USD
        h2.number: ("issued", 1_200_00, 0),  # USD
    }

    def invoice_figures(body: Json) -> tuple[str, int, int]:
        return (
            body["status"],
            body["open_amount"]["amount"],
            body["disputed_amount"]["amount"],
        )

    actual_invoices = {
        inv.number: await once_settled(
            ledger.invoice,
            f"/v1/invoices/{inv.invoice_id}",
            invoice_figures,
            expected_invoices[inv.number],
        )
        for inv in invoices
    }
    assert actual_invoices == expected_invoices

    expected_cash: dict[str, list[Json]] = {
        "nordwind": [],
        "bergmann": [],
        "kiosk": [],
        "harbor": [{"amount": 100_00, "currency": "USD", "payments": 1}],  # 3,100.00 - 3,000.00
    }
    actual_cash = {
        c.customer_id: await once_settled(
            ledger.payments,
            f"/v1/customers/{c.customer_id}/unapplied-cash",
            lambda b: list(b["unapplied"]),
            expected_cash[c.customer_id],
        )
        for c in CUSTOMERS
    }
    assert actual_cash == expected_cash

    # Credit's exposure = open invoices - unapplied cash, in the account's currency; headroom
    # = limit - exposure; days overdue = how late the oldest open invoice is.
    expected_credit = {
        "nordwind": (money(1_380_00), money(0), money(1_380_00), money(18_620_00), 0, []),
        "bergmann": (money(0), money(0), money(0), money(10_000_00), 0, []),
        # 485.52 + 303.45 + 178.50 = 967.47 (disputed money is still owed); 3,000.00 - 967.47
        # = 2,032.53; K1 due day 3 → 27 days; on hold since the escalation
        "kiosk": (money(967_47), money(0), money(967_47), money(2_032_53), 27, ["escalated"]),
        # 1,200.00 - 100.00 = 1,100.00 USD; 10,000.00 - 1,100.00 = 8,900.00 USD
        "harbor": (
            money(1_200_00, "USD"),
            money(100_00, "USD"),
            money(1_100_00, "USD"),
            money(8_900_00, "USD"),
            0,
            [],
        ),
    }

    def credit_figures(account: Json) -> tuple[Any, ...]:
        return (
            account["open_invoices"],
            account["unapplied_cash"],
            account["exposure"],
            account["headroom"],
            account["days_overdue"],
            sorted(h["rule"] for h in account["holds"]),
        )

    actual_credit = {
        c.customer_id: await once_settled(
            ledger.credit,
            f"/v1/customers/{c.customer_id}/credit",
            credit_figures,
            expected_credit[c.customer_id],
        )
        for c in CUSTOMERS
    }
    assert actual_credit == expected_credit


async def month_end_reports(ledger: Ledger, month: Month) -> None:
    """Aging and DSO as of the month end, by hand."""
    end = month.end.isoformat()
    no_buckets = {"current": 0, "1-30": 0, "31-60": 0, "61-90": 0, "90+": 0}
    # Kiosk, days past due on day 30: K1 due day 3 → 27, its fee charged day 11 → 19, K2 due
    # day 11 → 19, its fee charged day 20 → 10: all 1-30, 476.00 + 9.52 + 297.50 + 5.95 =
    # 788.97; K3 (178.50) is disputed, apart from the buckets. Nordwind: N1's 1,380.00 is due
    # day 33, current. Harbor: H2's 1,200.00 USD is due day 33, current. Bergmann owes nothing.
    kiosk_eur = {
        "currency": "EUR",
        "buckets": {**no_buckets, "1-30": 788_97},
        "disputed": 178_50,
        "overdue": 788_97,
        "total": 967_47,  # 788.97 + 178.50
        "invoices": 3,
        "oldest_days_overdue": 27,
    }
    nordwind_eur = {
        "currency": "EUR",
        "buckets": {**no_buckets, "current": 1_380_00},
        "disputed": 0,
        "overdue": 0,
        "total": 1_380_00,
        "invoices": 1,
        "oldest_days_overdue": 0,
    }
    harbor_usd = {
        "currency": "USD",
        "buckets": {**no_buckets, "current": 1_200_00},
        "disputed": 0,
        "overdue": 0,
        "total": 1_200_00,
        "invoices": 1,
        "oldest_days_overdue": 0,
    }
    aging = await eventually(
        ledger.reporting,
        f"/v1/reports/aging?as_of={end}",
        lambda b: [t["total"] for t in b["totals"]] == [2_347_47, 1_200_00],
    )
    assert aging["customers"] == [
        {"customer_id": "harbor", "customer_name": HARBOR.name, **harbor_usd},
        {"customer_id": "kiosk", "customer_name": KIOSK.name, **kiosk_eur},
        {"customer_id": "nordwind", "customer_name": NORDWIND.name, **nordwind_eur},
    ]
    assert aging["totals"] == [
        {
            "currency": "EUR",
            "buckets": {**no_buckets, "current": 1_380_00, "1-30": 788_97},
            "disputed": 178_50,
            "overdue": 788_97,
            "total": 2_347_47,  # 1,380.00 + 788.97 + 178.50
            "invoices": 4,
            "oldest_days_overdue": 27,
        },
        {**harbor_usd},
    ]
    # In EUR at 0.90: 1,200.00 USD = 1,080.00 EUR, current.
    assert aging["reporting_total"] == {
        "currency": "EUR",
        "buckets": {**no_buckets, "current": 2_460_00, "1-30": 788_97},  # 1,380.00 + 1,080.00
        "disputed": 178_50,
        "overdue": 788_97,
        "total": 3_427_47,  # 2,347.47 + 1,080.00
        "missing_rates": [],
    }

    # DSO over a 30-day window ending on day 30, in EUR (the tenant's reporting currency).
    # Credit sales (net sales) of the window, all of them inside the month:
    #   EUR invoices 476.00 + 2,380.00 + 1,785.00 + 297.50 + 595.00 + 178.50 + 952.00 = 6,664.00
    #   EUR late fees 9.52 + 5.95 = 15.47                      → EUR net sales 6,679.47
    #   USD invoices 3,000.00 + 1,200.00 = 4,200.00 * 0.90     → 3,780.00
    #   credit sales = 6,679.47 + 3,780.00 = 10,459.47
    # Receivables at the end of day 30 (disputed money included):
    #   EUR 6,679.47 - collections (1,000.00 + 1,785.00 + 932.96 + 595.00 = 4,312.96)
    #       - discounts 19.04 = 2,347.47 (= the aging total)
    #   USD 4,200.00 - 3,000.00 = 1,200.00 * 0.90 = 1,080.00
    #   receivables = 2,347.47 + 1,080.00 = 3,427.47
    # Standard DSO = 3,427.47 / 10,459.47 * 30 = 9.8307… → 9.83
    # Best possible DSO = current 2,460.00 (N1 1,380.00 + H2 1,080.00) / 10,459.47 * 30
    #   = 7.0558… → 7.06
    # Countback DSO: the first period is the calendar month ending today, L = 28..31 days long
    # and holding every sale (the first is on day 3); 3,427.47 < 10,459.47, so
    #   3,427.47 / 10,459.47 * L: 28 → 9.18, 29 → 9.50, 30 → 9.83, 31 → 10.16
    countback_by_length = {28: "9.18", 29: "9.50", 30: "9.83", 31: "10.16"}
    expected_dso = {
        "currency": "EUR",
        "window_days": 30,
        "series": [
            {"date": end, "receivables": 3_427_47, "credit_sales": 10_459_47, "dso": "9.83"}
        ],
        "countback_dso": countback_by_length[first_countback_period_days(month.end)],
        "best_possible_dso": "7.06",
        "current_receivables": 2_460_00,
    }
    dso = await once_settled(
        ledger.reporting,
        f"/v1/reports/dso?from={end}&to={end}&window_days=30",
        lambda b: b,
        expected_dso,
    )
    assert dso == expected_dso


async def payment_behaviour(ledger: Ledger, month: Month) -> None:
    """Reporting's per-customer behaviour: days to pay, weighted by the amounts allocated."""
    expected = {
        # B1 1,785.00 received day 25, issued day 5 → 20 days; B2 932.96 received day 27,
        # issued day 21 → 6 days: (1,785.00 * 20 + 932.96 * 6) / 2,717.96 = 15.194… → 15.19
        "bergmann": (2, "15.19", "0.00", 0, {}),
        # H1 3,000.00 received day 22, issued day 8 → 14 days; due day 23, so 0 days late
        "harbor": (1, "14.00", "0.00", 0, {"USD": {"total": 1_200_00, "overdue": 0}}),
        # nothing paid; K3 disputed; open 967.47 of which 788.97 overdue
        "kiosk": (0, None, None, 1, {"EUR": {"total": 967_47, "overdue": 788_97}}),
        # N1 1,000.00 received day 20, issued day 3 → 17; N2 595.00 day 29 - day 12 → 17
        "nordwind": (1, "17.00", "0.00", 0, {"EUR": {"total": 1_380_00, "overdue": 0}}),
    }

    def behaviour(report: Json) -> dict[str, tuple[Any, ...]]:
        return {
            c["customer_id"]: (
                c["invoices_paid"],
                c["average_days_to_pay"],
                c["average_days_late"],
                c["open_disputes"],
                c["open"],
            )
            for c in report["customers"]
        }

    actual = await once_settled(
        ledger.reporting,
        f"/v1/reports/customers?as_of={month.end.isoformat()}",
        behaviour,
        expected,
    )
    assert actual == expected


def first_countback_period_days(end: date) -> int:
    """Days from one month before `end` (plus one day, clamped to month ends) to `end`."""
    year, month = (end.year, end.month - 1) if end.month > 1 else (end.year - 1, 12)
    day = min(end.day, calendar.monthrange(year, month)[1])
    return (end - date(year, month, day)).days


async def balances_reconcile(ledger: Ledger, month: Month, invoices: tuple[Invoice, ...]) -> None:
    """Per customer: the invoice service's open amounts = payments' view of them = the aging
    total = credit's open invoices, and credit's exposure = that - payments' unapplied cash."""
    aging = ok(await ledger.reporting.get(f"/v1/reports/aging?as_of={month.end.isoformat()}"))
    aged = {row["customer_id"]: row["total"] for row in aging["customers"]}
    for customer in CUSTOMERS:
        mine = [i for i in invoices if i.customer_id == customer.customer_id]
        open_in_invoicing = 0
        for inv in mine:
            body = await invoice_state(ledger, inv)
            in_payments = ok(
                await ledger.payments.get(f"/v1/invoices/{inv.invoice_id}/open-amount")
            )
            assert in_payments["open_amount"] == body["open_amount"], inv.number
            open_in_invoicing += body["open_amount"]["amount"]
        cash = ok(await ledger.payments.get(f"/v1/customers/{customer.customer_id}/unapplied-cash"))
        unapplied = sum(
            u["amount"] for u in cash["unapplied"] if u["currency"] == customer.currency
        )
        account = ok(await ledger.credit.get(f"/v1/customers/{customer.customer_id}/credit"))
        assert (
            open_in_invoicing,
            aged.get(customer.customer_id, 0),
            account["open_invoices"]["amount"],
            account["exposure"]["amount"],
        ) == (
            open_in_invoicing,
            open_in_invoicing,
            open_in_invoicing,
            open_in_invoicing - unapplied,
        ), customer.customer_id


# ---- cash recorded after the day it arrived ---------------------------------------------------
#
# Regressions of a bug this month turned up (fixed in stop 15): payments applied money recorded
# through its API on the day it was recorded, not the day it was received, so a payment that
# arrived on time but was keyed in late counted as late, and an early payment keyed in after the
# discount window lost its discount. Allocations now take effect on the received date (never
# before the invoice's issue date), as bank statement lines always did on their booking date.


async def test_a_payment_received_before_the_due_date_counts_as_on_time() -> None:
    """H1 is due on day 23; the transfer arrives on day 22 and is recorded on day 30: reporting
    and credit's risk score must both see a payment on time (they read `paid_on`)."""
    day = Month.ending_today().day
    async with five_services() as ledger:
        await onboard(ledger, HARBOR)
        h1 = await issue(ledger, HARBOR, day(8), line("Sensor integration", 3_000_00))
        await known_to_payments(ledger, h1, 3_000_00)
        paid = await pay(ledger, HARBOR, 3_000_00, day(22), h1.number)
        assert paid["matching"]["outcome"] == "auto_applied", paid
        await paid_in_invoicing(ledger, h1)
        report = await eventually(
            ledger.reporting,
            f"/v1/reports/customers?as_of={day(30).isoformat()}",
            lambda b: bool(b["customers"]) and b["customers"][0]["invoices_paid"] == 1,
        )
        [row] = report["customers"]
        await eventually(
            ledger.credit,
            "/v1/customers/harbor/credit",
            lambda a: a["open_invoices"]["amount"] == 0,
        )
        risk = ok(await ledger.credit.get("/v1/customers/harbor/risk"))
        factor = {f["code"]: f["value"] for f in risk["factors"]}
        assert (
            row["average_days_late"],
            row["on_time_rate"],
            factor["average_days_late"],
            factor["late_share"],
        ) == ("0.00", "1.0000", "0.00", "0.0000")


async def test_an_early_payment_recorded_after_the_discount_window_earns_the_discount() -> None:
    """B issued day 15 on 2/10 net 30 (discount to day 25); 952.00 - 2 % = 932.96 arrives on
    day 24 and is recorded on day 30: it settles the invoice with the 19.04 discount taken."""
    day = Month.ending_today().day
    async with five_services() as ledger:
        await onboard(ledger, BERGMANN)
        b = await issue(ledger, BERGMANN, day(15), line("Formwork panels", 800_00, VAT19))
        await known_to_payments(ledger, b, 952_00)
        paid = await pay(ledger, BERGMANN, 932_96, day(24), f"Rechnung {b.number} abzgl. 2% Skonto")
        assert paid["matching"]["outcome"] == "auto_applied", paid
        invoice = await eventually(
            ledger.invoice,
            f"/v1/invoices/{b.invoice_id}",
            lambda i: i["paid"]["amount"] == 932_96,
        )
        assert (invoice["status"], invoice["discounts_taken"], invoice["open_amount"]) == (
            "paid",
            money(19_04),
            money(0),
        )
