"""The payments API over HTTP on the real Postgres: recording, allocation, matching and review,
refunds and reversals, and what the invoice stream teaches the service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.payments.tests.conftest import TODAY, Feed, auth, drafted, issued, money
from shared.contracts.invoice import CreditNoteIssued, InvoiceVoided, PaymentApplicationRejected
from shared.money import Money

pytestmark = pytest.mark.integration


async def pay(
    api: httpx.AsyncClient, tenant: str, customer: str, minor: int, **extra: Any
) -> dict[str, Any]:
    body = {
        "customer_id": customer,
        "amount": money(minor, extra.pop("currency", "EUR")),
        "method": extra.pop("method", "bank_transfer"),
        "received_on": TODAY.isoformat(),
        **extra,
    }
    r = await api.post("/v1/payments", json=body, headers=auth(tenant))
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def open_amount(api: httpx.AsyncClient, tenant: str, invoice_id: uuid.UUID) -> int:
    r = await api.get(f"/v1/invoices/{invoice_id}/open-amount", headers=auth(tenant))
    assert r.status_code == 200, r.text
    value: int = r.json()["open_amount"]["amount"]
    return value


async def test_manual_allocation_partial_full_and_unapplied_remainder(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    a, b = issued("c1", 10_000), issued("c1", 5_000)
    for inv in (a, b):
        await feed(tenant, inv, "c1")
    payment = await pay(
        api,
        tenant,
        "c1",
        12_000,
        allocations=[
            {"invoice_id": str(a.invoice_id), "amount": money(10_000)},
            {"invoice_id": str(b.invoice_id), "amount": money(1_500)},
        ],
    )
    assert payment["status"] == "partially_applied"
    assert payment["applied"] == money(11_500) and payment["unapplied"] == money(500)
    assert await open_amount(api, tenant, a.invoice_id) == 0
    assert await open_amount(api, tenant, b.invoice_id) == 3_500
    # The rest applied later, by hand; more than is left is refused whole.
    pid = payment["payment_id"]
    too_much = await api.post(
        f"/v1/payments/{pid}/allocations",
        json={"allocations": [{"invoice_id": str(b.invoice_id), "amount": money(600)}]},
        headers=auth(tenant),
    )
    assert too_much.status_code == 422
    assert too_much.json()["error"]["details"]["unapplied"] == money(500)
    ok = await api.post(
        f"/v1/payments/{pid}/allocations",
        json={"allocations": [{"invoice_id": str(b.invoice_id), "amount": money(500)}]},
        headers=auth(tenant),
    )
    assert ok.status_code == 200 and ok.json()["status"] == "applied"
    listed = (await api.get("/v1/customers/c1/payments", headers=auth(tenant))).json()
    assert [p["payment_id"] for p in listed["items"]] == [pid]
    assert listed["unapplied"] == []


async def test_a_payment_whose_allocations_do_not_fit_is_not_recorded_at_all(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 1_000)
    await feed(tenant, inv, "c1")
    r = await api.post(
        "/v1/payments",
        json={
            "customer_id": "c1",
            "amount": money(5_000),
            "method": "bank_transfer",
            "received_on": TODAY.isoformat(),
            "allocations": [{"invoice_id": str(inv.invoice_id), "amount": money(2_000)}],
        },
        headers=auth(tenant),
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"]["open_amount"] == money(1_000)
    listed = (await api.get("/v1/payments", headers=auth(tenant))).json()
    assert listed["items"] == []
    assert await open_amount(api, tenant, inv.invoice_id) == 1_000


async def test_concurrent_payments_cannot_overfill_one_invoice(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 10_000)
    await feed(tenant, inv, "c1")
    payments = [await pay(api, tenant, "c1", 4_000, auto_match=False) for _ in range(4)]

    async def allocate(p: dict[str, Any]) -> int:
        r = await api.post(
            f"/v1/payments/{p['payment_id']}/allocations",
            json={"allocations": [{"invoice_id": str(inv.invoice_id), "amount": money(4_000)}]},
            headers=auth(tenant),
        )
        return r.status_code

    codes = await asyncio.gather(*(allocate(p) for p in payments))
    assert sorted(codes) == [200, 200, 422, 422]
    assert await open_amount(api, tenant, inv.invoice_id) == 2_000


async def test_invoice_number_in_the_reference_is_applied_automatically(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 7_500, number="INV-2026-000042")
    await feed(tenant, inv, "c1")
    await feed(tenant, issued("c1", 7_500), "c1")  # same amount: only the number tells them apart
    payment = await pay(api, tenant, "c1", 7_500, reference="Payment for inv 2026-000042, thanks")
    assert payment["matching"]["outcome"] == "auto_applied"
    assert payment["matching"]["rule"] == "invoice_number"
    assert payment["allocations"][0]["invoice_id"] == str(inv.invoice_id)
    assert payment["allocations"][0]["rule"] == "invoice_number"
    stats = (await api.get("/v1/matching/stats", headers=auth(tenant))).json()
    assert stats["outcomes"]["auto_applied"] == 1 and stats["auto_match_rate"] == "1.0000"


async def test_uncertain_matches_wait_for_review_and_can_be_accepted(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    older = issued("c1", 3_000, due_days=10)
    await feed(tenant, older, "c1")
    await feed(tenant, issued("c1", 3_000, due_days=20), "c1")
    payment = await pay(api, tenant, "c1", 3_000)
    assert payment["matching"]["outcome"] == "proposed"
    assert payment["unapplied"] == money(3_000)
    review = (await api.get("/v1/review/payments", headers=auth(tenant))).json()
    [item] = review["items"]
    assert item["payment_id"] == payment["payment_id"]
    best = item["proposals"][0]
    assert best["allocations"][0]["invoice_id"] == str(older.invoice_id)
    assert float(best["confidence"]) < 0.9
    accepted = await api.post(f"/v1/proposals/{best['proposal_id']}/accept", headers=auth(tenant))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "applied"
    assert accepted.json()["allocations"][0]["rule"] == best["rule"]
    again = await api.post(f"/v1/proposals/{best['proposal_id']}/accept", headers=auth(tenant))
    assert again.status_code == 409
    review = (await api.get("/v1/review/payments", headers=auth(tenant))).json()
    assert review["items"] == []
    stats = (await api.get("/v1/matching/stats", headers=auth(tenant))).json()
    assert stats["outcomes"] == {"auto_applied": 0, "proposed": 1, "unmatched": 0}


async def test_unapplied_cash_is_matched_when_its_invoice_is_issued_later(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    payment = await pay(api, tenant, "c1", 2_500, reference="INV-2026-777001")
    assert payment["matching"]["outcome"] == "unmatched"
    cash = (await api.get("/v1/customers/c1/unapplied-cash", headers=auth(tenant))).json()
    assert cash["unapplied"] == [{"amount": 2_500, "currency": "EUR", "payments": 1}]
    inv = issued("c1", 2_500, number="INV-2026-777001")
    await feed(tenant, inv, "c1")
    got = (await api.get(f"/v1/payments/{payment['payment_id']}", headers=auth(tenant))).json()
    assert got["status"] == "applied"
    assert got["allocations"][0]["invoice_id"] == str(inv.invoice_id)


async def test_early_payment_discount_amount_matches_exactly(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv_id = uuid.uuid4()
    await feed(tenant, drafted(inv_id, "c1", 10_000, ("2", 10)), "c1")
    await feed(tenant, issued("c1", 10_000, invoice_id=inv_id), "c1")
    payment = await pay(api, tenant, "c1", 9_800)
    assert payment["matching"]["outcome"] == "auto_applied", payment["matching"]
    assert payment["allocations"][0]["amount"] == money(9_800)


async def test_refund_takes_back_the_newest_allocation_and_reopens_the_invoice(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    a, b = issued("c1", 4_000), issued("c1", 4_000)
    for inv in (a, b):
        await feed(tenant, inv, "c1")
    payment = await pay(
        api,
        tenant,
        "c1",
        9_000,
        allocations=[
            {"invoice_id": str(a.invoice_id), "amount": money(4_000)},
            {"invoice_id": str(b.invoice_id), "amount": money(4_000)},
        ],
    )
    pid = payment["payment_id"]
    r = await api.post(
        f"/v1/payments/{pid}/refunds",
        json={"amount": money(2_500), "reason": "customer asked"},
        headers=auth(tenant),
    )
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["refunded"] == money(2_500) and after["unapplied"] == money(0)
    assert after["applied"] == money(6_500)
    opens = {
        await open_amount(api, tenant, a.invoice_id),
        await open_amount(api, tenant, b.invoice_id),
    }
    assert opens == {0, 1_500}
    over = await api.post(
        f"/v1/payments/{pid}/refunds",
        json={"amount": money(7_000), "reason": "too much"},
        headers=auth(tenant),
    )
    assert over.status_code == 422


async def test_a_bounced_cheque_reverses_everything_and_reopens_invoices(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 5_000)
    await feed(tenant, inv, "c1")
    payment = await pay(
        api,
        tenant,
        "c1",
        5_000,
        method="cheque",
        details={"cheque_number": "000123", "bank_name": "First Bank"},
        allocations=[{"invoice_id": str(inv.invoice_id), "amount": money(5_000)}],
    )
    r = await api.post(
        f"/v1/payments/{payment['payment_id']}/reversals",
        json={"kind": "bounced", "reason": "insufficient funds"},
        headers=auth(tenant),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "reversed" and r.json()["reversed"] == money(5_000)
    assert await open_amount(api, tenant, inv.invoice_id) == 5_000
    again = await api.post(
        f"/v1/payments/{payment['payment_id']}/allocations",
        json={"allocations": [{"invoice_id": str(inv.invoice_id), "amount": money(1)}]},
        headers=auth(tenant),
    )
    assert again.status_code == 409


async def test_an_allocation_the_invoice_rejects_returns_to_unapplied(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 5_000)
    await feed(tenant, inv, "c1")
    payment = await pay(
        api,
        tenant,
        "c1",
        5_000,
        allocations=[{"invoice_id": str(inv.invoice_id), "amount": money(5_000)}],
    )
    allocation = payment["allocations"][0]
    # The invoice took a credit note first; then it rejects the allocation.
    await feed(
        tenant,
        CreditNoteIssued(
            invoice_id=inv.invoice_id,
            credit_note_id=uuid.uuid4(),
            amount=Money.of_minor(1_000, "EUR"),
            reason="damaged",
            issued_on=TODAY,
        ),
        "c1",
    )
    rejection = PaymentApplicationRejected(
        invoice_id=inv.invoice_id,
        allocation_id=uuid.UUID(allocation["allocation_id"]),
        payment_id=uuid.UUID(payment["payment_id"]),
        amount=Money.of_minor(5_000, "EUR"),
        code="over_application",
        reason="exceeds the open amount 40.00 EUR",
        rejected_on=TODAY,
    )
    await feed(tenant, rejection, "c1")
    await feed(tenant, rejection, "c1")  # redelivered under a new event id: no second effect
    got = (await api.get(f"/v1/payments/{payment['payment_id']}", headers=auth(tenant))).json()
    assert got["unapplied"] == money(5_000) and got["allocations"] == []
    assert await open_amount(api, tenant, inv.invoice_id) == 4_000


async def test_void_and_unknown_invoices_take_no_allocations(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 1_000)
    await feed(tenant, inv, "c1")
    await feed(
        tenant, InvoiceVoided(invoice_id=inv.invoice_id, reason="dup", voided_on=TODAY), "c1"
    )
    payment = await pay(api, tenant, "c1", 1_000, auto_match=False)
    for invoice_id in (inv.invoice_id, uuid.uuid4()):
        r = await api.post(
            f"/v1/payments/{payment['payment_id']}/allocations",
            json={"allocations": [{"invoice_id": str(invoice_id), "amount": money(1_000)}]},
            headers=auth(tenant),
        )
        assert r.status_code == 409


async def test_another_customers_invoice_is_refused(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c2", 1_000)
    await feed(tenant, inv, "c2")
    r = await api.post(
        "/v1/payments",
        json={
            "customer_id": "c1",
            "amount": money(1_000),
            "method": "cash",
            "received_on": TODAY.isoformat(),
            "allocations": [{"invoice_id": str(inv.invoice_id), "amount": money(1_000)}],
        },
        headers=auth(tenant),
    )
    assert r.status_code == 422


async def test_cross_currency_allocation_records_the_rate(
    api: httpx.AsyncClient, tenant: str, feed: Feed
) -> None:
    inv = issued("c1", 11_000, currency="USD")
    await feed(tenant, inv, "c1")
    no_rate = await api.post(
        "/v1/payments",
        json={
            "customer_id": "c1",
            "amount": money(10_000),
            "method": "bank_transfer",
            "received_on": TODAY.isoformat(),
            "allocations": [{"invoice_id": str(inv.invoice_id), "amount": money(11_000, "USD")}],
        },
        headers=auth(tenant),
    )
    assert no_rate.status_code == 422
    payment = await pay(
        api,
        tenant,
        "c1",
        10_000,
        allocations=[
            {"invoice_id": str(inv.invoice_id), "amount": money(11_000, "USD"), "rate": "1.1"}
        ],
    )
    [allocation] = payment["allocations"]
    assert allocation["amount"] == money(11_000, "USD")
    assert allocation["payment_amount"] == money(10_000) and allocation["rate"] == "1.1"
    assert payment["status"] == "applied"
    assert await open_amount(api, tenant, inv.invoice_id) == 0


async def test_card_numbers_are_refused_and_method_details_required(
    api: httpx.AsyncClient, tenant: str
) -> None:
    base = {
        "customer_id": "c1",
        "amount": money(1_000),
        "received_on": TODAY.isoformat(),
    }
    cases: list[tuple[dict[str, Any], int]] = [
        ({"method": "card", "details": {"gateway_ref": "pi_1", "last4": "4242"}}, 201),
        ({"method": "card", "details": {"gateway_ref": "pi_2"}}, 422),
        ({"method": "card", "details": {"gateway_ref": "pi_3", "last4": "4242424242424242"}}, 422),
        ({"method": "bank_transfer", "reference": "card 4242 4242 4242 4242"}, 422),
        ({"method": "cheque"}, 422),
        ({"method": "cheque", "details": {"cheque_number": "12"}}, 201),
        ({"method": "bitcoin"}, 422),
        ({"method": "cash", "pan": "4242424242424242"}, 422),
        ({"method": "cash", "amount": money(0)}, 422),
        ({"method": "cash", "amount": {"amount": 10.5, "currency": "EUR"}}, 422),
    ]
    for extra, status in cases:
        r = await api.post("/v1/payments", json={**base, **extra}, headers=auth(tenant))
        assert r.status_code == status, (extra, r.text)
        assert "4242424242424242" not in r.text and "4242 4242 4242 4242" not in r.text


async def test_tenants_and_scopes(api: httpx.AsyncClient, tenant: str) -> None:
    payment = await pay(api, tenant, "c1", 1_000, auto_match=False)
    other = await api.get(f"/v1/payments/{payment['payment_id']}", headers=auth("someone-else"))
    assert other.status_code == 404
    read_only = await api.post(
        "/v1/payments",
        json={
            "customer_id": "c1",
            "amount": money(1),
            "method": "cash",
            "received_on": "2026-01-01",
        },
        headers=auth(tenant, scopes=("payments:read",)),
    )
    assert read_only.status_code == 403
    assert (await api.get("/v1/payments")).status_code == 401


async def test_idempotency_key_replays_the_first_response(
    api: httpx.AsyncClient, tenant: str
) -> None:
    body = {
        "customer_id": "c1",
        "amount": money(1_000),
        "method": "cash",
        "received_on": TODAY.isoformat(),
    }
    headers = {**auth(tenant), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    first, second = await asyncio.gather(
        api.post("/v1/payments", json=body, headers=headers),
        api.post("/v1/payments", json=body, headers=headers),
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["payment_id"] == second.json()["payment_id"]
    changed = await api.post("/v1/payments", json={**body, "amount": money(2_000)}, headers=headers)
    assert changed.status_code == 422
    listed = (await api.get("/v1/payments", headers=auth(tenant))).json()
    assert len(listed["items"]) == 1


async def test_list_filters_and_pagination(api: httpx.AsyncClient, tenant: str) -> None:
    for i in range(5):
        await pay(api, tenant, f"c{i % 2}", 100 + i, auto_match=False, method="cash")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "customer_id": "c0"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/payments", params=params, headers=auth(tenant))).json()
        seen += [p["payment_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3
    late = (TODAY + timedelta(days=1)).isoformat()
    none = await api.get("/v1/payments", params={"received_from": late}, headers=auth(tenant))
    assert none.json()["items"] == []
