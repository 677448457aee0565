"""How the portal talks to a payment gateway: create a hosted checkout, ask how it went.

Card data never touches Ledgerline: the portal creates a checkout session, sends the customer's
browser to the gateway's hosted page (``CheckoutSession.redirect_url``), and the gateway tells
the payments service about the payment through its signed webhook. The metadata the gateway
sends back (customer id, invoice ids, checkout id) lets the payments service allocate the
payment to exactly the invoices the customer chose.

:class:`PaymentGateway` is the port. :class:`SandboxGateway` implements it over HTTP against the
local sandbox (``services.portal.gateway.sandbox``). A real Stripe adapter would be another class
with the same Protocol (``stripe.checkout.Session.create`` with ``payment_intent_data.metadata``
set to the same keys, and ``Session.retrieve`` for the status); note that Stripe caps metadata
values at 500 characters, so about 13 invoice UUIDs per checkout.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from shared.errors import NotFound, ServiceUnavailable, StateConflict, ValidationFailed

__all__ = ["CheckoutRequest", "CheckoutSession", "PaymentGateway", "SandboxGateway"]

#: What ``session_status`` answers: the gateway's view of the checkout.
SESSION_STATUSES = frozenset({"open", "complete", "expired", "failed"})


@dataclass(frozen=True)
class CheckoutRequest:
    """One checkout: ``amount_minor`` in ``currency`` (ISO 4217) for ``invoice_ids`` (in the order
    they are to be paid); the browser returns to ``success_url`` or ``cancel_url``."""

    checkout_id: uuid.UUID
    tenant_id: str
    customer_id: str
    amount_minor: int
    currency: str
    invoice_ids: list[uuid.UUID]
    invoice_numbers: list[str]
    description: str
    success_url: str
    cancel_url: str


@dataclass(frozen=True)
class CheckoutSession:
    """The gateway's session id and the hosted page to send the customer's browser to."""

    session_id: str
    redirect_url: str


class PaymentGateway(Protocol):
    async def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """Create a hosted checkout; raises ``ServiceUnavailable`` when the gateway is down."""
        ...

    async def session_status(self, session_id: str) -> str:
        """``open``, ``complete``, ``expired`` or ``failed``."""
        ...


class SandboxGateway:
    """:class:`PaymentGateway` over the sandbox's HTTP API.

    Network errors, timeouts and 5xx become ``ServiceUnavailable`` (503 to the portal's caller);
    a rejected API key too, since the customer can do nothing about it. 404, 409 and 422 keep
    their meaning (``NotFound``, ``StateConflict``, ``ValidationFailed``).
    """

    def __init__(
        self, base_url: str, api_key: str, client: httpx.AsyncClient | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0))

    async def aclose(self) -> None:
        """Close the HTTP client if this adapter created it."""
        if self._owns_client:
            await self._client.aclose()

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        body = {
            "tenant_id": request.tenant_id,
            "customer_id": request.customer_id,
            "amount_minor": request.amount_minor,
            "currency": request.currency,
            "invoice_ids": [str(i) for i in request.invoice_ids],
            "invoice_numbers": list(request.invoice_numbers),
            "description": request.description,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "checkout_id": str(request.checkout_id),
        }
        data = await self._call("POST", "/v1/checkout/sessions", json=body)
        session_id, url = data.get("id"), data.get("url")
        if not isinstance(session_id, str) or not isinstance(url, str):
            raise ServiceUnavailable("the payment gateway answered without a session")
        return CheckoutSession(session_id=session_id, redirect_url=url)

    async def session_status(self, session_id: str) -> str:
        data = await self._call("GET", f"/v1/checkout/sessions/{_segment(session_id)}")
        status = data.get("status")
        if status not in SESSION_STATUSES:
            raise ServiceUnavailable("the payment gateway answered an unknown session status")
        assert isinstance(status, str)
        return status

    async def _call(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        try:
            response = await self._client.request(
                method, self._base_url + path, json=json, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "the payment gateway cannot be reached", {"reason": type(exc).__name__}
            ) from exc
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise ServiceUnavailable(
                "the payment gateway is not available", {"status": response.status_code}
            )
        message = _message(response)
        if response.status_code == 404:
            raise NotFound(message)
        if response.status_code == 409:
            raise StateConflict(message)
        if response.status_code >= 400:
            raise ValidationFailed(message, {"status": response.status_code})
        try:
            data = response.json()
        except ValueError as exc:
            raise ServiceUnavailable("the payment gateway answered no JSON") from exc
        if not isinstance(data, dict):
            raise ServiceUnavailable("the payment gateway answered no JSON object")
        return data


def _segment(value: str) -> str:
    """A path segment: session ids are the gateway's, but never let one change the path."""
    return quote(value, safe="") or "-"


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        message = None
    return str(message or f"the payment gateway answered {response.status_code}")
