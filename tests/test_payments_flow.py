"""Invoice, credit and payments together through the real Postgres and Kafka.

An invoice issued in the invoice service reaches payments (which learns its number and open
amount); a payment naming it is applied automatically; the allocation reaches the invoice
service (paid) and credit (unapplied cash, then exposure). Then the race the compensation is
for: a credit note lands on an invoice between payments' decision and the invoice seeing the
allocation; the invoice rejects it and payments takes it back, so no cent is lost.
"""

from __future__ import annotations

import uuid
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
from shared.migrations import upgrade
from shared.testing import bearer
from tests.helpers import eventually, onboard

pytestmark = pytest.mark.integration

SCOPES = (
    "invoices:read",
    "invoices:write",
    "credit:read",
    "credit:write",
    "payments:read",
    "payments:write",
)


def lines(unit_price: int) -> list[dict[str, Any]]:
    return [{"description": "Widgets", "quantity": "1", "unit_price": unit_price, "taxes": []}]


async def test_payment_applied_across_services_and_a_rejected_allocation_comes_back() -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    headers = bearer(tenant, SCOPES)
    settings = (CreditSettings(), InvoiceSettings(), PaymentsSettings())
    for name, s in zip(("credit", "invoice", "payments"), settings, strict=True):
        await upgrade(name, s.dsn())
    credit = credit_app(settings[0])
    payments = payments_app(settings[2])
    async with credit.router.lifespan_context(credit), payments.router.lifespan_context(payments):
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
        ):
            await onboard(inv, cred, 1_000_000)

            async def issue(unit_price: int) -> dict[str, Any]:
                d = await inv.post(
                    "/v1/invoices", json={"customer_id": "c-1", "lines": lines(unit_price)}
                )
                assert d.status_code == 201, d.text
                issued = await inv.post(f"/v1/invoices/{d.json()['invoice_id']}/issue", json={})
                assert issued.status_code == 200, issued.text
                body: dict[str, Any] = issued.json()
                return body

            first = await issue(50_000)
            await eventually(
                pay,
                f"/v1/invoices/{first['invoice_id']}/open-amount",
                lambda b: b["open_amount"]["amount"] == 50_000,
            )
            r = await pay.post(
                "/v1/payments",
                json={
                    "customer_id": "c-1",
                    "amount": {"amount": 50_000, "currency": "EUR"},
                    "method": "bank_transfer",
                    "received_on": first["issue_date"],
                    "reference": f"Remittance {first['number']}",
                },
            )
            assert r.status_code == 201, r.text
            assert r.json()["matching"]["outcome"] == "auto_applied"
            await eventually(
                inv, f"/v1/invoices/{first['invoice_id']}", lambda b: b["status"] == "paid"
            )
            await eventually(
                cred,
                "/v1/customers/c-1/credit",
                lambda a: a.get("exposure", {}).get("amount") == 0,
            )

            second = await issue(30_000)
            await eventually(
                pay,
                f"/v1/invoices/{second['invoice_id']}/open-amount",
                lambda b: b["open_amount"]["amount"] == 30_000,
            )

        # The race, made deterministic: the invoice service's consumers are stopped, so the
        # allocation waits in Kafka while a 100.00 credit note is recorded on the invoice.
        offline = invoice_app(InvoiceSettings(run_consumers=False), checker)
        async with (
            offline.router.lifespan_context(offline),
            client(offline, "http://invoice") as inv,
            client(payments, "http://payments") as pay,
        ):
            paid = await pay.post(
                "/v1/payments",
                json={
                    "customer_id": "c-1",
                    "amount": {"amount": 30_000, "currency": "EUR"},
                    "method": "bank_transfer",
                    "received_on": second["issue_date"],
                    "allocations": [
                        {
                            "invoice_id": second["invoice_id"],
                            "amount": {"amount": 30_000, "currency": "EUR"},
                        }
                    ],
                },
            )
            assert paid.status_code == 201, paid.text
            assert paid.json()["status"] == "applied"
            payment_id = paid.json()["payment_id"]
            note = await inv.post(
                f"/v1/invoices/{second['invoice_id']}/credit-notes",
                json={"amount": 10_000, "reason": "damaged"},
            )
            assert note.status_code == 201, note.text

        # Consumers back: the invoice rejects the allocation, payments takes it back.
        online = invoice_app(settings[1], checker)
        async with (
            online.router.lifespan_context(online),
            client(online, "http://invoice") as inv,
            client(payments, "http://payments") as pay,
        ):
            back = await eventually(
                pay,
                f"/v1/payments/{payment_id}",
                lambda b: b["unapplied"]["amount"] == 30_000 and not b["allocations"],
            )
            assert back["status"] == "unapplied"
            invoice = (await inv.get(f"/v1/invoices/{second['invoice_id']}")).json()
            assert invoice["open_amount"]["amount"] == 20_000 and not invoice["payments"]
            await eventually(
                pay,
                f"/v1/invoices/{second['invoice_id']}/open-amount",
                lambda b: b["open_amount"]["amount"] == 20_000,
            )
            # Credit counts the cash as unapplied again, and the invoice's 200.00 as open.
            await eventually(
                cred_client := client(credit, "http://credit"),
                "/v1/customers/c-1/credit",
                lambda a: a.get("exposure", {}).get("amount") == 20_000 - 30_000,
            )
            await cred_client.aclose()
