"""Small typed helpers for the month-of-business scenario.

Everything here goes through the services' HTTP APIs (httpx over the ASGI transport, each app
under its own lifespan so its relay and consumers run against the real Postgres and Kafka),
except what the tests legitimately drive by hand: dunning's scheduler and mailer for a chosen
date, and the project's local SMTP server that receives the e-mails.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar

import httpx

from services.dunning.adapters.email import SmtpConfig, SmtpSender
from services.dunning.adapters.smtp_server import LocalSmtpServer
from services.dunning.application import mailer, scheduler
from shared.testing import bearer
from tests.helpers import eventually, in_process

Json = dict[str, Any]
T = TypeVar("T")

SCOPES = (
    "invoices:read",
    "invoices:write",
    "credit:read",
    "credit:write",
    "payments:read",
    "payments:write",
    "dunning:read",
    "dunning:write",
    "reporting:read",
    "reporting:admin",
)
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
VAT19 = [{"code": "VAT19", "percent": "19"}]


def money(amount: int, currency: str = "EUR") -> Json:
    """Minor units, as every API takes and returns them."""
    return {"amount": amount, "currency": currency}


# ---- the calendar ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Month:
    """Thirty business days ending today (UTC): day 30 is today, the month end.

    The month ends today, not in the past, because payments applies cash recorded through its
    API on the day it is recorded (`max(today, received_on)`), so everything recorded while the
    test runs lands on or before day 30.
    """

    end: date

    @classmethod
    def ending_today(cls) -> Month:
        return cls(datetime.now(UTC).date())

    def day(self, n: int) -> date:
        """Day n of the month (n > 30: after the month end, for due dates)."""
        assert n >= 1, n
        return self.end + timedelta(days=n - 30)


# ---- the running services -------------------------------------------------------------------


@dataclass
class Ledger:
    """One tenant's view of the five running services, plus the SMTP server dunning uses."""

    tenant: str
    invoice: httpx.AsyncClient
    payments: httpx.AsyncClient
    credit: httpx.AsyncClient
    dunning: httpx.AsyncClient
    reporting: httpx.AsyncClient
    dunning_app: Any
    smtp: LocalSmtpServer
    mails_seen: int = 0


@asynccontextmanager
async def five_services() -> AsyncIterator[Ledger]:
    """Credit, invoice, payments, dunning and reporting in-process, for a fresh random tenant."""
    tenant = f"t{uuid.uuid4().hex[:10]}"
    headers = bearer(tenant, SCOPES, subject="month-e2e")
    async with in_process(headers, also=("dunning", "reporting"), timeout=30) as services:
        clients = services.clients
        with LocalSmtpServer(port=0) as smtp:
            yield Ledger(
                tenant=tenant,
                invoice=clients["invoice"],
                payments=clients["payments"],
                credit=clients["credit"],
                dunning=clients["dunning"],
                reporting=clients["reporting"],
                dunning_app=services.apps["dunning"],
                smtp=smtp,
            )


def ok(response: httpx.Response, status: int = 200) -> Json:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    body: Json = response.json()
    return body


async def once_settled(
    client: httpx.AsyncClient,
    path: str,
    view: Callable[[Json], T],
    expected: T,
    timeout: float = 30,
) -> T:
    """`view` of GET `path` once it equals `expected`, or as it is when `timeout` runs out:
    the caller asserts, so a figure that never settles fails with a readable diff."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = view(ok(await client.get(path)))
        if seen == expected or asyncio.get_running_loop().time() > deadline:
            return seen
        await asyncio.sleep(0.2)


# ---- customers and invoices -----------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    email: str
    currency: str
    terms: Json
    credit_limit: int  # minor units of `currency`


async def onboard(ledger: Ledger, customer: Customer) -> None:
    """Register the customer for invoicing and give it a credit limit (below the approval
    threshold, so it applies at once)."""
    ok(
        await ledger.invoice.post(
            "/v1/customers",
            json={
                "customer_id": customer.customer_id,
                "name": customer.name,
                "email": customer.email,
                "currency": customer.currency,
                "billing_address": ADDRESS,
                "default_terms": customer.terms,
            },
        ),
        201,
    )
    ok(
        await ledger.credit.put(
            f"/v1/customers/{customer.customer_id}/credit-limit",
            json={
                "limit": money(customer.credit_limit, customer.currency),
                "reason": "onboarding",
            },
        )
    )


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    customer_id: str
    number: str
    currency: str
    total: int
    issue_date: date
    due_date: date


def line(description: str, unit_price: int, taxes: list[Json] | None = None) -> Json:
    return {
        "description": description,
        "quantity": "1",
        "unit_price": unit_price,
        "taxes": taxes or [],
    }


async def draft(ledger: Ledger, customer: Customer, *lines: Json) -> str:
    body = ok(
        await ledger.invoice.post(
            "/v1/invoices", json={"customer_id": customer.customer_id, "lines": list(lines)}
        ),
        201,
    )
    return str(body["invoice_id"])


async def issue(ledger: Ledger, customer: Customer, on: date, *lines: Json) -> Invoice:
    """Draft on the customer's terms and issue it dated `on` (the credit check runs first)."""
    invoice_id = await draft(ledger, customer, *lines)
    body = ok(
        await ledger.invoice.post(
            f"/v1/invoices/{invoice_id}/issue", json={"issue_date": on.isoformat()}
        )
    )
    return Invoice(
        invoice_id=invoice_id,
        customer_id=customer.customer_id,
        number=str(body["number"]),
        currency=str(body["currency"]),
        total=int(body["total"]["amount"]),
        issue_date=date.fromisoformat(body["issue_date"]),
        due_date=date.fromisoformat(body["due_date"]),
    )


async def invoice_state(ledger: Ledger, invoice: Invoice) -> Json:
    return ok(await ledger.invoice.get(f"/v1/invoices/{invoice.invoice_id}"))


async def dispute(ledger: Ledger, invoice: Invoice, amount: int, reason: str, on: date) -> None:
    ok(
        await ledger.invoice.post(
            f"/v1/invoices/{invoice.invoice_id}/disputes",
            json={"amount": amount, "reason": reason, "on": on.isoformat()},
        ),
        201,
    )


# ---- payments -------------------------------------------------------------------------------


async def known_to_payments(ledger: Ledger, invoice: Invoice, open_amount: int) -> None:
    """Payments matches references against what it has learned of invoices over Kafka."""
    await eventually(
        ledger.payments,
        f"/v1/invoices/{invoice.invoice_id}/open-amount",
        lambda b: b["open_amount"]["amount"] == open_amount,
    )


async def pay(
    ledger: Ledger,
    customer: Customer,
    amount: int,
    on: date,
    reference: str,
) -> Json:
    """A bank transfer as the customer's remittance advice describes it; auto-matching decides."""
    return ok(
        await ledger.payments.post(
            "/v1/payments",
            json={
                "customer_id": customer.customer_id,
                "amount": money(amount, customer.currency),
                "method": "bank_transfer",
                "received_on": on.isoformat(),
                "reference": reference,
            },
        ),
        201,
    )


def csv_statement(rows: list[tuple[date, str, str, str]]) -> str:
    """A bank's CSV export in the default layout: date, amount, reference, name."""
    lines = ["date,amount,reference,name"]
    lines += [f"{d.isoformat()},{amount},{reference},{name}" for d, amount, reference, name in rows]
    return "\n".join(lines) + "\n"


# ---- dunning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Email:
    """One reminder as the customer received it."""

    to: str
    template: str
    amounts_due: dict[str, str] = field(default_factory=dict)  # invoice number -> "485.52 EUR"
    subject: str = field(default="", compare=False)


_INVOICE_BLOCK = re.compile(r"^Invoice (\S+)$\n(?:.*\n)*?^\s*Amount due:\s+(.+?)\s*$", re.MULTILINE)


def _email(message: EmailMessage) -> Email:
    body = message.get_body(("plain",))
    assert body is not None
    text = str(body.get_content()).replace("\r\n", "\n")
    return Email(
        to=str(message["To"]),
        template=str(message["X-Ledgerline-Template"]),
        subject=str(message["Subject"]),
        amounts_due={number: due for number, due in _INVOICE_BLOCK.findall(text)},
    )


async def schedule_dunning(ledger: Ledger, on: date) -> None:
    """Dunning's scheduler, run as on day `on`: it records the steps, fees and escalations due."""
    await scheduler.run_all(ledger.dunning_app.state.runtime.sessions, on, ledger.tenant)


async def send_reminders(ledger: Ledger, emails: int) -> list[Email]:
    """Dunning's mailer: sends what the scheduler queued; the e-mails the SMTP server got,
    by recipient. Quiet hours are switched off: it sends now, whatever the wall clock says."""
    sessions = ledger.dunning_app.state.runtime.sessions
    config = mailer.MailerConfig(quiet_start=time(0, 0), quiet_end=time(0, 0))
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=ledger.smtp.port))
    outcomes = await mailer.run_once(sessions, sender, config, ledger.tenant)
    assert outcomes["sent"] == emails, outcomes
    received = ledger.smtp.wait_for(ledger.mails_seen + emails)[ledger.mails_seen :]
    ledger.mails_seen += len(received)
    return sorted((_email(m) for m in received), key=lambda e: e.to)


async def dunning_sees(
    ledger: Ledger, customer: Customer, ready: Callable[[dict[str, Json]], bool]
) -> None:
    """Wait until dunning's copy of the customer's invoices (from the invoice topic), keyed by
    number, satisfies `ready`."""
    await eventually(
        ledger.dunning,
        f"/v1/customers/{customer.customer_id}/dunning",
        lambda b: ready({i["number"]: i for i in b["invoices"]}),
    )
