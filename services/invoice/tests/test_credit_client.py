"""The credit-check client: answers, refusals, and every way the credit service can be away."""

from __future__ import annotations

import httpx
import pytest

from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.tests.credit_stub import credit_stub
from shared.money import Money

EUR_100 = Money.of_minor(10_000, "EUR")


def client_for(app: object) -> CreditCheckClient:
    return CreditCheckClient("http://credit", transport=httpx.ASGITransport(app=app))  # type: ignore[arg-type]


async def check(client: CreditCheckClient, customer: str = "c1", amount: Money = EUR_100):  # type: ignore[no-untyped-def]
    return await client.check(
        customer_id=customer,
        amount=amount,
        reference="invoice:1",
        bearer_token="tok",
        correlation_id="cid-1",
    )


async def test_passed_and_failed_answers_carry_id_and_reasons() -> None:
    app = credit_stub({"c1": 50_000, "c2": 5_000})
    client = client_for(app)
    passed = await check(client)
    assert (passed.outcome, passed.check_id, passed.reasons) == ("passed", "chk-1", [])
    over = await check(client, "c2")
    assert over.outcome == "failed" and over.reasons[0]["code"] == "over_limit"
    assert over.reason_text == "over the limit by 5000"
    hold = await check(client, "c3")
    assert hold.reasons[0]["code"] == "on_hold"
    sent = app.state.calls[0]
    assert sent["body"] == {
        "customer_id": "c1",
        "amount": {"amount": 10000, "currency": "EUR"},
        "reference": "invoice:1",
    }
    assert sent["headers"]["authorization"] == "Bearer tok"
    assert "idempotency-key" not in sent["headers"]  # idempotent by reference instead
    assert sent["headers"]["x-correlation-id"] == "cid-1"


@pytest.mark.parametrize("status", [500, 503, 404, 429])
async def test_server_errors_are_unavailable(status: int) -> None:
    assert (await check(client_for(credit_stub({}, fail_with=status)))).outcome == "unavailable"


async def test_refused_connection_and_garbage_are_unavailable() -> None:
    closed = CreditCheckClient("http://127.0.0.1:9", timeout_seconds=0.5)
    assert (await check(closed)).outcome == "unavailable"

    async def garbage(scope, receive, send):  # type: ignore[no-untyped-def]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"outcome": "maybe"}'})

    assert (await check(client_for(garbage))).outcome == "unavailable"


async def test_a_broken_connection_is_retried_once() -> None:
    """A keep-alive connection the server closed as it was reused fails with ReadError; the
    check is idempotent per reference, so it is sent again (once)."""
    calls = 0
    answer = {"check_id": "chk-1", "outcome": "passed", "reasons": []}

    def flaky(failures: int) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            if calls <= failures:
                raise httpx.ReadError("connection closed by peer", request=request)
            return httpx.Response(200, json=answer)

        return httpx.MockTransport(handle)

    once = CreditCheckClient("http://credit", transport=flaky(1))
    assert (await check(once)).outcome == "passed"
    assert calls == 2
    calls = 0
    twice = CreditCheckClient("http://credit", transport=flaky(2))
    assert (await check(twice)).outcome == "unavailable"
    assert calls == 2
