"""Every service and the portal in-process, with a customer owing three invoices: what the portal
tests (in-process and in Chromium) start from."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from services.payments.config import PaymentsSettings
from services.portal.api.app import create_app as portal_app
from services.portal.config import PortalSettings
from services.portal.gateway.adapter import SandboxGateway
from services.portal.gateway.sandbox import SandboxGatewaySettings
from services.portal.gateway.sandbox import create_app as sandbox_app
from shared.migrations import upgrade
from shared.testing import HostRoutes, bearer
from tests.helpers import in_process

SCOPES = (
    "invoices:read",
    "invoices:write",
    "credit:write",
    "payments:read",
    "payments:write",
    "dunning:read",
    "dunning:write",
    "reporting:read",
    "portal:read",
    "portal:write",
    "ops:replay",
)
WEBHOOK_SECRET = "whsec_portal_tests_0123456789"
SANDBOX_KEY = "sk_test_portal_tests"


def today() -> date:
    """The services read the wall clock, so a test must too: a module constant goes stale when
    the suite runs across midnight."""
    return datetime.now(UTC).date()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def back_office(tenant: str) -> dict[str, str]:
    return bearer(tenant, SCOPES, "back-office")


async def onboard(
    invoice: httpx.AsyncClient,
    credit: httpx.AsyncClient,
    headers: dict[str, str],
    customer_id: str,
    name: str,
    invoices: tuple[tuple[int, int], ...],
    issued_relative_to: date,
) -> dict[str, str]:
    """Register the customer (EUR, net 30, a credit limit) and issue it one invoice per
    (amount in minor units, days before ``issued_relative_to``); returns the invoice ids by
    number."""
    customer = {
        "customer_id": customer_id,
        "name": name,
        "email": f"ap@{customer_id}.example",
        "currency": "EUR",
        "billing_address": {
            "line1": "1 Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "default_terms": {"kind": "net", "net_days": 30},
    }
    ok(await invoice.post("/v1/customers", json=customer, headers=headers), 201)
    limit = {"limit": {"amount": 1_000_000, "currency": "EUR"}, "reason": "onboarding"}
    path = f"/v1/customers/{customer_id}/credit-limit"
    ok(await credit.put(path, json=limit, headers=headers))
    numbers: dict[str, str] = {}
    for amount, days_ago in invoices:
        line = {"description": "Cordless drill", "quantity": "1", "unit_price": amount}
        body = {"customer_id": customer_id, "lines": [line]}
        draft = ok(await invoice.post("/v1/invoices", json=body, headers=headers), 201)
        day = {"issue_date": (issued_relative_to - timedelta(days=days_ago)).isoformat()}
        path = f"/v1/invoices/{draft['invoice_id']}/issue"
        issued = ok(await invoice.post(path, json=day, headers=headers))
        numbers[issued["number"]] = issued["invoice_id"]
    return numbers


@dataclass
class Customer:
    tenant: str
    customer_id: str
    invoices: dict[str, str]  # number -> invoice id
    headers: dict[str, str]
    onboarded_on: date  # the day its invoices' ages count from


@dataclass
class Stack:
    apps: dict[str, FastAPI]
    api: dict[str, httpx.AsyncClient]  # as the tenant's back office, per service
    portal_settings: PortalSettings

    async def customer(self, tenant: str, name: str) -> Customer:
        """A customer with invoices of 100.00 (60 days old), 250.00 (40) and 80.00 (5)."""
        headers = back_office(tenant)
        cid = f"{name}-{uuid.uuid4().hex[:8]}"
        onboarded_on = today()
        numbers = await onboard(
            self.api["invoice"],
            self.api["credit"],
            headers,
            cid,
            name.title(),
            ((10_000, 60), (25_000, 40), (8_000, 5)),
            onboarded_on,
        )
        return Customer(tenant, cid, numbers, headers, onboarded_on)

    async def known_everywhere(self, who: Customer) -> None:
        """Dunning and payments learn of invoices over Kafka; a promise names invoices dunning
        must know, and the portal takes a card payment only for invoices payments knows."""
        path = f"/v1/customers/{who.customer_id}/dunning"
        for _ in range(300):
            answer = await self.api["dunning"].get(path, headers=who.headers)
            known = [
                await self.api["payments"].get(f"/v1/invoices/{i}/open-amount", headers=who.headers)
                for i in who.invoices.values()
            ]
            if (
                answer.status_code == 200
                and len(answer.json()["invoices"]) == len(who.invoices)
                and all(k.status_code == 200 for k in known)
            ):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"dunning or payments does not know {who.customer_id}'s invoices")

    async def link(self, who: Customer, **body: Any) -> dict[str, Any]:
        request = {"customer_id": who.customer_id, **body}
        answer = await self.api["portal"].post(
            "/v1/portal-links", json=request, headers=who.headers
        )
        return ok(answer, 201)  # type: ignore[no-any-return]

    def browser(self) -> httpx.AsyncClient:
        """A customer's browser: the portal at ``http://portal``, the gateway's hosted page at
        ``http://gateway``; keeps cookies, follows no redirects by itself."""
        return httpx.AsyncClient(
            transport=HostRoutes({"portal": self.apps["portal"], "gateway": self.apps["gateway"]}),
            base_url="http://portal",
            timeout=30,
        )


@asynccontextmanager
async def portal_stack(tenants: Sequence[str] = ()) -> AsyncIterator[Stack]:
    """The services, the portal, and the sandbox gateway (``http://gateway``) whose webhooks
    the payments service accepts for ``tenants``."""
    secrets = {t: [SecretStr(WEBHOOK_SECRET)] for t in tenants}
    portal_settings = PortalSettings(
        invoice_url="http://invoice",
        payments_url="http://payments",
        dunning_url="http://dunning",
        reporting_url="http://reporting",
    )
    async with in_process(
        {},  # each call names its caller
        also=("dunning", "reporting"),
        timeout=30,
        payments=PaymentsSettings(webhook_secrets=secrets),
    ) as services:
        await upgrade("portal", portal_settings.dsn())
        apps = dict(services.apps)
        routes = HostRoutes(apps)
        apps["gateway"] = sandbox_app(
            SandboxGatewaySettings(
                api_key=SecretStr(SANDBOX_KEY),
                default_webhook_secret=SecretStr(WEBHOOK_SECRET),
                webhook_url_template="http://payments/v1/webhooks/gateway/{tenant_id}",
                public_url="http://gateway",
            ),
            webhook_client=httpx.AsyncClient(transport=routes, timeout=30),
        )
        gateway = SandboxGateway(
            "http://gateway", SANDBOX_KEY, client=httpx.AsyncClient(transport=routes, timeout=30)
        )
        apps["portal"] = portal_app(portal_settings, transport=routes, gateway=gateway)
        api = dict(services.clients)
        async with AsyncExitStack() as stack:
            for name in ("gateway", "portal"):
                app = apps[name]
                await stack.enter_async_context(app.router.lifespan_context(app))
                api[name] = await stack.enter_async_context(services.client(app, name))
            yield Stack(apps, api, portal_settings)
