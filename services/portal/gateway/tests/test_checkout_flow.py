"""Portal adapter -> sandbox hosted page -> signed webhook -> payments service (in-process, on
the real Postgres) -> PaymentReceived allocated to exactly the invoices paid at checkout."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from services.payments.api.app import create_app as create_payments_app
from services.payments.config import PaymentsSettings
from services.payments.consumers.invoices import invoice_handler
from services.portal.gateway.adapter import CheckoutRequest, SandboxGateway
from services.portal.gateway.sandbox import SandboxGatewaySettings
from services.portal.gateway.sandbox import create_app as create_sandbox_app
from shared.auth import mint_token
from shared.consumer import MessageContext
from shared.contracts.invoice import CreditCheckRecord, Installment, InvoiceIssued
from shared.db import make_engine, make_sessionmaker
from shared.migrations import upgrade
from shared.money import Money
from shared.settings import AuthSettings
from shared.testing import envelope_of

pytestmark = pytest.mark.integration

SECRET = "whsec_checkout_flow_0123456789"
API_KEY = "sk_test_checkout_flow"


def issued(customer: str, total_minor: int, number: str, due_days: int) -> InvoiceIssued:
    today = datetime.now(UTC).date()
    total = Money.of_minor(total_minor, "EUR")
    due = today + timedelta(days=due_days)
    return InvoiceIssued(
        invoice_id=uuid.uuid4(),
        customer_id=customer,
        currency="EUR",
        number=number,
        issue_date=today,
        due_date=due,
        total=total,
        subtotal=total,
        tax_total=Money.zero("EUR"),
        installments=[Installment(due_date=due, amount=total)],
        credit_check=CreditCheckRecord(outcome="passed", check_id="chk-1"),
    )


async def teach_payments(settings: PaymentsSettings, tenant: str, invoices: list[Any]) -> None:
    """The invoices reach payments as in production: their events through its consumer."""
    engine = make_engine(settings.dsn(), pool_size=2, application_name="portal-gateway-tests")
    sessions = make_sessionmaker(engine)
    handler = invoice_handler(settings.matching_policy())
    try:
        for invoice in invoices:
            envelope = envelope_of(
                tenant,
                invoice,
                stream_id=f"invoice-{invoice.invoice_id}",
                customer_id=invoice.customer_id,
            )
            async with sessions() as session, session.begin():
                await handler(
                    session,
                    envelope,
                    MessageContext("ar.invoice.invoice.v1", 0, 0, "payments.invoices"),
                )
    finally:
        await engine.dispose()


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def payments(tenant: str) -> AsyncIterator[tuple[FastAPI, PaymentsSettings]]:
    settings = PaymentsSettings(
        run_relay=False, run_consumers=False, webhook_secrets={tenant: [SECRET]}
    )
    await upgrade("payments", settings.dsn())
    app = create_payments_app(settings)
    async with app.router.lifespan_context(app):
        yield app, settings


async def test_a_checkout_paid_on_the_hosted_page_pays_the_chosen_invoices(
    tenant: str, payments: tuple[FastAPI, PaymentsSettings]
) -> None:
    payments_app, payments_settings = payments
    first = issued("cust-7", 30_000, "INV-2026-077001", due_days=20)
    second = issued("cust-7", 12_500, "INV-2026-077002", due_days=40)
    untouched = issued("cust-7", 42_500, "INV-2026-077003", due_days=5)  # same total: no match
    await teach_payments(payments_settings, tenant, [first, second, untouched])

    sandbox_settings = SandboxGatewaySettings(
        api_key=API_KEY,
        webhook_secrets={tenant: SECRET},
        webhook_url_template="http://payments.test/v1/webhooks/gateway/{tenant_id}",
        public_url="http://sandbox.test",
        delivery_backoff_seconds=0.05,
    )
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=payments_app)) as to_payments,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=create_sandbox_app(sandbox_settings, webhook_client=to_payments)
            ),
            base_url="http://sandbox.test",
        ) as browser,
    ):
        gateway = SandboxGateway("http://sandbox.test", API_KEY, browser)
        checkout_id = uuid.uuid4()
        session = await gateway.create_checkout(
            CheckoutRequest(
                checkout_id=checkout_id,
                tenant_id=tenant,
                customer_id="cust-7",
                amount_minor=42_500,
                currency="EUR",
                invoice_ids=[second.invoice_id, first.invoice_id],
                invoice_numbers=["INV-2026-077002", "INV-2026-077001"],
                description="Invoices INV-2026-077002, INV-2026-077001",
                success_url="http://portal.test/checkout/done",
                cancel_url="http://portal.test/invoices",
            )
        )
        page = await browser.get(session.redirect_url)
        assert page.status_code == 200 and 'id="pay-button"' in page.text
        paid = await browser.post(
            session.redirect_url,
            data={
                "card_number": "4242 4242 4242 4242",
                "card_expiry": "12/39",
                "card_cvc": "123",
                "card_name": "Ada Lovelace",
            },
        )
        assert paid.status_code == 303, paid.text
        query = parse_qs(urlsplit(paid.headers["location"]).query)
        assert query == {"checkout": [str(checkout_id)], "session": [session.session_id]}
        assert await gateway.session_status(session.session_id) == "complete"
        status = (
            await browser.get(
                f"/v1/checkout/sessions/{session.session_id}",
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
        ).json()
        assert status["webhook"]["delivered"] is True, status

    token = mint_token(
        AuthSettings(), subject="portal", tenant_id=tenant, scopes=("payments:read",)
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=payments_app), base_url="http://payments.test"
    ) as api:
        found = (
            await api.get("/v1/payments", params={"checkout_id": str(checkout_id)}, headers=headers)
        ).json()
        [payment] = found["items"]
        assert payment["customer_id"] == "cust-7" and payment["source"] == "gateway"
        assert payment["amount"] == {"amount": 42_500, "currency": "EUR"}
        assert payment["details"]["gateway_ref"] == status["payment_intent"]
        assert payment["details"]["last4"] == "4242"
        allocations = {a["invoice_id"]: a["amount"]["amount"] for a in payment["allocations"]}
        assert allocations == {str(first.invoice_id): 30_000, str(second.invoice_id): 12_500}
        assert payment["status"] == "applied"
        by_ref = (
            await api.get(
                "/v1/payments", params={"gateway_ref": status["payment_intent"]}, headers=headers
            )
        ).json()
        assert [p["payment_id"] for p in by_ref["items"]] == [payment["payment_id"]]
        for invoice, open_minor in ((first, 0), (second, 0), (untouched, 42_500)):
            r = await api.get(f"/v1/invoices/{invoice.invoice_id}/open-amount", headers=headers)
            assert r.json()["open_amount"]["amount"] == open_minor
