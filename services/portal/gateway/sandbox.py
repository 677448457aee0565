"""A local sandbox payment gateway that stands in for Stripe Checkout.

The portal creates a checkout session over the API, sends the customer's browser to the hosted
payment page, and the sandbox, once the (test) card is accepted, calls the payments service's
signed webhook exactly as Stripe would (``payment_intent.succeeded``, HMAC-SHA256 signature in
``Ledgerline-Signature``). So portal -> gateway -> webhook -> PaymentReceived -> allocation runs
for real on a developer machine, with no card data ever reaching Ledgerline.

Deliberate limits, because this is a sandbox:

* Sessions live in memory: a restart forgets every session, open or not, and any webhook still
  waiting for redelivery.
* Only test cards are accepted (as in Stripe's test mode): 4242 4242 4242 4242 and
  5555 5555 5555 4444 succeed, 4000 0000 0000 0002 and 4000 0000 0000 9995 are declined.
* The full card number and CVC are never stored, logged, echoed back or sent anywhere: they
  exist only in the request handler's locals while the form is checked. The app is built
  without ``shared.web`` on purpose, so that no request-logging middleware sees the form.

Run it with ``uvicorn --factory services.portal.gateway.sandbox:app`` (or ``python -m
services.portal.gateway.sandbox``); settings come from ``LEDGERLINE_SANDBOX_GATEWAY_*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import re
import secrets
import string
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.payments.domain.webhook import SIGNATURE_HEADER, sign
from shared.money import UnknownCurrency, currency_exponent

__all__ = [
    "CreateSessionBody",
    "SandboxGatewaySettings",
    "create_app",
]

log = logging.getLogger("ledgerline.sandbox_gateway")

SessionStatus = Literal["open", "complete", "expired", "failed"]

#: Test cards, as in Stripe's test mode: number -> (brand, decline code or None).
TEST_CARDS: Final[dict[str, tuple[str, str | None]]] = {
    "4242424242424242": ("visa", None),
    "5555555555554444": ("mastercard", None),
    "4000000000000002": ("visa", "card_declined"),
    "4000000000009995": ("visa", "insufficient_funds"),
}
_DECLINE_MESSAGES: Final = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "test_mode": "Your card was declined: this is a sandbox, use a test card such as "
    "4242 4242 4242 4242.",
}
_MAX_FORM_BYTES: Final = 16_384
_ID_ALPHABET: Final = string.ascii_letters + string.digits


class SandboxGatewaySettings(BaseSettings):
    """Where the sandbox listens, how it authenticates the portal, and where and how it signs
    the webhooks it sends (one secret per tenant, as the payments service expects)."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_SANDBOX_GATEWAY_", env_nested_delimiter="__", extra="ignore"
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8107, ge=1, le=65535)
    # The portal's API key (Authorization: Bearer ...). A development default, like Stripe's
    # published test keys; set a real one anywhere the sandbox is reachable by others.
    api_key: SecretStr = SecretStr("sk_test_ledgerline_sandbox")
    webhook_url_template: str = "http://127.0.0.1:8102/v1/webhooks/gateway/{tenant_id}"
    # JSON, e.g. LEDGERLINE_SANDBOX_GATEWAY_WEBHOOK_SECRETS='{"acme": "whsec_..."}'; must equal
    # one of LEDGERLINE_PAYMENTS_WEBHOOK_SECRETS[tenant].
    webhook_secrets: dict[str, SecretStr] = {}
    default_webhook_secret: SecretStr | None = None  # for tenants not in webhook_secrets
    public_url: str = "http://127.0.0.1:8107"  # how browsers reach the hosted page
    session_ttl_seconds: int = Field(default=86_400, ge=1)  # Stripe: 24 hours
    max_declines: int = Field(default=5, ge=1)  # then the session fails
    # In-request delivery: attempts, and the first backoff (doubled after each failure).
    delivery_attempts: int = Field(default=5, ge=1, le=20)
    delivery_backoff_seconds: float = Field(default=0.2, ge=0)
    delivery_timeout_seconds: float = Field(default=10.0, gt=0)
    # Background redelivery of webhooks that still failed: first wait, doubling up to the max,
    # for up to give_up_after (Stripe retries for three days).
    redelivery_interval_seconds: float = Field(default=30.0, gt=0)
    redelivery_max_interval_seconds: float = Field(default=3600.0, gt=0)
    redelivery_give_up_after_seconds: float = Field(default=3 * 86_400.0, gt=0)

    def secret_for(self, tenant_id: str) -> str | None:
        secret = self.webhook_secrets.get(tenant_id, self.default_webhook_secret)
        return (
            secret.get_secret_value() if secret is not None and secret.get_secret_value() else None
        )

    def webhook_url(self, tenant_id: str) -> str:
        return self.webhook_url_template.format(tenant_id=quote(tenant_id, safe=""))


# ---------------------------------------------------------------------------- API bodies

_CUSTOMER_ID_RE: Final = r"^[A-Za-z0-9._:-]{1,64}$"  # the payments API's CustomerId
_TENANT_RE: Final = r"^[A-Za-z0-9._-]{1,64}$"
_CHECKOUT_ID_RE: Final = r"^[A-Za-z0-9._:-]{1,100}$"  # what the payments webhook keeps
InvoiceNumber = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
Url = Annotated[str, Field(min_length=1, max_length=2000)]


class CreateSessionBody(BaseModel):
    """``POST /v1/checkout/sessions``: what the customer pays, for which invoices, and where the
    browser goes afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: Annotated[str, Field(pattern=_TENANT_RE)]
    customer_id: Annotated[str, Field(pattern=_CUSTOMER_ID_RE)]
    amount_minor: Annotated[int, Field(gt=0, le=10**15)]
    currency: str
    invoice_ids: Annotated[list[uuid.UUID], Field(max_length=200)] = []
    invoice_numbers: Annotated[list[InvoiceNumber], Field(max_length=200)] = []
    description: Annotated[str, Field(max_length=500)] = ""
    success_url: Url
    cancel_url: Url
    checkout_id: Annotated[str, Field(pattern=_CHECKOUT_ID_RE)]

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        try:
            currency_exponent(value)
        except UnknownCurrency as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("success_url", "cancel_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value


# ---------------------------------------------------------------------------- sessions


@dataclass
class _Delivery:
    """The webhook of a completed session: the event (never card data) and how sending went."""

    event: dict[str, Any]
    delivered: bool = False
    attempts: int = 0
    last_error: str | None = None
    first_failed_at: float | None = None
    next_attempt_at: float | None = None  # background redelivery
    backoff: float = 0.0


@dataclass
class _Session:
    id: str
    body: CreateSessionBody
    created_at: float
    expires_at: float
    state: SessionStatus = "open"
    declines: int = 0
    payment_intent: str | None = None
    delivery: _Delivery | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def status(self, now: float) -> SessionStatus:
        if self.state == "open" and now >= self.expires_at:
            self.state = "expired"
        return self.state


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


class _Store:
    """Sessions by id, and by (tenant, checkout id) so a retried create returns the same one."""

    def __init__(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self.by_checkout: dict[tuple[str, str], str] = {}


# ---------------------------------------------------------------------------- card checks


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


_EXPIRY_RE: Final = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$")


@dataclass(frozen=True)
class _CardCheck:
    """The outcome of checking the form: what may be kept (brand, last four) or the error."""

    brand: str | None = None
    last4: str | None = None
    error: str | None = None
    field: str | None = None  # the input the error is about
    status_code: int = 200


def _check_card(form: dict[str, str], now: datetime) -> _CardCheck:
    """Validate the form. The number is read here and nowhere else; only brand and last four
    leave this function."""
    number = re.sub(r"[\s-]", "", form.get("card_number", ""))
    if not re.fullmatch(r"\d{12,19}", number) or not _luhn_valid(number):
        return _CardCheck(
            error="Your card number is invalid.", field="card-number", status_code=422
        )
    expiry = _EXPIRY_RE.match(form.get("card_expiry", ""))
    if expiry is None or not 1 <= int(expiry.group(1)) <= 12:
        return _CardCheck(
            error="Enter the expiry date as MM/YY.", field="card-expiry", status_code=422
        )
    month, year = int(expiry.group(1)), int(expiry.group(2))
    year = year + 2000 if year < 100 else year
    if (year, month) < (now.year, now.month):
        return _CardCheck(error="Your card has expired.", field="card-expiry", status_code=422)
    if not re.fullmatch(r"\d{3,4}", form.get("card_cvc", "").strip()):
        return _CardCheck(
            error="Your card's security code is invalid.", field="card-cvc", status_code=422
        )
    name = form.get("card_name", "").strip()
    if not name or len(name) > 100:
        return _CardCheck(error="Enter the name on the card.", field="card-name", status_code=422)
    brand, decline = TEST_CARDS.get(number, ("unknown", "test_mode"))
    if decline is not None:
        return _CardCheck(error=_DECLINE_MESSAGES[decline], field="card-number", status_code=402)
    return _CardCheck(brand=brand, last4=number[-4:])


# ---------------------------------------------------------------------------- the event


def _event(session: _Session, payment_intent: str, brand: str, last4: str) -> dict[str, Any]:
    """A Stripe-style ``payment_intent.succeeded`` event in the shape
    ``services.payments.domain.webhook`` parses; metadata values are strings, as in Stripe."""
    body = session.body
    metadata = {"customer_id": body.customer_id, "checkout_id": body.checkout_id}
    if body.invoice_numbers:
        metadata["invoice_number"] = " ".join(body.invoice_numbers)
    if body.invoice_ids:
        metadata["invoice_ids"] = ",".join(str(i) for i in body.invoice_ids)
    payment: dict[str, Any] = {
        "id": payment_intent,
        "object": "payment_intent",
        "amount": body.amount_minor,
        "currency": body.currency.lower(),  # Stripe sends lower-case codes
        "status": "succeeded",
        "metadata": metadata,
        "payment_method_details": {"type": "card", "card": {"brand": brand, "last4": last4}},
    }
    if body.description:
        payment["description"] = body.description
    return {
        "id": _new_id("evt_"),
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": payment},
    }


# ---------------------------------------------------------------------------- HTML

_CSS: Final = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1a1a1a;background:#f4f5f7}
main{max-width:28rem;margin:0 auto;padding:1rem}
.sandbox{background:#fff4ce;border:2px solid #8a6d00;border-radius:.5rem;padding:.5rem .75rem;
 margin:0 0 1rem;font-weight:600}
.card{background:#fff;border-radius:.75rem;padding:1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.25rem;margin:0 0 .25rem}
.amount{font-size:2rem;font-weight:700;margin:.25rem 0}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input{width:100%;font:inherit;padding:.6rem .7rem;border:1px solid #6b6f76;border-radius:.4rem}
input:focus,button:focus,a:focus{outline:3px solid #1d4ed8;outline-offset:2px}
input[aria-invalid=true]{border:2px solid #b00020}
.row{display:flex;gap:.75rem}.row>div{flex:1}
button{width:100%;margin-top:1.25rem;padding:.8rem;font:inherit;font-weight:700;color:#fff;
 background:#1d4ed8;border:0;border-radius:.4rem;cursor:pointer}
.error{color:#b00020;background:#fde8eb;border-radius:.4rem;padding:.5rem .75rem;margin:.75rem 0}
.hint{color:#4a4f57;font-size:.9rem}
.cancel{display:block;text-align:center;margin-top:1rem;color:#1d4ed8}
@media (max-width:22rem){.row{flex-direction:column;gap:0}}
"""

_HTML_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # No form-action: browsers apply it to the redirect to the portal's success URL.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
}


def _money_text(amount_minor: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    return f"{Decimal(amount_minor).scaleb(-exponent):,.{exponent}f} {currency}"


def _page(title: str, content: str, status_code: int) -> HTMLResponse:
    document = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<p class="sandbox" role="note">Sandbox gateway &mdash; test mode. No real card is charged and
no real money moves. Use the test card 4242 4242 4242 4242.</p>
{content}
</main>
</body>
</html>"""
    return HTMLResponse(document, status_code=status_code, headers=_HTML_HEADERS)


def _input(
    name: str,
    input_id: str,
    label: str,
    error: _CardCheck | None,
    *,
    value: str = "",
    autocomplete: str,
    inputmode: str | None = None,
    placeholder: str | None = None,
    maxlength: int,
    hint: str | None = None,
) -> str:
    invalid = error is not None and error.field == input_id
    described = [f"{input_id}-hint"] if hint else []
    if invalid:
        described.append("form-error")
    attributes = [
        f'id="{input_id}"',
        f'name="{name}"',
        'type="text"',
        f'autocomplete="{autocomplete}"',
        f'maxlength="{maxlength}"',
        "required",
        f'value="{html.escape(value)}"',
    ]
    if inputmode:
        attributes.append(f'inputmode="{inputmode}"')
    if placeholder:
        attributes.append(f'placeholder="{html.escape(placeholder)}"')
    if described:
        attributes.append(f'aria-describedby="{" ".join(described)}"')
    if invalid:
        attributes.append('aria-invalid="true" autofocus')
    hint_html = (
        f'<span class="hint" id="{input_id}-hint">{html.escape(hint)}</span>' if hint else ""
    )
    return (
        f'<label for="{input_id}">{html.escape(label)}</label>{hint_html}'
        f"<input {' '.join(attributes)}>"
    )


def _payment_page(
    session: _Session, error: _CardCheck | None = None, form: dict[str, str] | None = None
) -> HTMLResponse:
    """The hosted payment page; after an error the name and expiry are kept, the card number
    and CVC never are (they are not echoed back into HTML)."""
    body = session.body
    form = form or {}
    amount = _money_text(body.amount_minor, body.currency)
    invoices = ""
    if body.invoice_numbers:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in body.invoice_numbers)
        invoices = f'<h2 class="hint">Invoices</h2><ul aria-label="Invoices">{items}</ul>'
    alert = ""
    if error is not None and error.error:
        alert = f'<p class="error" id="form-error" role="alert">{html.escape(error.error)}</p>'
    fields = "".join(
        [
            _input(
                "card_number",
                "card-number",
                "Card number",
                error,
                autocomplete="cc-number",
                inputmode="numeric",
                placeholder="1234 1234 1234 1234",
                maxlength=23,
            ),
            '<div class="row"><div>',
            _input(
                "card_expiry",
                "card-expiry",
                "Expiry date",
                error,
                value=form.get("card_expiry", "")[:7],
                autocomplete="cc-exp",
                inputmode="numeric",
                placeholder="MM/YY",
                maxlength=7,
                hint="MM/YY",
            ),
            "</div><div>",
            _input(
                "card_cvc",
                "card-cvc",
                "Security code (CVC)",
                error,
                autocomplete="cc-csc",
                inputmode="numeric",
                placeholder="123",
                maxlength=4,
            ),
            "</div></div>",
            _input(
                "card_name",
                "card-name",
                "Name on card",
                error,
                value=form.get("card_name", "")[:100],
                autocomplete="cc-name",
                maxlength=100,
            ),
        ]
    )
    content = f"""<section class="card" aria-labelledby="pay-title">
<h1 id="pay-title">Pay {html.escape(amount)}</h1>
<p class="amount" aria-hidden="true">{html.escape(amount)}</p>
<p>{html.escape(body.description)}</p>
{invoices}
<form method="post" action="/checkout/{quote(session.id)}" novalidate>
{alert}
{fields}
<button type="submit" id="pay-button">Pay {html.escape(amount)}</button>
</form>
<a class="cancel" id="cancel-link" href="{html.escape(body.cancel_url)}">Cancel and return</a>
</section>"""
    status_code = error.status_code if error is not None else 200
    return _page(f"Pay {amount} (sandbox)", content, status_code)


def _message_page(title: str, message: str, status_code: int) -> HTMLResponse:
    content = (
        f'<section class="card"><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>'
        "</section>"
    )
    return _page(title, content, status_code)


def _with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string (existing ones kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---------------------------------------------------------------------------- the app


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "unauthenticated", "message": "a valid API key is required"}},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _error(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


def _session_view(session: _Session, public_url: str, now: float) -> dict[str, Any]:
    delivery = session.delivery
    return {
        "id": session.id,
        "object": "checkout.session",
        "status": session.status(now),
        "payment_intent": session.payment_intent,
        "url": f"{public_url.rstrip('/')}/checkout/{session.id}",
        "checkout_id": session.body.checkout_id,
        "tenant_id": session.body.tenant_id,
        "customer_id": session.body.customer_id,
        "amount_minor": session.body.amount_minor,
        "currency": session.body.currency,
        "expires_at": datetime.fromtimestamp(session.expires_at, tz=UTC).isoformat(),
        "webhook": None
        if delivery is None
        else {
            "event_id": delivery.event["id"],
            "delivered": delivery.delivered,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
        },
    }


class _Deliverer:
    """Sends a session's webhook, signed afresh for every attempt (the payments service only
    accepts signatures a few minutes old), retrying what may succeed later."""

    def __init__(self, settings: SandboxGatewaySettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def deliver(self, session: _Session, attempts: int) -> bool:
        delivery = session.delivery
        assert delivery is not None
        body = json.dumps(delivery.event, separators=(",", ":")).encode()
        backoff = self.settings.delivery_backoff_seconds
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(backoff)
                backoff *= 2
            retryable = await self._attempt(session, delivery, body)
            if delivery.delivered or not retryable:
                break
        return delivery.delivered

    async def _attempt(self, session: _Session, delivery: _Delivery, body: bytes) -> bool:
        """One POST; True when a retry may help (network error, 5xx, 409)."""
        tenant = session.body.tenant_id
        secret = self.settings.secret_for(tenant)
        delivery.attempts += 1
        if secret is None:
            delivery.last_error = f"no webhook secret configured for tenant {tenant}"
            return False
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        }
        try:
            response = await self.client.post(
                self.settings.webhook_url(tenant),
                content=body,
                headers=headers,
                timeout=self.settings.delivery_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            delivery.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("webhook for session %s failed: %s", session.id, delivery.last_error)
            return True
        if response.is_success:
            delivery.delivered, delivery.last_error = True, None
            delivery.next_attempt_at = None
            log.info("webhook %s for session %s delivered", delivery.event["id"], session.id)
            return False
        delivery.last_error = f"HTTP {response.status_code}"
        # The receiver's error body (code and details; it echoes no secret) says what to fix.
        log.warning(
            "webhook for session %s answered %s: %s",
            session.id,
            response.status_code,
            response.text[:500],
        )
        return response.status_code >= 500 or response.status_code == 409

    def schedule(self, delivery: _Delivery, now: float) -> None:
        """After a failed round: the next background attempt, backing off exponentially."""
        if delivery.delivered:
            return
        if delivery.first_failed_at is None:
            delivery.first_failed_at = now
        delivery.backoff = min(
            max(delivery.backoff * 2, self.settings.redelivery_interval_seconds),
            self.settings.redelivery_max_interval_seconds,
        )
        if now - delivery.first_failed_at > self.settings.redelivery_give_up_after_seconds:
            delivery.next_attempt_at = None
            delivery.last_error = f"gave up: {delivery.last_error}"
        else:
            delivery.next_attempt_at = now + delivery.backoff


async def _form_of(request: Request) -> dict[str, str] | None:
    """The urlencoded form, first value per field; None when it is too large. Parsed here
    (not by a middleware or library that might log or keep it)."""
    raw = await request.body()
    if len(raw) > _MAX_FORM_BYTES:
        return None
    parsed = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items() if values}


def create_app(
    settings: SandboxGatewaySettings, *, webhook_client: httpx.AsyncClient | None = None
) -> FastAPI:
    """The sandbox gateway. ``webhook_client`` (tests: an ``httpx.ASGITransport`` to the
    payments app) sends the webhooks; by default a client the app owns and closes."""
    store = _Store()
    owns_client = webhook_client is None
    client = webhook_client or httpx.AsyncClient()
    deliverer = _Deliverer(settings, client)

    async def redeliver_forever() -> None:
        while True:
            await asyncio.sleep(min(1.0, settings.redelivery_interval_seconds))
            now = time.time()
            for session in list(store.sessions.values()):
                delivery = session.delivery
                if delivery is None or delivery.next_attempt_at is None:
                    continue
                if delivery.next_attempt_at > now or session.lock.locked():
                    continue
                async with session.lock:
                    await deliverer.deliver(session, 1)
                    deliverer.schedule(delivery, time.time())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(redeliver_forever(), name="sandbox-webhook-redelivery")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if owns_client:
                await client.aclose()

    app = FastAPI(
        title="Ledgerline sandbox payment gateway",
        description="A local stand-in for Stripe Checkout. Test mode only; sessions are kept "
        "in memory and forgotten on restart.",
        lifespan=lifespan,
    )
    app.state.sandbox_settings = settings

    def authorized(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expected = settings.api_key.get_secret_value()
        return (
            scheme.lower() == "bearer"
            and bool(expected)
            and hmac.compare_digest(token.strip().encode(), expected.encode())
        )

    def find(session_id: str) -> _Session | None:
        return store.sessions.get(session_id)

    @app.post("/v1/checkout/sessions", status_code=201, response_model=None)
    async def create_session(body: CreateSessionBody, request: Request) -> JSONResponse:
        """Create a session; a repeat with the same tenant, checkout id and body returns the
        first session (200), so the portal may retry a create that timed out."""
        if not authorized(request):
            return _unauthorized()
        if settings.secret_for(body.tenant_id) is None:
            return _error(
                422, "validation_failed", f"no webhook secret is configured for {body.tenant_id}"
            )
        now = time.time()
        key = (body.tenant_id, body.checkout_id)
        existing = store.by_checkout.get(key)
        if existing is not None:
            session = store.sessions[existing]
            if session.body != body:
                return _error(
                    409, "state_conflict", "checkout_id was already used with another body"
                )
            return JSONResponse(_session_view(session, settings.public_url, now), status_code=200)
        session = _Session(
            id=_new_id("cs_test_"),
            body=body,
            created_at=now,
            expires_at=now + settings.session_ttl_seconds,
        )
        store.sessions[session.id] = session
        store.by_checkout[key] = session.id
        return JSONResponse(_session_view(session, settings.public_url, now), status_code=201)

    @app.get("/v1/checkout/sessions/{session_id}", response_model=None)
    async def get_session(session_id: str, request: Request) -> JSONResponse:
        if not authorized(request):
            return _unauthorized()
        session = find(session_id)
        if session is None:
            return _error(404, "not_found", f"no checkout session {session_id}")
        return JSONResponse(_session_view(session, settings.public_url, time.time()))

    @app.post("/v1/checkout/sessions/{session_id}/redeliver", response_model=None)
    async def redeliver(session_id: str, request: Request) -> JSONResponse:
        """Send a completed session's webhook again now (same event id: the payments service
        de-duplicates), whether or not it was delivered before."""
        if not authorized(request):
            return _unauthorized()
        session = find(session_id)
        if session is None:
            return _error(404, "not_found", f"no checkout session {session_id}")
        if session.delivery is None:
            return _error(409, "state_conflict", "the session has no payment to deliver")
        async with session.lock:
            session.delivery.delivered = False
            await deliverer.deliver(session, settings.delivery_attempts)
            deliverer.schedule(session.delivery, time.time())
        return JSONResponse(_session_view(session, settings.public_url, time.time()))

    def closed_page(session: _Session, status: SessionStatus) -> Response:
        if status == "complete":
            return RedirectResponse(success_url(session), status_code=303)
        if status == "expired":
            return _message_page(
                "Checkout expired", "This checkout has expired. Please start again.", 410
            )
        return _message_page(
            "Checkout failed", "Too many declined attempts. Please start again.", 410
        )

    def success_url(session: _Session) -> str:
        return _with_query(
            session.body.success_url, checkout=session.body.checkout_id, session=session.id
        )

    @app.get("/checkout/{session_id}", response_class=HTMLResponse, response_model=None)
    async def payment_page(session_id: str) -> Response:
        session = find(session_id)
        if session is None:
            return _message_page("Checkout not found", "This checkout does not exist.", 404)
        status = session.status(time.time())
        if status != "open":
            return closed_page(session, status)
        return _payment_page(session)

    @app.post("/checkout/{session_id}", response_class=HTMLResponse, response_model=None)
    async def pay(session_id: str, request: Request) -> Response:
        session = find(session_id)
        if session is None:
            return _message_page("Checkout not found", "This checkout does not exist.", 404)
        form = await _form_of(request)
        if form is None:
            return _message_page("Request too large", "The form is too large.", 413)
        async with session.lock:  # a double submit waits, then sees the session complete
            status = session.status(time.time())
            if status != "open":
                return closed_page(session, status)
            check = _check_card(form, datetime.now(UTC))
            form.pop("card_number", None)
            form.pop("card_cvc", None)
            if check.error is not None:
                if check.status_code == 402:
                    session.declines += 1
                    if session.declines >= settings.max_declines:
                        session.state = "failed"
                        return closed_page(session, "failed")
                return _payment_page(session, check, form)
            assert check.brand is not None and check.last4 is not None
            session.payment_intent = _new_id("pi_")
            session.state = "complete"  # the money is taken, whatever the webhook does
            session.delivery = _Delivery(
                _event(session, session.payment_intent, check.brand, check.last4)
            )
            log.info("session %s paid: %s", session.id, session.payment_intent)
            if not await deliverer.deliver(session, settings.delivery_attempts):
                deliverer.schedule(session.delivery, time.time())
        return RedirectResponse(success_url(session), status_code=303)

    return app


def app() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from the environment."""
    return create_app(SandboxGatewaySettings())


def main() -> None:
    import uvicorn

    settings = SandboxGatewaySettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
