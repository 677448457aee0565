"""Helpers of the cross-service tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx


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
