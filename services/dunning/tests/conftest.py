"""Dunning fixtures: the real `dunning` schema, the API in-process (workers off, the tests run
them), invoice events delivered through the real consumer handler, a local SMTP server."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.dunning.adapters.smtp_server import LocalSmtpServer
from services.dunning.api.app import create_app
from services.dunning.config import DunningSettings
from services.dunning.consumers.invoices import on_invoice_event
from shared.consumer import MessageContext
from shared.contracts.invoice import (
    Address,
    CreditCheckRecord,
    CustomerRegistered,
    Installment,
    InvoiceIssued,
)
from shared.db import make_sessionmaker
from shared.events.registry import EventPayload
from shared.migrations import upgrade
from shared.money import Money
from shared.testing import app_client, bearer, envelope_of, service_engine

SCOPES = ("dunning:read", "dunning:write")


def auth(tenant: str, scopes: tuple[str, ...] = SCOPES) -> dict[str, str]:
    return bearer(tenant, scopes, "collector")


@pytest.fixture(scope="session")
async def dunning_engine() -> AsyncIterator[AsyncEngine]:
    async with service_engine("dunning", DunningSettings().dsn()) as engine:
        yield engine


@pytest.fixture
def dunning_sessions(dunning_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(dunning_engine)


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(port=0) as server:
        yield server


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    settings = DunningSettings(run_relay=False, run_consumers=False, run_scheduler=False)
    await upgrade("dunning", settings.dsn())
    async with app_client(create_app(settings), "http://d") as client:
        yield client


Feed = Callable[[str, EventPayload, str], Coroutine[Any, Any, None]]


async def deliver(
    sessions: async_sessionmaker[AsyncSession], tenant: str, event: EventPayload, customer: str
) -> None:
    """One event through dunning's invoice consumer, in a transaction of its own."""
    stream = f"invoice-{getattr(event, 'invoice_id', uuid.uuid4())}"
    envelope = envelope_of(tenant, event, stream_id=stream, customer_id=customer)
    async with sessions() as session, session.begin():
        await on_invoice_event(session, envelope, MessageContext("t", 0, 0, "dunning"))


@pytest.fixture
def feed(dunning_sessions: async_sessionmaker[AsyncSession]) -> Feed:
    return functools.partial(deliver, dunning_sessions)


def customer(
    customer_id: str, email: str = "ap@acme.example", name: str = "Acme Ltd"
) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        name=name,
        email=email,
        currency="EUR",
        billing_address=Address(
            line1="1 Main St", city="Berlin", postal_code="10115", country="DE"
        ),
    )


def issued(
    customer_id: str, total_minor: int, due: date, *, number: str | None = None
) -> InvoiceIssued:
    total = Money.of_minor(total_minor, "EUR")
    issue = due - timedelta(days=30)
    return InvoiceIssued(
        invoice_id=uuid.uuid4(),
        customer_id=customer_id,
        currency="EUR",
        number=number or f"INV-2026-{uuid.uuid4().int % 10**6:06d}",
        issue_date=issue,
        due_date=due,
        total=total,
        subtotal=total,
        tax_total=Money.zero("EUR"),
        installments=[Installment(due_date=due, amount=total)],
        credit_check=CreditCheckRecord(outcome="passed", check_id="chk"),
    )
