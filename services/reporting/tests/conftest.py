"""Reporting fixtures: the real `reporting` schema, the API in-process (no consumers; the tests
deliver events through the real projector), and a `Ledger` that writes the events other
services would publish, with per-stream versions as the event store assigns them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.reporting.api.app import create_app
from services.reporting.config import ReportingSettings
from services.reporting.projections.projector import Projector
from services.reporting.projections.tables import Tables
from shared.contracts import invoice as inv
from shared.contracts import payments as pay
from shared.db import make_sessionmaker
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload
from shared.money import Money
from shared.testing import app_client, bearer, envelope_of, service_engine

SCOPES = ("reporting:read", "reporting:admin")


def auth(tenant: str, scopes: tuple[str, ...] = SCOPES) -> dict[str, str]:
    return bearer(tenant, scopes, "analyst")


@pytest.fixture(scope="session")
async def reporting_engine() -> AsyncIterator[AsyncEngine]:
    async with service_engine("reporting", ReportingSettings().dsn(), pool_size=5) as engine:
        yield engine


@pytest.fixture
def reporting_sessions(reporting_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(reporting_engine)


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    settings = ReportingSettings(run_relay=False, run_consumers=False)
    async with app_client(create_app(settings), "http://r") as client:
        yield client


class Ledger:
    """Builds the envelopes the invoice and payments services would publish for one tenant and
    applies them through the projector (or just returns them, for out-of-order delivery)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], tenant: str, tables: Tables
    ) -> None:
        self.sessions = sessions
        self.tenant = tenant
        self.projector = Projector(tables)
        self.versions: dict[str, int] = defaultdict(int)
        self.customers: dict[uuid.UUID, str] = {}

    def envelope(self, stream: str, event: EventPayload, customer: str) -> EventEnvelope:
        self.versions[stream] += 1
        return envelope_of(
            self.tenant,
            event,
            stream_id=stream,
            customer_id=customer,
            stream_version=self.versions[stream],
        )

    async def deliver(self, *envelopes: EventEnvelope) -> None:
        async with self.sessions() as session, session.begin():
            for envelope in envelopes:
                await self.projector.apply(session, envelope)

    # ---- the invoice service's events ---------------------------------------------------------

    def customer_event(self, customer: str, name: str, currency: str = "EUR") -> EventEnvelope:
        event = inv.CustomerRegistered(
            customer_id=customer,
            name=name,
            email="ap@example.com",
            currency=currency,
            billing_address=inv.Address(
                line1="1 Main St", city="Berlin", postal_code="10115", country="DE"
            ),
        )
        return self.envelope(f"customer-{customer}", event, customer)

    def issue(
        self,
        customer: str,
        total: int,
        issued: date,
        due: date,
        *,
        currency: str = "EUR",
        installments: list[tuple[date, int]] | None = None,
    ) -> tuple[uuid.UUID, EventEnvelope]:
        invoice_id = uuid.uuid4()
        self.customers[invoice_id] = customer
        parts = installments or [(due, total)]
        event = inv.InvoiceIssued(
            invoice_id=invoice_id,
            customer_id=customer,
            currency=currency,
            number=f"INV-{uuid.uuid4().int % 10**8:08d}",
            issue_date=issued,
            due_date=due,
            total=Money.of_minor(total, currency),
            subtotal=Money.of_minor(total, currency),
            tax_total=Money.zero(currency),
            installments=[
                inv.Installment(due_date=d, amount=Money.of_minor(a, currency)) for d, a in parts
            ],
            credit_check=inv.CreditCheckRecord(outcome="passed", check_id="chk"),
        )
        self.versions[f"invoice-{invoice_id}"] = 1  # InvoiceDrafted came first
        return invoice_id, self.envelope(f"invoice-{invoice_id}", event, customer)

    def on_invoice(self, invoice_id: uuid.UUID, event: EventPayload) -> EventEnvelope:
        return self.envelope(f"invoice-{invoice_id}", event, self.customers[invoice_id])

    def applied(
        self,
        invoice_id: uuid.UUID,
        amount: int,
        on: date,
        *,
        currency: str = "EUR",
        discount: int = 0,
        payment_id: uuid.UUID | None = None,
    ) -> EventEnvelope:
        return self.on_invoice(
            invoice_id,
            inv.PaymentApplied(
                invoice_id=invoice_id,
                allocation_id=uuid.uuid4(),
                payment_id=payment_id or uuid.uuid4(),
                amount=Money.of_minor(amount, currency),
                applied_on=on,
                discount_taken=Money.of_minor(discount, currency),
            ),
        )

    # ---- the payments service's events --------------------------------------------------------

    def received(
        self,
        customer: str,
        amount: int,
        on: date,
        currency: str = "EUR",
        reference: str | None = None,
    ) -> tuple[uuid.UUID, EventEnvelope]:
        payment_id = uuid.uuid4()
        event = pay.PaymentReceived(
            payment_id=payment_id,
            customer_id=customer,
            amount=Money.of_minor(amount, currency),
            method="bank_transfer",
            received_on=on,
            reference=reference,
        )
        return payment_id, self.envelope(f"payment-{payment_id}", event, customer)

    def allocated(
        self,
        payment_id: uuid.UUID,
        invoice_id: uuid.UUID,
        amount: int,
        on: date,
        customer: str,
        currency: str = "EUR",
    ) -> EventEnvelope:
        event = pay.PaymentAllocated(
            payment_id=payment_id,
            allocation_id=uuid.uuid4(),
            invoice_id=invoice_id,
            amount=Money.of_minor(amount, currency),
            payment_amount=Money.of_minor(amount, currency),
            allocated_on=on,
        )
        return self.envelope(f"payment-{payment_id}", event, customer)

    def on_payment(
        self, payment_id: uuid.UUID, event: EventPayload, customer: str
    ) -> EventEnvelope:
        return self.envelope(f"payment-{payment_id}", event, customer)

    async def pay(
        self,
        invoice_id: uuid.UUID,
        amount: int,
        on: date,
        *,
        currency: str = "EUR",
        paid_in_full: bool = False,
    ) -> uuid.UUID:
        """A payment received, allocated, and applied (as the three services would record it)."""
        customer = self.customers[invoice_id]
        payment_id, received = self.received(customer, amount, on, currency)
        envelopes = [
            received,
            self.allocated(payment_id, invoice_id, amount, on, customer, currency),
            self.applied(invoice_id, amount, on, currency=currency, payment_id=payment_id),
        ]
        if paid_in_full:
            envelopes.append(
                self.on_invoice(invoice_id, inv.InvoicePaid(invoice_id=invoice_id, paid_on=on))
            )
        await self.deliver(*envelopes)
        return payment_id


@pytest.fixture
def ledger(reporting_sessions: async_sessionmaker[AsyncSession], tenant: str) -> Ledger:
    return Ledger(reporting_sessions, tenant, Tables("reporting"))


async def get(client: httpx.AsyncClient, tenant: str, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=auth(tenant))
    assert response.status_code == 200, response.text
    return response.json()
