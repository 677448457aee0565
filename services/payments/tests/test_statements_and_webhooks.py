"""Bank statements and gateway webhooks end to end on the real Postgres: import, de-duplicate,
match (by number, alias, confirmation of a recorded payment), review; signed gateway events."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from services.payments.api.app import create_app
from services.payments.config import PaymentsSettings
from services.payments.domain.webhook import sign
from services.payments.tests.conftest import TODAY, Feed, auth, issued, money
from shared.migrations import upgrade
from shared.testing import app_client

pytestmark = pytest.mark.integration

CSV_HEADER = "date,amount,reference,name,id\n"


def csv_line(amount: str, reference: str, name: str, entry_id: str) -> str:
    return f"{TODAY.isoformat()},{amount},{reference},{name},{entry_id}\n"


async def import_csv(api: httpx.AsyncClient, tenant: str, content: str) -> dict[str, Any]:
    r = await api.post(
        "/v1/bank-statements",
        json={
            "format": "csv",
            "content": content,
            "currency": "EUR",
            "csv_columns": {"bank_reference": "id"},
        },
        headers=auth(tenant),
    )
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_statement_lines_are_matched_deduplicated_and_reviewed(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    by_number = issued("acme", 12_000, number="INV-2026-000501")
    by_alias = issued("globex", 4_321)
    for inv, customer in ((by_number, "acme"), (by_alias, "globex")):
        await feed(tenant, inv, customer)
    alias = await api.post(
        "/v1/customer-aliases",
        json={"name": "Globex Corporation Ltd.", "customer_id": "globex"},
        headers=auth(tenant),
    )
    assert alias.status_code == 201, alias.text
    content = CSV_HEADER + "".join(
        [
            csv_line("120.00", "INV-2026-000501", "ACME GmbH", "e1"),
            csv_line("43.21", "March goods", "GLOBEX CORPORATION", "e2"),
            csv_line("99.99", "unknown", "Somebody", "e3"),
            csv_line("-15.00", "bank fee", "Bank", "e4"),
        ]
    )
    summary = await import_csv(api, tenant, content)
    assert summary["lines_imported"] == 4 and summary["duplicates_skipped"] == 0
    assert (summary["matched"], summary["unmatched"], summary["outgoing"]) == (2, 1, 1)
    # The invoices are paid by payments created from the lines.
    for invoice_id in (by_number.invoice_id, by_alias.invoice_id):
        r = await api.get(f"/v1/invoices/{invoice_id}/open-amount", headers=auth(tenant))
        assert r.json()["open_amount"]["amount"] == 0
    globex = (await api.get("/v1/customers/globex/payments", headers=auth(tenant))).json()
    [payment] = globex["items"]
    assert payment["source"] == "statement" and payment["method"] == "bank_transfer"
    # Re-importing an overlapping file adds only the new line.
    again = await import_csv(api, tenant, content + csv_line("10.00", "new", "X", "e5"))
    assert again["lines_imported"] == 1 and again["duplicates_skipped"] == 4
    # The review list: incoming lines nobody accounted for.
    unmatched = (
        await api.get("/v1/statement-lines", params={"status": "unmatched"}, headers=auth(tenant))
    ).json()
    assert sorted(line["reference"] for line in unmatched["items"]) == ["new", "unknown"]
    unknown = next(line for line in unmatched["items"] if line["reference"] == "unknown")
    ignored = await api.post(
        f"/v1/statement-lines/{unknown['line_id']}/ignore",
        json={"reason": "interest, not customer money"},
        headers=auth(tenant),
    )
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"
    twice = await api.post(
        f"/v1/statement-lines/{unknown['line_id']}/ignore",
        json={"reason": "again"},
        headers=auth(tenant),
    )
    assert twice.status_code == 409
    stats = (await api.get("/v1/matching/stats", headers=auth(tenant))).json()
    assert stats["by_subject"] == {"statement_line": 4}
    assert stats["outcomes"]["auto_applied"] == 2


async def test_a_line_confirms_a_payment_recorded_before_instead_of_doubling_it(
    api: httpx.AsyncClient, tenant: str
) -> None:
    r = await api.post(
        "/v1/payments",
        json={
            "customer_id": "c1",
            "amount": money(5_000),
            "method": "bank_transfer",
            "received_on": TODAY.isoformat(),
            "auto_match": False,
        },
        headers=auth(tenant),
    )
    payment_id = r.json()["payment_id"]
    summary = await import_csv(api, tenant, CSV_HEADER + csv_line("50.00", "x", "C1 Ltd", "b1"))
    assert summary["matched"] == 1
    lines = (await api.get("/v1/statement-lines", headers=auth(tenant))).json()["items"]
    assert lines[0]["payment_id"] == payment_id and lines[0]["rule"] == "existing_payment"
    listed = (await api.get("/v1/payments", headers=auth(tenant))).json()["items"]
    assert len(listed) == 1


async def test_a_line_matched_by_hand_creates_the_payment_and_allocates(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c9", 3_000)
    await feed(tenant, inv, "c9")
    await import_csv(api, tenant, CSV_HEADER + csv_line("31.00", "no ref", "Anon", "m1"))
    [line] = (await api.get("/v1/statement-lines", headers=auth(tenant))).json()["items"]
    assert line["status"] == "unmatched"
    r = await api.post(
        f"/v1/statement-lines/{line['line_id']}/match",
        json={
            "customer_id": "c9",
            "allocations": [{"invoice_id": str(inv.invoice_id), "amount": money(3_000)}],
        },
        headers=auth(tenant),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "matched" and r.json()["customer_id"] == "c9"
    payment = (await api.get(f"/v1/payments/{r.json()['payment_id']}", headers=auth(tenant))).json()
    assert payment["applied"] == money(3_000) and payment["unapplied"] == money(100)


async def test_statement_format_errors_are_422_with_details(
    api: httpx.AsyncClient, tenant: str
) -> None:
    bad = await api.post(
        "/v1/bank-statements",
        json={"format": "csv", "content": CSV_HEADER + "2026-13-45,1,x,y,z\n", "currency": "EUR"},
        headers=auth(tenant),
    )
    assert bad.status_code == 422
    bomb = await api.post(
        "/v1/bank-statements",
        json={
            "format": "camt053",
            "content": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>',
        },
        headers=auth(tenant),
    )
    assert bomb.status_code == 422


# ---- the gateway webhook ------------------------------------------------------------------------

SECRET_OLD, SECRET_NEW = "whsec_old_0123456789", "whsec_new_9876543210"


@pytest.fixture
async def gateway_api(tenant: str) -> Any:
    settings = PaymentsSettings(
        run_relay=False,
        run_consumers=False,
        webhook_secrets={tenant: [SECRET_NEW, SECRET_OLD]},
    )
    await upgrade("payments", settings.dsn())
    async with app_client(create_app(settings), "http://p") as client:
        yield client


def gateway_event(
    kind: str, obj: dict[str, Any], event_id: str | None = None, age_seconds: int = 0
) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "type": kind,
            "created": int(time.time()) - age_seconds,
            "data": {"object": obj},
        }
    ).encode()


async def deliver(
    client: httpx.AsyncClient, tenant: str, body: bytes, secret: str = SECRET_NEW
) -> httpx.Response:
    header = sign(secret, body, int(time.time()))
    return await client.post(
        f"/v1/webhooks/gateway/{tenant}",
        content=body,
        headers={"Ledgerline-Signature": header, "Content-Type": "application/json"},
    )


async def test_gateway_payment_refund_and_chargeback(
    gateway_api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 20_000, number="INV-2026-009001")
    await feed(tenant, inv, "c1")
    intent = {
        "id": "pi_abc",
        "object": "payment_intent",
        "amount": 20_000,
        "currency": "eur",
        "metadata": {"customer_id": "c1", "invoice_number": "INV-2026-009001"},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
    }
    body = gateway_event("payment_intent.succeeded", intent)
    first = await deliver(gateway_api, tenant, body)
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "recorded"
    payment_id = first.json()["payment_id"]
    duplicate = await deliver(gateway_api, tenant, body, secret=SECRET_OLD)  # rotation: both valid
    assert duplicate.json()["outcome"] == "duplicate"
    payment = (await gateway_api.get(f"/v1/payments/{payment_id}", headers=auth(tenant))).json()
    assert payment["status"] == "applied"
    assert payment["details"] == {
        "gateway": "stripe",
        "gateway_ref": "pi_abc",
        "card_brand": "visa",
        "last4": "4242",
    }
    # Stripe sends the cumulative refunded amount: two events refund 50 then 30 more.
    for total in (5_000, 8_000, 8_000):
        refund = gateway_event(
            "charge.refunded",
            {"id": "ch_1", "payment_intent": "pi_abc", "amount_refunded": total, "currency": "eur"},
        )
        assert (await deliver(gateway_api, tenant, refund)).status_code == 200
    payment = (await gateway_api.get(f"/v1/payments/{payment_id}", headers=auth(tenant))).json()
    assert payment["refunded"] == money(8_000) and payment["applied"] == money(12_000)
    dispute = gateway_event(
        "charge.dispute.created",
        {
            "id": "dp_1",
            "payment_intent": "pi_abc",
            "amount": 12_000,
            "currency": "eur",
            "reason": "fraudulent",
        },
    )
    assert (await deliver(gateway_api, tenant, dispute)).json()["outcome"] == "reversed"
    payment = (await gateway_api.get(f"/v1/payments/{payment_id}", headers=auth(tenant))).json()
    assert payment["status"] == "reversed" and payment["applied"] == money(0)
    r = await gateway_api.get(f"/v1/invoices/{inv.invoice_id}/open-amount", headers=auth(tenant))
    assert r.json()["open_amount"]["amount"] == 20_000


async def test_gateway_signatures_are_checked(gateway_api: httpx.AsyncClient, tenant: str) -> None:
    body = gateway_event("payment_intent.succeeded", {"id": "pi_x", "amount": 1, "currency": "eur"})
    wrong = await deliver(gateway_api, tenant, body, secret="whsec_someone_else")
    assert wrong.status_code == 401
    stale = await gateway_api.post(
        f"/v1/webhooks/gateway/{tenant}",
        content=body,
        headers={"Ledgerline-Signature": sign(SECRET_NEW, body, int(time.time()) - 301)},
    )
    assert stale.status_code == 401
    other_tenant = await deliver(gateway_api, "not-configured", body)
    assert other_tenant.status_code == 401
    unsigned = await gateway_api.post(f"/v1/webhooks/gateway/{tenant}", content=body)
    assert unsigned.status_code == 401


async def test_a_refund_before_its_payment_is_retried_not_lost(
    gateway_api: httpx.AsyncClient, tenant: str
) -> None:
    refund = gateway_event(
        "charge.refunded",
        {"id": "ch_9", "payment_intent": "pi_late", "amount_refunded": 100, "currency": "eur"},
        event_id="evt_refund_early",
    )
    early = await deliver(gateway_api, tenant, refund)
    assert early.status_code == 409  # the gateway retries later
    intent = {
        "id": "pi_late",
        "amount": 1_000,
        "currency": "eur",
        "metadata": {"customer_id": "c1"},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "1881"}},
    }
    assert (
        await deliver(gateway_api, tenant, gateway_event("payment_intent.succeeded", intent))
    ).status_code == 200
    retried = await deliver(gateway_api, tenant, refund)
    assert retried.json()["outcome"] == "refunded"


# ---- payments from our own checkout (invoice_ids, checkout_id) -----------------------------------


def checkout_intent(
    ref: str, amount: int, invoice_ids: str, checkout_id: str, **metadata: str
) -> dict[str, Any]:
    return {
        "id": ref,
        "object": "payment_intent",
        "amount": amount,
        "currency": "eur",
        "metadata": {
            "customer_id": "c1",
            "invoice_ids": invoice_ids,
            "checkout_id": checkout_id,
            **metadata,
        },
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
    }


async def open_minor(api: httpx.AsyncClient, tenant: str, invoice_id: uuid.UUID) -> int:
    r = await api.get(f"/v1/invoices/{invoice_id}/open-amount", headers=auth(tenant))
    assert r.status_code == 200, r.text
    amount: int = r.json()["open_amount"]["amount"]
    return amount


async def test_a_checkout_whose_uuid_has_a_luhn_valid_digit_run_is_recorded(
    gateway_api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    """About 1 random UUID in 350 holds a Luhn-valid 13-19 digit run: such a checkout's payment
    was refused (422, "a card number must not be sent") after the card was charged."""
    inv = issued("c1", 8_000, number="INV-2026-009201")
    await feed(tenant, inv, "c1")
    checkout = "12345678-1234-5670-abcd-ef0123456789"  # 12345678-1234-5670 passes Luhn
    intent = checkout_intent("pi_checkout_luhn", 8_000, str(inv.invoice_id), checkout)
    r = await deliver(gateway_api, tenant, gateway_event("payment_intent.succeeded", intent))
    assert r.status_code == 200, r.text
    payment = (
        await gateway_api.get(f"/v1/payments/{r.json()['payment_id']}", headers=auth(tenant))
    ).json()
    assert payment["reference"] == f"checkout:{checkout}" and payment["status"] == "applied"
    found = await gateway_api.get(
        "/v1/payments", params={"checkout_id": checkout}, headers=auth(tenant)
    )
    assert [p["payment_id"] for p in found.json()["items"]] == [r.json()["payment_id"]]


async def test_a_checkout_payment_is_allocated_to_the_chosen_invoices_in_order(
    gateway_api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    a = issued("c1", 10_000, number="INV-2026-009101", due_days=10)
    b = issued("c1", 5_000, number="INV-2026-009102", due_days=20)
    older = issued("c1", 12_000, number="INV-2026-009103", due_days=5)  # not chosen
    theirs = issued("c2", 4_000, number="INV-2026-009104")  # another customer's
    dollars = issued("c1", 3_000, number="INV-2026-009105", currency="USD")
    for inv in (a, b, older, dollars):
        await feed(tenant, inv, "c1")
    await feed(tenant, theirs, "c2")
    ids = (uuid.uuid4(), theirs.invoice_id, dollars.invoice_id, b.invoice_id, a.invoice_id)
    chosen = ",".join(["garbage", *map(str, ids)])
    # 12_000 is exactly `older`'s amount: matching alone would have paid that one instead.
    intent = checkout_intent(
        "pi_checkout_1", 12_000, chosen, "co_1", invoice_number="INV-2026-009102"
    )
    # A fresh event naming an invoice not consumed yet waits (409: the gateway retries) ...
    young = await deliver(gateway_api, tenant, gateway_event("payment_intent.succeeded", intent))
    assert young.status_code == 409, young.text
    assert "not known here yet" in young.text
    # ... and after the grace period it is recorded, the unknown invoice skipped.
    body = gateway_event("payment_intent.succeeded", intent, age_seconds=2 * 3600)
    r = await deliver(gateway_api, tenant, body)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "recorded"
    payment = (
        await gateway_api.get(f"/v1/payments/{r.json()['payment_id']}", headers=auth(tenant))
    ).json()
    allocated = {a_["invoice_id"]: a_["amount"]["amount"] for a_ in payment["allocations"]}
    assert allocated == {str(b.invoice_id): 5_000, str(a.invoice_id): 7_000}
    assert {a_["rule"] for a_ in payment["allocations"]} == {"checkout"}
    assert payment["status"] == "applied" and payment["unapplied"] == money(0)
    assert payment["reference"] == "INV-2026-009102 checkout:co_1"
    assert [await open_minor(gateway_api, tenant, i.invoice_id) for i in (a, b, older)] == [
        3_000,
        0,
        12_000,
    ]
    assert await open_minor(gateway_api, tenant, theirs.invoice_id) == 4_000
    assert await open_minor(gateway_api, tenant, dollars.invoice_id) == 3_000
    # A redelivery changes nothing.
    assert (await deliver(gateway_api, tenant, body)).json()["outcome"] == "duplicate"

    # The portal finds the payment of a checkout by its id or by the gateway's reference.
    for params in ({"checkout_id": "co_1"}, {"gateway_ref": "pi_checkout_1"}):
        found = (await gateway_api.get("/v1/payments", params=params, headers=auth(tenant))).json()
        assert [p["payment_id"] for p in found["items"]] == [payment["payment_id"]]
    for params in ({"checkout_id": "coX1"}, {"checkout_id": "co"}, {"gateway_ref": "pi_x"}):
        found = (await gateway_api.get("/v1/payments", params=params, headers=auth(tenant))).json()
        assert found["items"] == [], params  # "_" is no LIKE wildcard; no prefix matches
    bad = await gateway_api.get(
        "/v1/payments", params={"checkout_id": "a b%"}, headers=auth(tenant)
    )
    assert bad.status_code == 422


async def test_what_the_chosen_invoices_leave_goes_through_matching(
    gateway_api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    chosen = issued("c1", 7_000, number="INV-2026-009201")
    other = issued("c1", 1_500, number="INV-2026-009202")
    for inv in (chosen, other):
        await feed(tenant, inv, "c1")
    # 8_500: 7_000 to the chosen invoice, the 1_500 left matches `other` by amount.
    body = gateway_event(
        "payment_intent.succeeded",
        checkout_intent("pi_checkout_2", 8_500, str(chosen.invoice_id), "co_2"),
    )
    r = await deliver(gateway_api, tenant, body)
    assert r.status_code == 200, r.text
    payment = (
        await gateway_api.get(f"/v1/payments/{r.json()['payment_id']}", headers=auth(tenant))
    ).json()
    rules = {a["invoice_id"]: (a["rule"], a["amount"]["amount"]) for a in payment["allocations"]}
    assert rules[str(chosen.invoice_id)] == ("checkout", 7_000)
    assert (
        rules[str(other.invoice_id)][1] == 1_500 and rules[str(other.invoice_id)][0] != "checkout"
    )
    # Only ids of no open invoice of this customer: plain matching, by the invoice number.
    numbered = issued("c1", 2_000, number="INV-2026-009203")
    await feed(tenant, numbered, "c1")
    body = gateway_event(
        "payment_intent.succeeded",
        checkout_intent(
            "pi_checkout_3",
            2_000,
            f"{chosen.invoice_id},{uuid.uuid4()},nonsense",
            "co_3",
            invoice_number="INV-2026-009203",
        ),
        age_seconds=2 * 3600,  # past the grace period for ids not consumed yet
    )
    r = await deliver(gateway_api, tenant, body)
    assert r.status_code == 200, r.text
    assert await open_minor(gateway_api, tenant, numbered.invoice_id) == 0
    assert await open_minor(gateway_api, tenant, chosen.invoice_id) == 0
