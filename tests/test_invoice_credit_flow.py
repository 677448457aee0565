"""Invoice and credit services together: the credit check, then exposure kept through Kafka.

Both apps run their real relays and consumers against the real Postgres and Kafka; the invoice
service reaches the credit service's real endpoint over HTTP (in-process transport).
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from shared.testing import bearer
from tests.helpers import eventually, in_process, onboard

pytestmark = pytest.mark.integration

SCOPES = ("invoices:read", "invoices:write", "credit:read", "credit:write")
LINES = [
    {
        "description": "Consulting",
        "quantity": "10",
        "unit_price": 12_000,
        "taxes": [{"code": "VAT19", "percent": "19"}],
    }
]  # 1,428.00 EUR


async def test_issuing_checks_credit_and_exposure_follows_the_invoice_stream() -> None:
    headers = bearer(f"t{uuid.uuid4().hex[:10]}", SCOPES)
    async with in_process(headers) as services:
        inv, cred = services.clients["invoice"], services.clients["credit"]
        await onboard(inv, cred, 200_000)

        async def draft_and_issue() -> httpx.Response:
            d = await inv.post("/v1/invoices", json={"customer_id": "c-1", "lines": LINES})
            assert d.status_code == 201, d.text
            return await inv.post(f"/v1/invoices/{d.json()['invoice_id']}/issue", json={})

        first = await draft_and_issue()
        assert first.status_code == 200, first.text
        assert first.json()["credit_check"]["outcome"] == "passed"

        # InvoiceIssued travels relay -> Kafka -> credit consumer: exposure 1,428.00 EUR,
        # and the check's reservation is released as invoiced (not counted twice).
        account = await eventually(
            cred,
            "/v1/customers/c-1/credit",
            lambda a: a.get("exposure", {}).get("amount") == 142_800 and not a["reservations"],
        )
        assert account["headroom"] == {"amount": 57_200, "currency": "EUR"}

        second = await draft_and_issue()  # 1,428.00 more does not fit in 572.00
        assert second.status_code == 422, second.text
        reason = second.json()["error"]["details"]["reasons"][0]
        assert reason["code"] == "over_limit"
        assert reason["message"].startswith("over the limit by 856.00 EUR")
