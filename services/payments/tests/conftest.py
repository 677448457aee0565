"""Payments-service fixtures: the real `payments` schema, the API in-process, and a way to
teach the service about invoices the way production does (invoice events through its consumer)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.payments.api.app import create_app
from services.payments.config import PaymentsSettings
from services.payments.consumers.invoices import invoice_handler
from shared.consumer import MessageContext
from shared.contracts.invoice import (
    CreditCheckRecord,
    Installment,
    InvoiceDrafted,
    InvoiceIssued,
    LineItem,
    PaymentMethod,
    PaymentTerms,
)
from shared.db import make_sessionmaker
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload
from shared.migrations import upgrade
from shared.money import Money
from shared.testing import app_client, bearer, envelope_of, service_engine

SCOPES = ("payments:read", "payments:write")
TODAY = datetime.now(UTC).date()


def auth(tenant: str, scopes: tuple[str, ...] = SCOPES, subject: str = "clerk") -> dict[str, str]:
    return bearer(tenant, scopes, subject)


def money(minor: int, currency: str = "EUR") -> dict[str, Any]:
    return {"amount": minor, "currency": currency}


def envelope(tenant: str, event: EventPayload, customer: str, stream: str) -> EventEnvelope:
    return envelope_of(tenant, event, stream_id=stream, customer_id=customer)


@pytest.fixture(scope="session")
async def payments_engine() -> AsyncIterator[AsyncEngine]:
    async with service_engine("payments", PaymentsSettings().dsn()) as engine:
        yield engine


@pytest.fixture
def payments_sessions(payments_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(payments_engine)


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    settings = PaymentsSettings(run_relay=False, run_consumers=False)
    await upgrade("payments", settings.dsn())
    async with app_client(create_app(settings), "http://payments") as client:
        yield client


Feed = Callable[[str, EventPayload, str], Coroutine[Any, Any, None]]


@pytest.fixture
def feed(payments_sessions: async_sessionmaker[AsyncSession]) -> Feed:
    """Deliver one invoice event to the payments consumer, in its own transaction."""
    handler = invoice_handler(PaymentsSettings().matching_policy())

    async def deliver(tenant: str, event: EventPayload, customer: str) -> None:
        stream = f"invoice-{getattr(event, 'invoice_id', uuid.uuid4())}"
        async with payments_sessions() as session, session.begin():
            await handler(
                session,
                envelope(tenant, event, customer, stream),
                MessageContext("ar.invoice.invoice.v1", 0, 0, "payments.invoices"),
            )

    return deliver


def issued(
    customer: str,
    total_minor: int,
    *,
    number: str | None = None,
    currency: str = "EUR",
    issue_date: date | None = None,
    due_days: int = 30,
    invoice_id: uuid.UUID | None = None,
) -> InvoiceIssued:
    issue_date = issue_date or TODAY
    total = Money.of_minor(total_minor, currency)
    return InvoiceIssued(
        invoice_id=invoice_id or uuid.uuid4(),
        customer_id=customer,
        currency=currency,
        number=number or f"INV-2026-{uuid.uuid4().int % 10**6:06d}",
        issue_date=issue_date,
        due_date=issue_date + timedelta(days=due_days),
        total=total,
        subtotal=total,
        tax_total=Money.zero(currency),
        installments=[Installment(due_date=issue_date + timedelta(days=due_days), amount=total)],
        credit_check=CreditCheckRecord(outcome="passed", check_id="chk-1"),
    )


def drafted(
    invoice_id: uuid.UUID, customer: str, total_minor: int, discount: tuple[str, int] | None
) -> InvoiceDrafted:
    terms: dict[str, Any] = {"kind": "net", "net_days": 30}
    if discount:
        terms["early_payment_discount"] = {"percent": discount[0], "within_days": discount[1]}
    return InvoiceDrafted(
        invoice_id=invoice_id,
        customer_id=customer,
        currency="EUR",
        lines=[
            LineItem(description="Goods", quantity=Decimal(1), unit_price=total_minor, taxes=[])
        ],
        terms=PaymentTerms.model_validate(terms),
        accepted_payment_methods=[PaymentMethod.BANK_TRANSFER],
        series="INV",
    )
