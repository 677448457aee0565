"""Invoice and dunning together through the real Postgres, Kafka and an SMTP server.

An invoice issued in the invoice service reaches dunning over Kafka; a run sends the customer
one e-mail and assesses a fee, which travels back to the invoice service as a debit note.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from services.dunning.adapters.email import SmtpConfig, SmtpSender
from services.dunning.adapters.smtp_server import LocalSmtpServer
from services.dunning.api.app import create_app as dunning_app
from services.dunning.application import mailer, scheduler
from services.dunning.config import DunningSettings
from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.api.app import create_app as invoice_app
from services.invoice.config import InvoiceSettings
from services.invoice.tests.credit_stub import credit_stub
from shared.migrations import upgrade
from shared.testing import bearer
from tests.helpers import eventually

pytestmark = pytest.mark.integration
SCOPES = ("invoices:read", "invoices:write", "dunning:read", "dunning:write")
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}


async def test_an_issued_invoice_is_dunned_by_email_and_its_fee_charged() -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    headers = bearer(tenant, SCOPES, "ops")
    inv_settings = InvoiceSettings()
    dun_settings = DunningSettings(run_scheduler=False)  # the test runs the workers' jobs
    await upgrade("invoice", inv_settings.dsn())
    await upgrade("dunning", dun_settings.dsn())
    credit = credit_stub({"c-1": 10_000_000})
    checker = CreditCheckClient("http://credit", transport=httpx.ASGITransport(app=credit))
    invoices, dunning = invoice_app(inv_settings, checker), dunning_app(dun_settings)

    def client(app: Any, base: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base, headers=headers
        )

    async with (
        invoices.router.lifespan_context(invoices),
        dunning.router.lifespan_context(dunning),
        client(invoices, "http://invoice") as inv,
        client(dunning, "http://dunning") as dun,
    ):
        policy = {
            "name": "early",
            "steps": [
                {
                    "step_id": "overdue_fee",
                    "offset_days": 1,
                    "template": "overdue",
                    "late_fee": {"kind": "flat", "flat": {"amount": 500, "currency": "EUR"}},
                }
            ],
            "min_interval_days": 0,
        }
        r = await dun.put("/v1/policies/tenant", json=policy)
        assert r.status_code == 200, r.text
        r = await inv.post(
            "/v1/customers",
            json={
                "customer_id": "c-1",
                "name": "Acme",
                "email": "ap@acme.example",
                "currency": "EUR",
                "billing_address": ADDRESS,
                "default_terms": {"kind": "net", "net_days": 30},
            },
        )
        assert r.status_code == 201, r.text
        d = await inv.post(
            "/v1/invoices",
            json={
                "customer_id": "c-1",
                "lines": [
                    {"description": "Goods", "quantity": "1", "unit_price": 10_000, "taxes": []}
                ],
            },
        )
        invoice_id = d.json()["invoice_id"]
        # Issued 60 days ago on net 30: a month overdue today.
        back_then = (datetime.now(UTC).date() - timedelta(days=60)).isoformat()
        issued = await inv.post(f"/v1/invoices/{invoice_id}/issue", json={"issue_date": back_then})
        assert issued.status_code == 200, issued.text
        await eventually(dun, "/v1/customers/c-1/dunning", lambda b: len(b["invoices"]) == 1)
        today = datetime.now(UTC).date()
        assert await scheduler.run_all(dunning.state.runtime.sessions, today, tenant) == 1
        with LocalSmtpServer(port=0) as smtp:
            config = mailer.MailerConfig(quiet_start=time(0, 0), quiet_end=time(0, 0))
            sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=smtp.port))
            sent = await mailer.run_once(dunning.state.runtime.sessions, sender, config, tenant)
            assert sent["sent"] == 1
            [message] = smtp.wait_for(1)
            assert message["To"] == "ap@acme.example"
            assert issued.json()["number"] in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        # The fee goes back over Kafka and the invoice service charges it as a debit note.
        charged = await eventually(
            inv, f"/v1/invoices/{invoice_id}", lambda b: b["late_fees"]["amount"] == 500
        )
        assert charged["open_amount"]["amount"] == 10_500
