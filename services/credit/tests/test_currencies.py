"""Exposure across currencies, converted at recorded rates; no rate means no pass."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.credit.adapters import exposure
from services.credit.domain import account as domain
from services.credit.tests.test_api import auth, check, eur, set_limit
from shared.money import Money

pytestmark = pytest.mark.integration
TODAY = date.today()


async def rate(
    api: httpx.AsyncClient,
    tenant: str,
    frm: str,
    to: str,
    value: str,
    as_of: date = TODAY,
) -> httpx.Response:
    return await api.post(
        "/v1/exchange-rates",
        headers=auth(tenant),
        json={"from_currency": frm, "to_currency": to, "rate": value, "as_of": as_of.isoformat()},
    )


async def test_other_currency_invoices_and_amounts_are_converted_at_the_recorded_rate(
    api: httpx.AsyncClient,
    credit_sessions: async_sessionmaker[AsyncSession],
    tenant: str,
) -> None:
    await set_limit(api, tenant, "c1", 100_000)  # 1,000.00 EUR
    async with credit_sessions() as s, s.begin():
        await exposure.record_issued(
            s, tenant, uuid.uuid4(), "c1", Money.of_minor(50_000, "USD"), TODAY + timedelta(days=30)
        )
    blocked = await check(api, tenant, "c1", 100)
    assert blocked["outcome"] == "failed"
    assert [r["code"] for r in blocked["reasons"]] == ["no_exchange_rate"]
    assert "USD to EUR" in blocked["reasons"][0]["message"]

    assert (
        await rate(api, tenant, "USD", "EUR", "0.9", TODAY - timedelta(days=10))
    ).status_code == 201
    assert (await rate(api, tenant, "USD", "EUR", "0.92")).status_code == 201  # the latest wins
    # 500.00 USD x 0.92 = 460.00 EUR exposure: 540.00 EUR of headroom
    passed = await check(api, tenant, "c1", 54_000)
    assert passed["outcome"] == "passed", passed
    assert passed["exposure"] == eur(46_000) and passed["rates_used"] == {"USD": "0.92"}
    # an invoice in USD is weighed in EUR: 10.00 USD = 9.20 EUR > the 0.00 EUR left
    usd = await api.post(
        "/v1/credit-checks",
        headers=auth(tenant, scopes=("invoices:write",)),
        json={
            "customer_id": "c1",
            "amount": {"amount": 1_000, "currency": "USD"},
            "reference": "invoice:usd",
        },
    )
    body = usd.json()
    assert body["outcome"] == "failed" and body["amount_weighed"] == eur(920)
    assert body["reasons"][0]["message"].startswith("over the limit by 9.20 EUR")
    listed = (await api.get("/v1/exchange-rates", headers=auth(tenant))).json()
    assert listed == [
        {
            "from": "USD",
            "to": "EUR",
            "as_of": TODAY.isoformat(),
            "rate": "0.92",
            "recorded_by": "client:analyst",
        }
    ]


async def test_rates_are_validated(api: httpx.AsyncClient, tenant: str) -> None:
    for frm, to, value in (
        ("USD", "USD", "1"),
        ("USD", "EUR", "0"),
        ("USD", "EUR", "-1"),
        ("USD", "EUR", "1e3"),
        ("XYZ", "EUR", "1"),
    ):
        r = await rate(api, tenant, frm, to, value)
        assert r.status_code == 422, (frm, to, value, r.text)


def test_without_a_rate_a_check_never_passes_on_a_partial_total() -> None:
    state = domain.replay(
        domain.change_limit(
            None,
            "c",
            Money.of_minor(10**9, "EUR"),
            "x",
            "u",
            request_id=uuid.uuid4(),
            approval_threshold=None,
        )
    )
    assert state is not None
    from datetime import UTC, datetime

    [event] = domain.check_credit(
        state,
        check_id=uuid.uuid4(),
        reference="r",
        amount=Money.of_minor(1, "EUR"),
        exposure=Money.zero("EUR"),
        days_overdue=0,
        now=datetime.now(UTC),
        reservation_ttl=timedelta(minutes=5),
        unconvertible=["GBP", "USD"],
    )
    assert event.event_type == "CreditCheckFailed"
    assert [r.code for r in event.reasons] == ["no_exchange_rate"]  # type: ignore[attr-defined]
    assert "GBP, USD" in event.reasons[0].message  # type: ignore[attr-defined]
