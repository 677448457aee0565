"""The portal's gateway adapter against the sandbox in-process, and its error mapping."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.portal.gateway.adapter import (
    CheckoutRequest,
    CheckoutSession,
    PaymentGateway,
    SandboxGateway,
)
from services.portal.gateway.sandbox import SandboxGatewaySettings, create_app
from shared.errors import NotFound, ServiceUnavailable, StateConflict, ValidationFailed

API_KEY = "sk_test_adapter"


def checkout(**changes: object) -> CheckoutRequest:
    values: dict[str, object] = {
        "checkout_id": uuid.uuid4(),
        "tenant_id": "t1",
        "customer_id": "C-1",
        "amount_minor": 5_000,
        "currency": "EUR",
        "invoice_ids": [uuid.uuid4()],
        "invoice_numbers": ["INV-1"],
        "description": "Invoice INV-1",
        "success_url": "https://portal.test/done",
        "cancel_url": "https://portal.test/cancel",
        **changes,
    }
    return CheckoutRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
async def gateway() -> AsyncIterator[SandboxGateway]:
    settings = SandboxGatewaySettings(
        api_key=API_KEY,
        webhook_secrets={"t1": "whsec_adapter"},
        public_url="http://sandbox.test",
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(ok)) as outgoing:
        app = create_app(settings, webhook_client=outgoing)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            yield SandboxGateway("http://sandbox.test/", API_KEY, client)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


async def test_a_checkout_is_created_and_its_status_read(gateway: SandboxGateway) -> None:
    port: PaymentGateway = gateway  # the sandbox adapter satisfies the port
    session = await port.create_checkout(checkout())
    assert isinstance(session, CheckoutSession) and session.session_id.startswith("cs_test_")
    assert session.redirect_url == f"http://sandbox.test/checkout/{session.session_id}"
    assert await port.session_status(session.session_id) == "open"


async def test_a_retried_create_returns_the_same_session(gateway: SandboxGateway) -> None:
    request = checkout()
    first = await gateway.create_checkout(request)
    assert await gateway.create_checkout(request) == first


async def test_gateway_answers_keep_their_meaning(gateway: SandboxGateway) -> None:
    with pytest.raises(NotFound):
        await gateway.session_status("cs_test_unknown")
    with pytest.raises(NotFound):
        await gateway.session_status("../v1/checkout/sessions")  # never another path
    request = checkout()
    await gateway.create_checkout(request)
    with pytest.raises(StateConflict):
        await gateway.create_checkout(checkout(checkout_id=request.checkout_id, amount_minor=1))
    with pytest.raises(ValidationFailed):
        await gateway.create_checkout(checkout(currency="XYZ"))


def _adapter(handler: Callable[[httpx.Request], httpx.Response]) -> SandboxGateway:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SandboxGateway("http://sandbox.test", API_KEY, client)


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=request)


@pytest.mark.parametrize(
    "handler",
    [
        _refuse,
        _timeout,
        lambda r: httpx.Response(503, text="maintenance"),
        lambda r: httpx.Response(500, json={"error": {"message": "boom"}}),
        lambda r: httpx.Response(401, json={"error": {"message": "bad key"}}),
        lambda r: httpx.Response(200, text="not json"),
        lambda r: httpx.Response(200, json={"status": "weird"}),
    ],
)
async def test_an_unreachable_or_failing_gateway_is_service_unavailable(
    handler: Callable[[httpx.Request], httpx.Response],
) -> None:
    adapter = _adapter(handler)
    with pytest.raises(ServiceUnavailable):
        await adapter.create_checkout(checkout())
    with pytest.raises(ServiceUnavailable):
        await adapter.session_status("cs_test_1")


async def test_the_api_key_is_sent_as_a_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "complete"})

    assert await _adapter(record).session_status("cs_test_1") == "complete"
    assert seen[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert str(seen[0].url) == "http://sandbox.test/v1/checkout/sessions/cs_test_1"


async def test_an_adapter_without_a_client_owns_and_closes_its_own() -> None:
    adapter = SandboxGateway("http://127.0.0.1:9", API_KEY)
    with pytest.raises(ServiceUnavailable):
        await adapter.session_status("cs_test_1")
    await adapter.aclose()
