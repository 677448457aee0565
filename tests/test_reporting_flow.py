"""Invoice, credit, payments and reporting together through the real Postgres and Kafka: the
reports are built from what the other services publish, nothing else."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from shared.testing import bearer
from tests.helpers import eventually, in_process, onboard

pytestmark = pytest.mark.integration

SCOPES = ("invoices:write", "credit:write", "payments:read", "payments:write", "reporting:read")


async def test_aging_and_behaviour_follow_invoices_and_payments_over_kafka() -> None:
    headers = bearer(f"t{uuid.uuid4().hex[:10]}", SCOPES)
    async with in_process(headers, also=["reporting"]) as services:
        inv, cred = services.clients["invoice"], services.clients["credit"]
        pay, rep = services.clients["payments"], services.clients["reporting"]
        await onboard(inv, cred, 1_000_000)
        line = {"description": "Widgets", "quantity": "1", "unit_price": 50_000, "taxes": []}
        d = await inv.post("/v1/invoices", json={"customer_id": "c-1", "lines": [line]})
        assert d.status_code == 201, d.text
        issued = await inv.post(f"/v1/invoices/{d.json()['invoice_id']}/issue", json={})
        assert issued.status_code == 200, issued.text
        invoice = issued.json()
        due = date.fromisoformat(invoice["due_date"])

        after_due = (due + timedelta(days=10)).isoformat()
        aging = await eventually(
            rep,
            f"/v1/reports/aging?as_of={after_due}",
            lambda b: bool(b["customers"]),
        )
        row = aging["customers"][0]
        assert (row["customer_name"], row["buckets"]["1-30"], row["total"]) == (
            "Acme",
            50_000,
            50_000,
        )

        await eventually(
            pay,
            f"/v1/invoices/{invoice['invoice_id']}/open-amount",
            lambda b: b["open_amount"]["amount"] == 50_000,
        )
        r = await pay.post(
            "/v1/payments",
            json={
                "customer_id": "c-1",
                "amount": {"amount": 20_000, "currency": "EUR"},
                "method": "bank_transfer",
                "received_on": invoice["issue_date"],
                "reference": f"Part payment {invoice['number']}",
            },
        )
        assert r.status_code == 201, r.text
        # the payment reaches reporting twice: the allocation from payments, the
        # application from the invoice service; both are needed for what follows
        await eventually(
            rep,
            f"/v1/reports/aging?as_of={after_due}",
            lambda b: b["totals"] and b["totals"][0]["total"] == 30_000,
        )
        behaviour = await eventually(
            rep,
            f"/v1/reports/customers?as_of={after_due}",
            lambda b: b["customers"] and b["customers"][0]["average_days_to_pay"] is not None,
        )
        assert behaviour["customers"][0]["average_days_to_pay"] == "0.00"
        before_issue = (date.fromisoformat(invoice["issue_date"]) - timedelta(days=1)).isoformat()
        empty = await rep.get(f"/v1/reports/aging?as_of={before_issue}")
        assert empty.json()["totals"] == []
