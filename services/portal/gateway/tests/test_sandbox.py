"""The sandbox gateway in-process: sessions and their API key, the hosted page, card checks,
and the signed webhook it sends (checked with the payments service's own verifier and parser)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from services.payments.domain.webhook import (
    SIGNATURE_HEADER,
    GatewayPayment,
    interpret,
    parse_event,
    verify_signature,
)
from services.portal.gateway.sandbox import (
    SandboxGatewaySettings,
    _luhn_valid,
    _with_query,
    create_app,
)
from shared.money import Money
from shared.testing import wait_until

API_KEY = "sk_test_unit"
SECRET = "whsec_unit_0123456789"
TENANT = "t1"
INVOICES = [uuid.UUID("1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"), uuid.uuid4()]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
GOOD_CARD = {
    "card_number": "4242 4242 4242 4242",
    "card_expiry": "12/39",
    "card_cvc": "123",
    "card_name": "Ada Lovelace",
}
PAN_RE = re.compile(r"\d{13,19}")


@dataclass
class Receiver:
    """Stands in for the payments webhook: records requests, answers what it is told."""

    answers: list[int | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"outcome": "recorded"})


@dataclass
class Sandbox:
    app: FastAPI
    client: httpx.AsyncClient
    receiver: Receiver
    settings: SandboxGatewaySettings


def settings_of(**changes: Any) -> SandboxGatewaySettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "webhook_secrets": {TENANT: SECRET},
        "webhook_url_template": "http://payments.test/v1/webhooks/gateway/{tenant_id}",
        "public_url": "http://gateway.test",
        "delivery_backoff_seconds": 0,
        **changes,
    }
    return SandboxGatewaySettings(**values)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with sandbox_with(settings_of()) as s:
        yield s


class sandbox_with:
    def __init__(self, settings: SandboxGatewaySettings) -> None:
        self.settings = settings
        self.receiver = Receiver()
        self.outgoing = httpx.AsyncClient(transport=httpx.MockTransport(self.receiver))
        self.app = create_app(settings, webhook_client=self.outgoing)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gateway.test"
        )

    async def __aenter__(self) -> Sandbox:
        return Sandbox(self.app, self.client, self.receiver, self.settings)

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.outgoing.aclose()


def session_body(**changes: Any) -> dict[str, Any]:
    return {
        "tenant_id": TENANT,
        "customer_id": "C-1",
        "amount_minor": 123_450,
        "currency": "EUR",
        "invoice_ids": [str(i) for i in INVOICES],
        "invoice_numbers": ["INV-2026-000001", "INV-2026-000002"],
        "description": "Invoices INV-2026-000001, INV-2026-000002",
        "success_url": "https://portal.test/pay/done?lang=de",
        "cancel_url": "https://portal.test/invoices",
        "checkout_id": str(uuid.uuid4()),
        **changes,
    }


async def open_session(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    r = await client.post("/v1/checkout/sessions", json=session_body(**changes), headers=AUTH)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def pay(client: httpx.AsyncClient, session_id: str, **card: str) -> httpx.Response:
    return await client.post(f"/checkout/{session_id}", data={**GOOD_CARD, **card})


async def status_of(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/checkout/sessions/{session_id}", headers=AUTH)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


# ---- sessions ----------------------------------------------------------------------------------


async def test_a_session_is_created_open_with_its_hosted_page_url(sandbox: Sandbox) -> None:
    created = await open_session(sandbox.client)
    assert created["id"].startswith("cs_test_") and created["status"] == "open"
    assert created["url"] == f"http://gateway.test/checkout/{created['id']}"
    seen = await status_of(sandbox.client, created["id"])
    assert (seen["status"], seen["payment_intent"], seen["webhook"]) == ("open", None, None)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}]
)
async def test_the_api_needs_the_api_key(sandbox: Sandbox, headers: dict[str, str]) -> None:
    r = await sandbox.client.post("/v1/checkout/sessions", json=session_body(), headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    created = await open_session(sandbox.client)
    for method, path in (
        ("GET", f"/v1/checkout/sessions/{created['id']}"),
        ("POST", f"/v1/checkout/sessions/{created['id']}/redeliver"),
    ):
        assert (await sandbox.client.request(method, path, headers=headers)).status_code == 401


@pytest.mark.parametrize(
    "changes",
    [
        {"unexpected": 1},
        {"amount_minor": 0},
        {"currency": "eur"},
        {"currency": "XYZ"},
        {"invoice_ids": ["not-a-uuid"]},
        {"success_url": "javascript:alert(1)"},
        {"cancel_url": "/relative"},
        {"checkout_id": "has space"},
        {"customer_id": ""},
    ],
)
async def test_invalid_bodies_are_422(sandbox: Sandbox, changes: dict[str, Any]) -> None:
    r = await sandbox.client.post(
        "/v1/checkout/sessions", json=session_body(**changes), headers=AUTH
    )
    assert r.status_code == 422, r.text


async def test_a_tenant_needs_a_webhook_secret_or_the_default(sandbox: Sandbox) -> None:
    r = await sandbox.client.post(
        "/v1/checkout/sessions", json=session_body(tenant_id="other"), headers=AUTH
    )
    assert r.status_code == 422 and "webhook secret" in r.text
    async with sandbox_with(settings_of(default_webhook_secret="whsec_default")) as s:
        assert (await open_session(s.client, tenant_id="other"))["status"] == "open"


async def test_creating_again_with_the_same_checkout_id_returns_the_same_session(
    sandbox: Sandbox,
) -> None:
    body = session_body()
    first = await sandbox.client.post("/v1/checkout/sessions", json=body, headers=AUTH)
    again = await sandbox.client.post("/v1/checkout/sessions", json=body, headers=AUTH)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = await sandbox.client.post(
        "/v1/checkout/sessions", json={**body, "amount_minor": 1}, headers=AUTH
    )
    assert other.status_code == 409


async def test_unknown_sessions_are_404(sandbox: Sandbox) -> None:
    assert (
        await sandbox.client.get("/v1/checkout/sessions/cs_nope", headers=AUTH)
    ).status_code == 404
    assert (await sandbox.client.get("/checkout/cs_nope")).status_code == 404
    assert (await pay(sandbox.client, "cs_nope")).status_code == 404


# ---- the hosted page ----------------------------------------------------------------------------


async def test_the_hosted_page_is_an_accessible_form_with_amount_and_description(
    sandbox: Sandbox,
) -> None:
    created = await open_session(sandbox.client, description="Q1 <b>goods</b> & services")
    r = await sandbox.client.get(f"/checkout/{created['id']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    for input_id in ("card-number", "card-expiry", "card-cvc", "card-name"):
        assert f'<label for="{input_id}">' in page and f'id="{input_id}"' in page
    assert 'id="pay-button"' in page and "Pay 1,234.50 EUR" in page
    assert 'name="viewport"' in page and '<html lang="en">' in page
    assert "sandbox" in page.lower() and "test mode" in page.lower()
    assert "Q1 &lt;b&gt;goods&lt;/b&gt; &amp; services" in page  # escaped, never markup
    assert 'href="https://portal.test/invoices"' in page
    assert 'autocomplete="cc-number"' in page
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_amounts_are_shown_with_the_currencys_decimals(sandbox: Sandbox) -> None:
    yen = await open_session(sandbox.client, currency="JPY", amount_minor=5000)
    assert "5,000 JPY" in (await sandbox.client.get(f"/checkout/{yen['id']}")).text
    dinar = await open_session(sandbox.client, currency="KWD", amount_minor=1_234)
    assert "1.234 KWD" in (await sandbox.client.get(f"/checkout/{dinar['id']}")).text


# ---- card checks --------------------------------------------------------------------------------


def test_luhn() -> None:
    assert _luhn_valid("4242424242424242") and _luhn_valid("4000000000000002")
    assert not _luhn_valid("4242424242424241")


async def test_a_declined_card_is_402_and_the_session_stays_open(sandbox: Sandbox) -> None:
    created = await open_session(sandbox.client)
    r = await pay(sandbox.client, created["id"], card_number="4000 0000 0000 0002", card_cvc="987")
    assert r.status_code == 402
    assert 'role="alert"' in r.text and "declined" in r.text
    assert "4000 0000 0000 0002" not in r.text and "4000000000000002" not in r.text
    assert "987" not in r.text  # nor the CVC
    assert 'value="Ada Lovelace"' in r.text  # the name is kept for the next try
    assert (await status_of(sandbox.client, created["id"]))["status"] == "open"
    assert sandbox.receiver.requests == []


@pytest.mark.parametrize(
    ("card", "field_id"),
    [
        ({"card_number": "4242 4242 4242 4241"}, "card-number"),  # fails Luhn
        ({"card_number": "4242"}, "card-number"),
        ({"card_expiry": "01/20"}, "card-expiry"),  # expired
        ({"card_expiry": "13/40"}, "card-expiry"),
        ({"card_expiry": "1240"}, "card-expiry"),
        ({"card_cvc": "12"}, "card-cvc"),
        ({"card_name": "  "}, "card-name"),
    ],
)
async def test_invalid_card_details_are_422_and_point_at_the_field(
    sandbox: Sandbox, card: dict[str, str], field_id: str
) -> None:
    created = await open_session(sandbox.client)
    r = await pay(sandbox.client, created["id"], **card)
    assert r.status_code == 422
    assert re.search(rf'id="{field_id}"[^>]*aria-invalid="true"', r.text)
    assert (await status_of(sandbox.client, created["id"]))["status"] == "open"
    assert sandbox.receiver.requests == []


async def test_a_luhn_valid_card_that_is_no_test_card_is_declined(sandbox: Sandbox) -> None:
    created = await open_session(sandbox.client)
    r = await pay(sandbox.client, created["id"], card_number="4111 1111 1111 1111")
    assert r.status_code == 402 and "test card" in r.text


async def test_too_many_declines_fail_the_session() -> None:
    async with sandbox_with(settings_of(max_declines=2)) as s:
        created = await open_session(s.client)
        first = await pay(s.client, created["id"], card_number="4000000000000002")
        second = await pay(s.client, created["id"], card_number="4000000000000002")
        assert (first.status_code, second.status_code) == (402, 410)
        assert (await status_of(s.client, created["id"]))["status"] == "failed"
        assert (await pay(s.client, created["id"])).status_code == 410


async def test_an_expired_session_cannot_be_paid() -> None:
    async with sandbox_with(settings_of(session_ttl_seconds=1)) as s:
        created = await open_session(s.client)
        await asyncio.sleep(1.05)
        assert (await s.client.get(f"/checkout/{created['id']}")).status_code == 410
        assert (await pay(s.client, created["id"])).status_code == 410
        assert (await status_of(s.client, created["id"]))["status"] == "expired"
        assert s.receiver.requests == []


# ---- payment and webhook ------------------------------------------------------------------------


async def test_a_payment_posts_a_signed_webhook_the_payments_service_understands(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await open_session(sandbox.client)
    r = await pay(sandbox.client, created["id"])
    assert r.status_code == 303
    location = urlsplit(r.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "portal.test",
        "/pay/done",
    )
    query = parse_qs(location.query)
    assert query["lang"] == ["de"] and query["session"] == [created["id"]]
    assert query["checkout"] == [created["checkout_id"]]

    [request] = sandbox.receiver.requests
    assert str(request.url) == f"http://payments.test/v1/webhooks/gateway/{TENANT}"
    body = request.content
    verify_signature(request.headers[SIGNATURE_HEADER], body, [SECRET], now=int(time.time()))
    action = interpret(parse_event(body))
    assert isinstance(action, GatewayPayment)
    assert action.customer_id == "C-1"
    assert action.amount == Money.of_minor(123_450, "EUR")
    assert action.invoice_ids == tuple(INVOICES)
    assert action.checkout_id == created["checkout_id"]
    assert (action.method, action.card_brand, action.last4) == ("card", "visa", "4242")
    assert action.reference.startswith("INV-2026-000001 INV-2026-000002")
    assert PAN_RE.search(body.decode()) is None and b"4242424242424242" not in body
    assert "4242424242424242" not in caplog.text and PAN_RE.search(caplog.text) is None

    seen = await status_of(sandbox.client, created["id"])
    assert seen["status"] == "complete"
    assert seen["payment_intent"] == action.gateway_ref and action.gateway_ref.startswith("pi_")
    assert seen["webhook"]["delivered"] is True and seen["webhook"]["attempts"] == 1
    assert PAN_RE.search(str(seen)) is None


async def test_a_paid_session_redirects_again_and_is_not_charged_twice(sandbox: Sandbox) -> None:
    created = await open_session(sandbox.client)
    first, second = await asyncio.gather(
        pay(sandbox.client, created["id"]), pay(sandbox.client, created["id"])
    )
    assert (first.status_code, second.status_code) == (303, 303)
    assert first.headers["location"] == second.headers["location"]
    page = await sandbox.client.get(f"/checkout/{created['id']}")
    assert page.status_code == 303
    assert len(sandbox.receiver.requests) == 1


async def test_delivery_is_retried_on_5xx_409_and_network_errors(sandbox: Sandbox) -> None:
    sandbox.receiver.answers = [503, 409, httpx.ConnectError("refused"), 200]
    created = await open_session(sandbox.client)
    assert (await pay(sandbox.client, created["id"])).status_code == 303
    assert len(sandbox.receiver.requests) == 4
    event_ids = {parse_event(r.content).id for r in sandbox.receiver.requests}
    assert len(event_ids) == 1  # one event, re-signed for each attempt
    webhook = (await status_of(sandbox.client, created["id"]))["webhook"]
    assert webhook["delivered"] is True and webhook["attempts"] == 4


async def test_a_4xx_is_not_retried_in_the_request(sandbox: Sandbox) -> None:
    sandbox.receiver.answers = [422]
    created = await open_session(sandbox.client)
    assert (await pay(sandbox.client, created["id"])).status_code == 303
    webhook = (await status_of(sandbox.client, created["id"]))["webhook"]
    assert (webhook["delivered"], webhook["attempts"], webhook["last_error"]) == (
        False,
        1,
        "HTTP 422",
    )


async def test_when_delivery_fails_the_payment_stands_and_can_be_redelivered(
    sandbox: Sandbox,
) -> None:
    sandbox.receiver.answers = [httpx.ConnectError("down")] * sandbox.settings.delivery_attempts
    created = await open_session(sandbox.client)
    assert (await pay(sandbox.client, created["id"])).status_code == 303
    seen = await status_of(sandbox.client, created["id"])
    assert seen["status"] == "complete" and seen["webhook"]["delivered"] is False
    assert seen["webhook"]["attempts"] == sandbox.settings.delivery_attempts
    r = await sandbox.client.post(f"/v1/checkout/sessions/{created['id']}/redeliver", headers=AUTH)
    assert r.status_code == 200 and r.json()["webhook"]["delivered"] is True
    first, last = sandbox.receiver.requests[0], sandbox.receiver.requests[-1]
    assert parse_event(first.content).id == parse_event(last.content).id


async def test_redelivering_an_unpaid_session_is_409(sandbox: Sandbox) -> None:
    created = await open_session(sandbox.client)
    r = await sandbox.client.post(f"/v1/checkout/sessions/{created['id']}/redeliver", headers=AUTH)
    assert r.status_code == 409


async def test_the_background_task_redelivers_what_failed() -> None:
    settings = settings_of(delivery_attempts=1, redelivery_interval_seconds=0.05)
    async with sandbox_with(settings) as s:
        async with s.app.router.lifespan_context(s.app):
            s.receiver.answers = [503]
            created = await open_session(s.client)
            assert (await pay(s.client, created["id"])).status_code == 303
            assert (await status_of(s.client, created["id"]))["webhook"]["delivered"] is False
            await wait_until(lambda: len(s.receiver.requests) >= 2, within=5.0)
            assert (await status_of(s.client, created["id"]))["webhook"]["delivered"] is True


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://p.test/done", "https://p.test/done?checkout=c&session=s"),
        ("https://p.test/done?a=1&b=", "https://p.test/done?a=1&b=&checkout=c&session=s"),
        ("https://p.test/done?a=1#top", "https://p.test/done?a=1&checkout=c&session=s#top"),
    ],
)
def test_the_success_url_keeps_its_query_and_fragment(url: str, expected: str) -> None:
    assert _with_query(url, checkout="c", session="s") == expected
