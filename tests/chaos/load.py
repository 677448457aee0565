"""A mixed load of invoices, payments and disputes for one tenant, over real HTTP, that survives
services dying under it, with the client's own book of every effect it was told happened.

The client behaves as a careful API user would: every creating request carries an
`Idempotency-Key`, and a request that failed without an answer (connection refused or reset,
timeout) or with 500/502/503/504 is sent again with the SAME key until it gets one. Issuing has
no key: a 409 "already issued" on a retry means the first attempt landed, and the invoice is
read back. A payment names its invoice (`allocations`, applied in the payment's transaction),
so the client knows every allocation; when payments has not yet learned of the invoice over
Kafka (409) the payment is set aside and sent again later, still with its key.

Each worker owns a disjoint set of customers, so the client itself never races with itself:
every figure in the book is exact, and whatever the services show must equal it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.auth import mint_token
from shared.settings import AuthSettings
from tests.e2e.ledger import ADDRESS, SCOPES

CURRENCY = "EUR"
CREDIT_LIMIT = 10**12  # minor units: never the reason an invoice is refused
RETRY_STATUSES = frozenset({500, 502, 503, 504})


def money(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": CURRENCY}


@dataclass
class InvoiceRec:
    invoice_id: str
    customer_id: str
    number: str
    total: int
    paid: int = 0  # acknowledged allocations
    pending: int = 0  # payments sent but not yet acknowledged
    allocations: int = 0
    disputed: int = 0
    disputes: int = 0

    @property
    def unpaid(self) -> int:
        """What is left for new payments (pending ones reserved)."""
        return self.total - self.paid - self.pending

    @property
    def undisputed(self) -> int:
        """What can still be disputed, by the client's most cautious account."""
        return self.total - self.paid - self.pending - self.disputed


@dataclass
class PaymentRec:
    payment_id: str
    customer_id: str
    invoice_id: str
    amount: int


@dataclass
class Book:
    """What the client was told happened: the figures every service must agree with."""

    tenant: str
    customers: list[str]
    invoices: dict[str, InvoiceRec] = field(default_factory=dict)
    payments: list[PaymentRec] = field(default_factory=list)
    disputes: int = 0

    def invoices_of(self, customer: str) -> list[InvoiceRec]:
        return [i for i in self.invoices.values() if i.customer_id == customer]

    def expected_open(self, customer: str) -> int:
        """Invoiced minus paid: every payment is allocated in full, so this is both the open
        amount of the customer's invoices and its credit exposure."""
        mine = self.invoices_of(customer)
        return sum(i.total for i in mine) - sum(i.paid for i in mine)


@dataclass
class Size:
    operations: int
    customers: int
    workers: int
    kill_every: float  # seconds between SIGKILLs (0: none)
    # How long the consumers may take to drain what the load left them. Credit's invoice
    # consumer reviews holds and risk over a customer's whole invoice history; once per event
    # until stop 21 (quiet after 322 s in the 10,000-operation run), once per customer per
    # consumer transaction since (quiet after 190 s, same CHAOS_SEED).
    quiet_timeout: float = 180.0


class Api:
    """httpx with the client's retry discipline; counts why it had to retry."""

    def __init__(self, urls: dict[str, str], tenant: str, op_timeout: float) -> None:
        token = mint_token(
            AuthSettings(),
            subject="chaos-load",
            tenant_id=tenant,
            scopes=SCOPES,
            ttl_seconds=6 * 3600,
        )
        self.urls = urls
        self.op_timeout = op_timeout
        self.http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(20.0, connect=3.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.retries: Counter[str] = Counter()
        self.requests = 0

    async def close(self) -> None:
        await self.http.aclose()

    async def send(
        self,
        method: str,
        service: str,
        path: str,
        *,
        json: Any = None,
        key: str | None = None,
    ) -> httpx.Response:
        """The answer, once there is one that is not a transient failure."""
        headers = {"Idempotency-Key": key} if key else {}
        deadline = time.monotonic() + self.op_timeout
        while True:
            self.requests += 1
            try:
                response = await self.http.request(
                    method, self.urls[service] + path, json=json, headers=headers
                )
            except httpx.TransportError as exc:
                cause = type(exc).__name__
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                cause = f"HTTP {response.status_code}"
            self.retries[f"{service} {cause}"] += 1
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{method} {service}{path}: still failing after {self.op_timeout:.0f}s "
                    f"({cause})"
                )
            await asyncio.sleep(random.uniform(0.2, 0.5))

    async def get(self, service: str, path: str) -> Any:
        response = await self.send("GET", service, path)
        assert response.status_code == 200, f"GET {service}{path}: {response.text}"
        return response.json()


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    body: dict[str, Any] = response.json()
    return body


@dataclass
class _PendingPayment:
    key: str
    body: dict[str, Any]
    invoice: InvoiceRec
    amount: int
    next_try: float
    tries: int = 0


class Load:
    """Runs `size.operations` operations for the book's tenant, `size.workers` at a time."""

    def __init__(self, api: Api, book: Book, size: Size, seed: int) -> None:
        self.api = api
        self.book = book
        self.size = size
        self.rng = random.Random(seed)
        self.started = 0  # operations begun (a payment set aside counts once)
        self.done: Counter[str] = Counter()
        self.issue_replays = 0  # issue retries answered "already issued": the first one landed
        self.deferred_payments = 0  # payments sent again because payments did not know the invoice
        self.pending: list[_PendingPayment] = []  # payments set aside, sent again later
        self.today = datetime.now(UTC).date()

    # ---- setup ---------------------------------------------------------------------------

    async def onboard(self) -> None:
        """The customers, each with a credit limit that never refuses (maker-checker lifted)."""
        sem = asyncio.Semaphore(self.size.workers)

        async def one(customer: str) -> None:
            async with sem:
                _expect(
                    await self.api.send(
                        "POST",
                        "invoice",
                        "/v1/customers",
                        key=f"customer-{customer}",
                        json={
                            "customer_id": customer,
                            "name": f"Chaos customer {customer}",
                            "email": f"ap@{customer}.example",
                            "currency": CURRENCY,
                            "billing_address": ADDRESS,
                            "default_terms": {"kind": "net", "net_days": 30},
                        },
                    ),
                    201,
                )
                _expect(
                    await self.api.send(
                        "PUT",
                        "credit",
                        f"/v1/customers/{customer}/credit-limit",
                        json={"limit": money(CREDIT_LIMIT), "reason": "chaos onboarding"},
                    ),
                    200,
                )

        await asyncio.gather(*(one(c) for c in self.book.customers))

    # ---- the load ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Every operation begun; payments still waiting for payments to learn of their invoice
        are left in `self.pending` for `finish`."""
        workers = self.size.workers
        owned = [self.book.customers[i::workers] for i in range(workers)]
        await asyncio.gather(*(self._worker(mine) for mine in owned if mine))

    async def finish(self) -> None:
        """Send the payments set aside until payments has heard of their invoices. A service
        killed more often than the Kafka session timeout (30 s) gets no partitions meanwhile,
        so this waits for the chaos to end."""
        deadline = time.monotonic() + self.api.op_timeout
        while self.pending:
            assert time.monotonic() < deadline, (
                f"payments never learned of invoices {[p.invoice.number for p in self.pending]}"
            )
            due = [p for p in self.pending if p.next_try <= time.monotonic()]
            if due:
                await asyncio.gather(*(self._send_payment(p) for p in due))
            else:
                await asyncio.sleep(0.2)

    def _claim(self) -> bool:
        if self.started >= self.size.operations:
            return False
        self.started += 1
        return True

    async def _worker(self, customers: list[str]) -> None:
        rng = random.Random(self.rng.random())
        while True:
            due = [
                p
                for p in self.pending
                if p.next_try <= time.monotonic() and p.invoice.customer_id in customers
            ]
            if due:
                await self._send_payment(due[0])
                continue
            if not self._claim():
                break
            customer = rng.choice(customers)
            mine = self.book.invoices_of(customer)
            roll = rng.random()
            payable = [i for i in mine if i.unpaid > 0]
            disputable = [i for i in mine if i.undisputed > 0]
            if roll < 0.40 and payable:
                await self._pay(rng, payable)
            elif roll < 0.55 and disputable:
                await self._dispute(rng, rng.choice(disputable))
            else:
                await self._issue(rng, customer)

    async def _issue(self, rng: random.Random, customer: str) -> None:
        lines = [
            {
                "description": f"Service {n}",
                "quantity": str(rng.randint(1, 5)),
                "unit_price": rng.randint(1_00, 2_500_00),
                "taxes": [{"code": "VAT19", "percent": "19"}] if rng.random() < 0.5 else [],
            }
            for n in range(rng.randint(1, 3))
        ]
        drafted = _expect(
            await self.api.send(
                "POST",
                "invoice",
                "/v1/invoices",
                key=f"draft-{uuid.uuid4()}",
                json={"customer_id": customer, "lines": lines},
            ),
            201,
        )
        invoice_id = drafted["invoice_id"]
        path = f"/v1/invoices/{invoice_id}/issue"
        deadline = time.monotonic() + self.api.op_timeout
        while True:
            response = await self.api.send(
                "POST", "invoice", path, json={"issue_date": self.today.isoformat()}
            )
            if response.status_code == 200:
                issued = response.json()
                break
            if response.status_code == 409:
                # Already issued (our earlier attempt landed), or it lost a race with that
                # attempt still running: read what is there.
                issued = await self.api.get("invoice", f"/v1/invoices/{invoice_id}")
                if issued["status"] != "draft":
                    self.issue_replays += 1
                    break
            else:
                _expect(response, 200)  # fails with the answer
            assert time.monotonic() < deadline, f"issue {invoice_id}: {response.text}"
            await asyncio.sleep(0.3)
        assert issued["total"] == drafted["total"], (drafted, issued)
        assert issued["number"], issued
        self.book.invoices[invoice_id] = InvoiceRec(
            invoice_id, customer, issued["number"], issued["total"]["amount"]
        )
        self.done["invoices"] += 1

    async def _pay(self, rng: random.Random, payable: list[InvoiceRec]) -> None:
        # Mostly the oldest open invoice (payments has most likely heard of it by now).
        invoice = payable[0] if rng.random() < 0.7 else rng.choice(payable)
        amount = invoice.unpaid if rng.random() < 0.5 else rng.randint(1, invoice.unpaid)
        invoice.pending += amount
        body = {
            "customer_id": invoice.customer_id,
            "amount": money(amount),
            "method": rng.choice(["bank_transfer", "cash"]),
            "received_on": self.today.isoformat(),
            "reference": invoice.number,
            "allocations": [{"invoice_id": invoice.invoice_id, "amount": money(amount)}],
            "auto_match": False,
        }
        payment = _PendingPayment(f"payment-{uuid.uuid4()}", body, invoice, amount, 0.0)
        self.pending.append(payment)
        await self._send_payment(payment)

    async def _send_payment(self, payment: _PendingPayment) -> None:
        response = await self.api.send(
            "POST", "payments", "/v1/payments", key=payment.key, json=payment.body
        )
        payment.tries += 1
        if response.status_code == 409:
            # Payments has not yet heard of the invoice over Kafka: later, with the same key.
            self.deferred_payments += 1
            payment.next_try = time.monotonic() + min(0.5 * payment.tries, 3.0)
            return
        recorded = _expect(response, 201)
        self.pending.remove(payment)
        invoice = payment.invoice
        assert [a["invoice_id"] for a in recorded["allocations"]] == [invoice.invoice_id], recorded
        assert recorded["applied"] == money(payment.amount), recorded
        invoice.pending -= payment.amount
        invoice.paid += payment.amount
        invoice.allocations += 1
        self.book.payments.append(
            PaymentRec(
                recorded["payment_id"], invoice.customer_id, invoice.invoice_id, payment.amount
            )
        )
        self.done["payments"] += 1

    async def _dispute(self, rng: random.Random, invoice: InvoiceRec) -> None:
        amount = rng.randint(1, min(invoice.undisputed, 500_00))
        opened = _expect(
            await self.api.send(
                "POST",
                "invoice",
                f"/v1/invoices/{invoice.invoice_id}/disputes",
                key=f"dispute-{uuid.uuid4()}",
                json={
                    "amount": amount,
                    "reason": "chaos: goods damaged",
                    "on": self.today.isoformat(),
                },
            ),
            201,
        )
        assert opened["invoice_id"] == invoice.invoice_id, opened
        invoice.disputed += amount
        invoice.disputes += 1
        self.book.disputes += 1
        self.done["disputes"] += 1


def new_book(customers: int) -> Book:
    tenant = f"chaos{uuid.uuid4().hex[:10]}"
    return Book(tenant, [f"c{n:03d}" for n in range(customers)])
