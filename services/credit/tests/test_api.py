"""The credit API over HTTP on the real Postgres: limits with maker-checker, holds, checks."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from shared.testing import bearer

pytestmark = pytest.mark.integration
SCOPES = ("credit:read", "credit:write", "credit:check")


def auth(tenant: str, subject: str = "analyst", scopes: tuple[str, ...] = SCOPES) -> dict[str, str]:
    return bearer(tenant, scopes, subject)


def eur(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "EUR"}


async def set_limit(
    api: httpx.AsyncClient, tenant: str, customer: str, amount: int
) -> httpx.Response:
    return await api.put(
        f"/v1/customers/{customer}/credit-limit",
        json={"limit": eur(amount), "reason": "annual review"},
        headers=auth(tenant),
    )


async def check(
    api: httpx.AsyncClient, tenant: str, customer: str, amount: int, reference: str | None = None
) -> dict[str, Any]:
    r = await api.post(
        "/v1/credit-checks",
        headers=auth(tenant, scopes=("invoices:write",)),
        json={
            "customer_id": customer,
            "amount": eur(amount),
            "reference": reference or f"invoice:{uuid.uuid4()}",
        },
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_limits_below_the_threshold_apply_above_it_need_a_second_person(
    api: httpx.AsyncClient, tenant: str
) -> None:
    r = await set_limit(api, tenant, "c1", 1_000_000)  # 10,000.00 EUR: under 50,000.00
    assert r.status_code == 200 and r.json()["limit"] == eur(1_000_000)
    big = await set_limit(api, tenant, "c1", 9_000_000)
    pending = big.json()["pending_limit_change"]
    assert big.json()["limit"] == eur(1_000_000) and pending["limit"] == eur(9_000_000)
    approve = f"/v1/customers/c1/credit-limit/requests/{pending['request_id']}/approve"
    own = await api.post(approve, headers=auth(tenant, "analyst", (*SCOPES, "credit:approve")))
    assert own.status_code == 403  # maker-checker: not by the requester
    no_scope = await api.post(approve, headers=auth(tenant, "boss"))
    assert no_scope.status_code == 403
    ok = await api.post(approve, headers=auth(tenant, "boss", ("credit:approve",)))
    assert ok.status_code == 200 and ok.json()["limit"] == eur(9_000_000)
    assert ok.json()["pending_limit_change"] is None


async def test_checks_pass_reserve_and_fail_with_reasons(
    api: httpx.AsyncClient, tenant: str
) -> None:
    none = await check(api, tenant, "nobody", 100)
    assert none["outcome"] == "failed" and none["reasons"][0]["code"] == "no_limit"
    await set_limit(api, tenant, "c2", 100_000)
    first = await check(api, tenant, "c2", 60_000, "invoice:A")
    assert first["outcome"] == "passed"
    again = await check(api, tenant, "c2", 60_000, "invoice:A")  # a retried issue: same answer
    assert again["check_id"] == first["check_id"] and again["outcome"] == "passed"
    second = await check(api, tenant, "c2", 50_000, "invoice:B")  # 60,000 reserved already
    assert second["outcome"] == "failed"
    assert second["reasons"][0]["code"] == "over_limit"
    assert second["reasons"][0]["amount"] == eur(10_000)
    account = (await api.get("/v1/customers/c2/credit", headers=auth(tenant))).json()
    assert account["headroom"] == eur(40_000) and len(account["reservations"]) == 1


async def test_holds_refuse_every_check_until_released(api: httpx.AsyncClient, tenant: str) -> None:
    await set_limit(api, tenant, "c3", 100_000)
    hold = await api.post(
        "/v1/customers/c3/holds", json={"reason": "fraud review"}, headers=auth(tenant)
    )
    assert hold.status_code == 201
    hold_id = hold.json()["holds"][0]["hold_id"]
    refused = await check(api, tenant, "c3", 1)
    assert [r["code"] for r in refused["reasons"]] == ["on_hold"]
    assert "fraud review" in refused["reasons"][0]["message"]
    released = await api.post(
        f"/v1/customers/c3/holds/{hold_id}/release",
        json={"reason": "cleared"},
        headers=auth(tenant),
    )
    assert released.status_code == 200 and released.json()["on_hold"] is False
    assert (await check(api, tenant, "c3", 1))["outcome"] == "passed"


async def test_concurrent_checks_cannot_spend_the_same_headroom(
    api: httpx.AsyncClient, tenant: str
) -> None:
    await set_limit(api, tenant, "c4", 100_000)
    results = await asyncio.gather(*(check(api, tenant, "c4", 30_000) for _ in range(10)))
    assert sorted(r["outcome"] for r in results) == ["failed"] * 7 + ["passed"] * 3
    account = (await api.get("/v1/customers/c4/credit", headers=auth(tenant))).json()
    assert account["headroom"] == eur(10_000)


async def test_tenants_do_not_see_each_other(api: httpx.AsyncClient, tenant: str) -> None:
    await set_limit(api, tenant, "c5", 100_000)
    other = await api.get("/v1/customers/c5/credit", headers=auth(f"{tenant}x"))
    assert other.status_code == 404
    assert (await check(api, f"{tenant}x", "c5", 1))["reasons"][0]["code"] == "no_limit"


async def test_accounts_without_a_limit_take_the_tenant_default(
    api: httpx.AsyncClient, tenant: str
) -> None:
    assert (await check(api, tenant, "new-1", 100))["reasons"][0]["code"] == "no_limit"
    r = await api.put(
        "/v1/credit-policies/default",
        headers=auth(tenant),
        json={"limit": eur(50_000), "max_days_overdue": 30},
    )
    assert r.status_code == 200 and r.json()["scope"] == "tenant"
    passed = await check(api, tenant, "new-2", 40_000)
    assert passed["outcome"] == "passed" and passed["limit"] == eur(50_000)
    account = (await api.get("/v1/customers/new-2/credit", headers=auth(tenant))).json()
    assert account["policy"]["max_days_overdue"] == 30 and account["limit"] == eur(50_000)
    await set_limit(api, tenant, "own", 1_000)  # a customer's own limit always wins
    own = await check(api, tenant, "own", 2_000)
    assert own["outcome"] == "failed" and own["limit"] == eur(1_000)


async def test_a_customer_in_a_segment_takes_the_segment_default(
    api: httpx.AsyncClient, tenant: str
) -> None:
    await api.put("/v1/credit-policies/default", headers=auth(tenant), json={"limit": eur(1_000)})
    seg = await api.put(
        "/v1/credit-policies/segments/enterprise",
        headers=auth(tenant),
        json={"limit": eur(900_000), "max_days_overdue": 45},
    )
    assert seg.status_code == 200, seg.text
    placed = await api.put(
        "/v1/customers/big/credit-policy",
        headers=auth(tenant),
        json={"max_days_overdue": 60, "segment": "enterprise"},
    )
    assert placed.status_code == 200 and placed.json()["limit"] is None
    big = await check(api, tenant, "big", 800_000)
    assert big["outcome"] == "passed" and big["limit"] == eur(900_000)
    big_account = (await api.get("/v1/customers/big/credit", headers=auth(tenant))).json()
    assert big_account["policy"]["max_days_overdue"] == 60  # its own policy is kept
    small = await check(api, tenant, "small", 800_000)  # no segment: the tenant default
    assert small["outcome"] == "failed" and small["limit"] == eur(1_000)
    listed = (await api.get("/v1/credit-policies", headers=auth(tenant))).json()
    assert [p["scope"] for p in listed] == ["segment:enterprise", "tenant"]


async def test_path_and_body_validation(api: httpx.AsyncClient, tenant: str) -> None:
    bad_path = await api.put("/v1/credit-policies/segments/a b", headers=auth(tenant), json={})
    assert bad_path.status_code == 422
    bad_body = await api.put(
        "/v1/credit-policies/default",
        headers=auth(tenant),
        json={"limit": {"amount": 1.5, "currency": "EUR"}},
    )
    assert bad_body.status_code == 422
    bad_customer = await api.get("/v1/customers/a%20b/credit", headers=auth(tenant))
    assert bad_customer.status_code == 422
