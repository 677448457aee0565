"""The invoice API end to end over HTTP, on the real Postgres, as the service's own role."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.api.app import create_app
from services.invoice.config import InvoiceSettings
from services.invoice.tests.credit_stub import credit_stub
from shared.testing import app_client, bearer

pytestmark = pytest.mark.integration

ADDRESS = {"line1": "1 Infinite Loop", "city": "London", "postal_code": "EC1A 1BB", "country": "GB"}
NET30 = {"kind": "net", "net_days": 30}
WRITE = ("invoices:read", "invoices:write")


def auth(tenant: str, scopes: tuple[str, ...] = WRITE) -> dict[str, str]:
    return bearer(tenant, scopes)


@pytest.fixture
def credit_app() -> FastAPI:
    return credit_stub({"acme-ltd": 1_000_000, "tight-co": 5_000})


async def make_client(
    credit_app: FastAPI | None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=credit_app) if credit_app else None
    base = "http://credit" if credit_app else "http://127.0.0.1:9"
    client = CreditCheckClient(base, transport=transport, timeout_seconds=0.5)
    app = create_app(InvoiceSettings(run_relay=False, run_consumers=False, **settings), client)
    async with app_client(app, "http://invoice") as http:
        yield http


@pytest.fixture
async def api(credit_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for http in make_client(credit_app):
        yield http


async def customer(
    api: httpx.AsyncClient, tenant: str, customer_id: str = "acme-ltd", **extra: Any
) -> dict[str, Any]:
    body = {
        "customer_id": customer_id,
        "name": "Acme Ltd",
        "email": "ap@acme.example",
        "currency": "EUR",
        "billing_address": ADDRESS,
        "default_terms": NET30,
        **extra,
    }
    r = await api.post("/v1/customers", json=body, headers=auth(tenant))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


LINES = [
    {
        "description": "Consulting",
        "quantity": "10",
        "unit_price": 12_000,
        "taxes": [{"code": "VAT19", "percent": "19"}],
    },
    {
        "description": "Licence",
        "quantity": "1",
        "unit_price": 50_000,
        "discount_percent": "10",
        "taxes": [{"code": "VAT19", "percent": "19"}],
    },
]


async def draft(
    api: httpx.AsyncClient, tenant: str, customer_id: str = "acme-ltd", **extra: Any
) -> dict[str, Any]:
    r = await api.post(
        "/v1/invoices",
        json={"customer_id": customer_id, "lines": LINES, **extra},
        headers=auth(tenant),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def issue(
    api: httpx.AsyncClient, tenant: str, invoice_id: str, **body: Any
) -> httpx.Response:
    return await api.post(
        f"/v1/invoices/{invoice_id}/issue",
        json={"issue_date": "2026-11-02", **body},
        headers=auth(tenant),
    )


async def test_draft_computes_totals_from_the_customer_defaults(
    api: httpx.AsyncClient, tenant: str
) -> None:
    await customer(api, tenant)
    inv = await draft(api, tenant)
    # 10 x 120.00 = 1200.00; 500.00 - 10% = 450.00; net 1650.00; VAT 19% = 313.50
    assert inv["status"] == "draft" and inv["number"] is None
    assert inv["subtotal"] == {"amount": 165_000, "currency": "EUR"}
    assert inv["tax_total"] == {"amount": 31_350, "currency": "EUR"}
    assert inv["total"] == {"amount": 196_350, "currency": "EUR"}
    assert inv["terms"] == {**inv["terms"], "kind": "net", "net_days": 30}
    got = await api.get(f"/v1/invoices/{inv['invoice_id']}", headers=auth(tenant))
    assert got.json() == inv


async def test_issue_numbers_gaplessly_and_issued_invoices_are_immutable(
    api: httpx.AsyncClient, tenant: str, credit_app: FastAPI
) -> None:
    await customer(api, tenant)
    first, second = await draft(api, tenant), await draft(api, tenant)
    r1 = await issue(api, tenant, first["invoice_id"])
    r2 = await issue(api, tenant, second["invoice_id"])
    assert r1.status_code == 200, r1.text
    assert (r1.json()["number"], r2.json()["number"]) == ("INV-2026-000001", "INV-2026-000002")
    issued = r1.json()
    assert issued["status"] == "issued" and issued["due_date"] == "2026-12-02"
    assert issued["credit_check"]["outcome"] == "passed"
    assert credit_app.state.calls[0]["body"]["amount"] == {"amount": 196_350, "currency": "EUR"}
    patch = await api.patch(
        f"/v1/invoices/{first['invoice_id']}", json={"notes": "x"}, headers=auth(tenant)
    )
    assert patch.status_code == 409 and patch.json()["error"]["code"] == "state_conflict"
    again = await issue(api, tenant, first["invoice_id"])
    assert again.status_code == 409


async def test_patch_changes_a_draft(api: httpx.AsyncClient, tenant: str) -> None:
    await customer(api, tenant)
    inv = await draft(api, tenant)
    r = await api.patch(
        f"/v1/invoices/{inv['invoice_id']}",
        json={"lines": LINES[:1], "po_reference": "PO-1"},
        headers=auth(tenant),
    )
    assert r.status_code == 200, r.text
    assert r.json()["po_reference"] == "PO-1" and r.json()["total"]["amount"] == 142_800


async def test_credit_refusal_override_and_outage(credit_app: FastAPI, tenant: str) -> None:
    async for api in make_client(credit_app):
        await customer(api, tenant, "tight-co")
        inv = await draft(api, tenant, "tight-co")
        refused = await issue(api, tenant, inv["invoice_id"])
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "credit_check_failed"
        assert refused.json()["error"]["details"]["reasons"][0]["code"] == "over_limit"
        no_scope = await issue(
            api,
            tenant,
            inv["invoice_id"],
            override_credit_check=True,
            override_reason="CFO approved",
        )
        assert no_scope.status_code == 403
        overridden = await api.post(
            f"/v1/invoices/{inv['invoice_id']}/issue",
            json={
                "issue_date": "2026-11-02",
                "override_credit_check": True,
                "override_reason": "CFO approved",
            },
            headers=auth(tenant, (*WRITE, "credit:override")),
        )
        assert overridden.status_code == 200, overridden.text
        record = overridden.json()["credit_check"]
        assert record["outcome"] == "overridden" and record["overridden_by"] == "client:erp"
        assert "CFO approved" in record["reason"]
        # the refused attempts consumed no number: the override got the first one
        assert overridden.json()["number"] == "INV-2026-000001"

    async for api in make_client(None):  # credit service unreachable, default policy: refuse
        inv = await draft(api, tenant, "tight-co")
        r = await issue(api, tenant, inv["invoice_id"])
        assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable"
    async for api in make_client(None, issue_when_credit_unavailable=True):
        r = await issue(api, tenant, inv["invoice_id"])
        assert r.status_code == 200 and r.json()["credit_check"]["outcome"] == "unavailable_allowed"


async def test_credit_notes_disputes_write_off_and_void(
    api: httpx.AsyncClient, tenant: str
) -> None:
    await customer(api, tenant)
    inv = await draft(api, tenant)
    iid = inv["invoice_id"]
    await issue(api, tenant, iid)
    cn = await api.post(
        f"/v1/invoices/{iid}/credit-notes",
        json={"amount": 10_000, "reason": "goodwill", "on": "2026-11-03"},
        headers=auth(tenant),
    )
    assert cn.status_code == 201, cn.text
    assert cn.json()["number"] == "CN-2026-000001"
    assert cn.json()["invoice"]["open_amount"]["amount"] == 186_350
    too_much = await api.post(
        f"/v1/invoices/{iid}/credit-notes",
        json={"amount": 186_351, "reason": "x", "on": "2026-11-03"},
        headers=auth(tenant),
    )
    assert too_much.status_code == 422
    opened = await api.post(
        f"/v1/invoices/{iid}/disputes",
        json={"amount": 6_350, "reason": "wrong rate", "on": "2026-11-04"},
        headers=auth(tenant),
    )
    assert opened.status_code == 201, opened.text
    dispute = opened.json()["disputes"][0]
    assert opened.json()["collectible_amount"]["amount"] == 180_000
    resolved = await api.post(
        f"/v1/invoices/{iid}/disputes/{dispute['dispute_id']}/resolve",
        json={"outcome": "accepted", "on": "2026-11-05"},
        headers=auth(tenant),
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["open_amount"]["amount"] == 180_000
    assert resolved.json()["disputes"][0]["status"] == "accepted"
    void = await api.post(f"/v1/invoices/{iid}/void", json={"reason": "x"}, headers=auth(tenant))
    assert void.status_code in (409, 422)  # credit notes exist: correct with credit notes instead
    wo = await api.post(
        f"/v1/invoices/{iid}/write-off",
        json={"reason": "insolvent", "on": "2026-11-20"},
        headers=auth(tenant),
    )
    assert wo.status_code == 200 and wo.json()["status"] == "written_off"
    assert wo.json()["open_amount"]["amount"] == 0

    other = await draft(api, tenant)
    await issue(api, tenant, other["invoice_id"])
    voided = await api.post(
        f"/v1/invoices/{other['invoice_id']}/void",
        json={"reason": "duplicate", "on": "2026-11-03"},
        headers=auth(tenant),
    )
    assert voided.status_code == 200 and voided.json()["status"] == "void"


async def test_lists_filter_and_paginate_within_the_tenant(
    api: httpx.AsyncClient, tenant: str
) -> None:
    await customer(api, tenant)
    await customer(api, tenant, "beta-gmbh")
    ids = [(await draft(api, tenant))["invoice_id"] for _ in range(3)]
    await draft(api, tenant, "beta-gmbh")
    await issue(api, tenant, ids[0])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"customer_id": "acme-ltd", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/invoices", params=params, headers=auth(tenant))).json()
        seen += [i["invoice_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    issued = (
        await api.get("/v1/invoices", params={"status": "issued"}, headers=auth(tenant))
    ).json()
    assert [i["invoice_id"] for i in issued["items"]] == [ids[0]]
    due = (
        await api.get("/v1/invoices", params={"due_before": "2026-12-31"}, headers=auth(tenant))
    ).json()
    assert [i["invoice_id"] for i in due["items"]] == [ids[0]]
    other_tenant = f"{tenant}-other"
    assert (await api.get("/v1/invoices", headers=auth(other_tenant))).json()["items"] == []
    hidden = await api.get(f"/v1/invoices/{ids[0]}", headers=auth(other_tenant))
    assert hidden.status_code == 404
    assert (
        await api.get("/v1/invoices", params={"cursor": "garbage!"}, headers=auth(tenant))
    ).status_code == 422


async def test_pdf_and_idempotent_create(api: httpx.AsyncClient, tenant: str) -> None:
    await customer(api, tenant)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"customer_id": "acme-ltd", "lines": LINES}
    a = await api.post("/v1/invoices", json=body, headers={**auth(tenant), **key})
    b = await api.post("/v1/invoices", json=body, headers={**auth(tenant), **key})
    assert a.json()["invoice_id"] == b.json()["invoice_id"]
    assert b.headers.get("idempotent-replayed") == "true"
    iid = a.json()["invoice_id"]
    await issue(api, tenant, iid)
    pdf = await api.get(f"/v1/invoices/{iid}.pdf", headers=auth(tenant))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert (
        pdf.content.startswith(b"%PDF")
        and b"INV-2026-000001" in pdf.headers["content-disposition"].encode()
    )


async def test_bad_input_is_a_clear_422(api: httpx.AsyncClient, tenant: str) -> None:
    await customer(api, tenant)
    cases = [
        {"customer_id": "acme-ltd", "lines": []},
        {"customer_id": "acme-ltd", "lines": [{**LINES[0], "quantity": 1.5}]},
        {"customer_id": "acme-ltd", "lines": LINES, "terms": {"kind": "net"}},
        {"customer_id": "nobody", "lines": LINES},
        {"customer_id": "acme-ltd", "lines": LINES, "surprise": 1},
    ]
    for body in cases:
        r = await api.post("/v1/invoices", json=body, headers=auth(tenant))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == "validation_failed"


async def test_concurrent_issuing_with_losing_duplicates_leaves_no_gap(
    api: httpx.AsyncClient, tenant: str
) -> None:
    await customer(api, tenant)
    drafts = [(await draft(api, tenant))["invoice_id"] for _ in range(20)]
    # every second invoice is issued twice at once: one attempt wins, the other aborts (409)
    attempts = drafts + drafts[::2]
    results = await asyncio.gather(*(issue(api, tenant, iid) for iid in attempts))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 20 + [409] * 10, [r.text for r in results if r.status_code != 200]
    numbers = sorted(
        int(r.json()["number"].rsplit("-", 1)[1]) for r in results if r.status_code == 200
    )
    assert numbers == list(range(1, 21))
