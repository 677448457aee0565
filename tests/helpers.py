"""Helpers of the cross-service tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from services.credit.api.app import create_app as credit_app
from services.credit.config import CreditSettings
from services.dunning.api.app import create_app as dunning_app
from services.dunning.config import DunningSettings
from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.api.app import create_app as invoice_app
from services.invoice.config import InvoiceSettings
from services.payments.api.app import create_app as payments_app
from services.payments.config import PaymentsSettings
from services.reporting.api.app import create_app as reporting_app
from services.reporting.config import ReportingSettings
from shared.migrations import upgrade
from shared.settings import ServiceSettings


async def eventually(
    client: httpx.AsyncClient, path: str, ready: Callable[[Any], bool], timeout: float = 60
) -> Any:
    """GET `path` until it answers 200 with a body `ready` accepts (events travel through Kafka)."""
    deadline = asyncio.get_running_loop().time() + timeout
    body: Any = None
    while asyncio.get_running_loop().time() < deadline:
        r = await client.get(path)
        body = r.json()
        try:
            if r.status_code == 200 and ready(body):
                return body
        except (KeyError, IndexError):
            pass  # what `ready` looks for has not arrived yet (e.g. an invoice not yet known)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} not ready within {timeout}s: {body}")


ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}


async def onboard(
    invoices: httpx.AsyncClient, credit: httpx.AsyncClient, limit: int, customer_id: str = "c-1"
) -> None:
    """Register a customer (net 30, EUR) in the invoice service and give it a credit limit."""
    r = await invoices.post(
        "/v1/customers",
        json={
            "customer_id": customer_id,
            "name": "Acme",
            "email": "ap@acme.example",
            "currency": "EUR",
            "billing_address": ADDRESS,
            "default_terms": {"kind": "net", "net_days": 30},
        },
    )
    assert r.status_code == 201, r.text
    r = await credit.put(
        f"/v1/customers/{customer_id}/credit-limit",
        json={"limit": {"amount": limit, "currency": "EUR"}, "reason": "onboarding"},
    )
    assert r.status_code == 200, r.text


@dataclass
class InProcess:
    """Services running in this process: their apps and a client of each at `http://<name>`."""

    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    headers: Mapping[str, str]
    timeout: float = 5.0

    def client(self, app: FastAPI, name: str) -> httpx.AsyncClient:
        """A client of `app` at `http://<name>`, with the stack's headers and timeout."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=f"http://{name}",
            headers=self.headers,
            timeout=self.timeout,
        )


@asynccontextmanager
async def in_process(
    headers: Mapping[str, str],
    *,
    also: Sequence[str] = (),
    timeout: float = 5.0,
    **settings: ServiceSettings,
) -> AsyncIterator[InProcess]:
    """Credit, invoice and payments, and those of reporting and dunning named in `also`,
    against the real Postgres and Kafka, migrated and started with their relays and consumers;
    the invoice service reaches credit's real endpoint over an in-process transport. Dunning's
    scheduler is left to the test. `settings` replaces a service's defaults."""
    optional: dict[str, Callable[[], ServiceSettings]] = {
        "reporting": ReportingSettings,
        "dunning": lambda: DunningSettings(run_scheduler=False),
    }
    chosen: dict[str, ServiceSettings] = {
        "credit": CreditSettings(),
        "invoice": InvoiceSettings(),
        "payments": PaymentsSettings(),
        **{name: optional[name]() for name in also},
    }
    chosen.update(settings)
    for name, service_settings in chosen.items():
        await upgrade(name, service_settings.dsn())
    credit = credit_app(chosen["credit"])  # type: ignore[arg-type]
    checker = CreditCheckClient("http://credit", transport=httpx.ASGITransport(app=credit))
    factories: dict[str, Callable[[Any], FastAPI]] = {
        "credit": lambda _: credit,
        "invoice": lambda s: invoice_app(s, checker),
        "payments": payments_app,
        "reporting": reporting_app,
        "dunning": dunning_app,
    }
    apps = {name: factories[name](chosen[name]) for name in chosen}
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        running = InProcess(apps, {}, headers, timeout)
        for name, app in apps.items():
            running.clients[name] = await stack.enter_async_context(running.client(app, name))
        yield running
