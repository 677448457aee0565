"""Invoice, credit, payments and reporting together through the real Postgres and Kafka: the
reports are built from what the other services publish, nothing else."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from services.credit.api.app import create_app as credit_app
from services.credit.config import CreditSettings
from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.api.app import create_app as invoice_app
from services.invoice.config import InvoiceSettings
from services.payments.api.app import create_app as payments_app
from services.payments.config import PaymentsSettings
from services.reporting.api.app import create_app as reporting_app
from services.reporting.config import ReportingSettings
from shared.auth import mint_token
from shared.migrations import upgrade
from shared.settings import AuthSettings
from tests.helpers import eventually, onboard

pytestmark = pytest.mark.integration

SCOPES = ("invoices:write", "credit:write", "payments:read", "payments:write", "reporting:read")


async def test_aging_and_behaviour_follow_invoices_and_payments_over_kafka() -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    token = mint_token(AuthSettings(), subject="erp", tenant_id=tenant, scopes=SCOPES)
    headers = {"Authorization": f"Bearer {token}"}
    names = ("credit", "invoice", "payments", "reporting")
    settings = (CreditSettings(), InvoiceSettings(), PaymentsSettings(), ReportingSettings())
    for name, s in zip(names, settings, strict=True):
        await upgrade(name, s.dsn())
    credit = credit_app(settings[0])
    payments = payments_app(settings[2])
    reporting = reporting_app(settings[3])
    async with (
        credit.router.lifespan_context(credit),
        payments.router.lifespan_context(payments),
        reporting.router.lifespan_context(reporting),
    ):
        checker = CreditCheckClient("http://credit", transport=httpx.ASGITransport(app=credit))
        invoices = invoice_app(settings[1], checker)

        def client(app: Any, base: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=base, headers=headers
            )

        async with (
            invoices.router.lifespan_context(invoices),
            client(invoices, "http://invoice") as inv,
            client(credit, "http://credit") as cred,
            client(payments, "http://payments") as pay,
            client(reporting, "http://reporting") as rep,
        ):
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
            before_issue = (
                date.fromisoformat(invoice["issue_date"]) - timedelta(days=1)
            ).isoformat()
            empty = await rep.get(f"/v1/reports/aging?as_of={before_issue}")
            assert empty.json()["totals"] == []
