"""The pages a customer reaches through its link: server-rendered HTML, a form per action.

The link (``/p/<token>``) becomes an HttpOnly cookie scoped to ``/portal``; every request checks
its signature, expiry and revocation. Every form carries a CSRF token bound to the link, and a
``form_id`` that is the Idempotency-Key of the command it causes (a double submit does it once).
Each action is a command of the service that owns it, with the link as the actor.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from services.portal.api.routes import settings_of, upstream_of
from services.portal.application import links
from services.portal.domain import account as accounts
from services.portal.gateway.adapter import CheckoutRequest, PaymentGateway
from shared.errors import LedgerlineError, NotFound, Unauthenticated, ValidationFailed
from shared.money import Money
from shared.portal_links import PortalLink, csrf_token, csrf_valid, verify_link
from shared.web.deps import db_session

log = logging.getLogger(__name__)
pages = APIRouter(include_in_schema=False)
COOKIE = "ledgerline_portal"
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
NOTICES = {
    "disputed": "Thank you. Your dispute is recorded and reminders pause for that amount.",
    "promised": "Thank you. Your promise to pay is recorded.",
    "paid": "Thank you. Your payment was received.",
    "cancelled": "The payment was cancelled; nothing was charged.",
}
FormText = Annotated[str | None, Form(max_length=1000)]


def _today() -> date:
    return datetime.now(UTC).date()


def money(m: Money) -> str:
    return f"{m.currency} {m.to_decimal():,}"


def _headers(request: Request) -> dict[str, str]:
    """No caching, no framing, no referrer (the first URL holds the link), and forms may post
    only here, or be redirected on to the payment gateway."""
    gateway = urlsplit(settings_of(request).gateway_url)
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
            f"form-action 'self' {gateway.scheme}://{gateway.netloc}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
    }


def _html(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    seller = settings_of(request).seller_name
    body = _templates.get_template(template).render(seller=seller, money=money, **context)
    return HTMLResponse(body, status_code=status, headers=_headers(request))


def _message(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return _html(request, "message.html.j2", status, title=title, message=message)


def _redirect(request: Request, url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_headers(request))


async def _checked(request: Request, session: AsyncSession, token: str | None) -> PortalLink:
    if not token:
        raise Unauthenticated("no portal session")
    link = verify_link(settings_of(request).links, token)
    await links.ensure_active(session, link)
    return link


Session = Annotated[AsyncSession, Depends(db_session)]


class LinkRefused(Exception):
    """No valid link: answered with a page, not the JSON error body of the API."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


async def current_link(request: Request, session: Session) -> PortalLink:
    try:
        return await _checked(request, session, request.cookies.get(COOKIE))
    except Unauthenticated as exc:
        raise LinkRefused(exc.message) from None


Link = Annotated[PortalLink, Depends(current_link)]


def link_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LinkRefused)
    response = _message(
        request,
        401,
        "Link not valid",
        "This link has expired, was withdrawn, or is not complete. "
        "Please use the newest e-mail from us or ask us for a new link.",
    )
    response.delete_cookie(COOKIE, path="/portal")
    return response


@pages.get("/p/{token}")
async def open_link(request: Request, token: str, session: Session) -> Response:
    """Trade the link for a session cookie, so the token leaves the address bar at once."""
    try:
        link = await _checked(request, session, token)
    except Unauthenticated as exc:
        return link_refused(request, LinkRefused(exc.message))
    response = _redirect(request, "/portal")
    seconds = int((link.expires_at - datetime.now(UTC)).total_seconds())
    response.set_cookie(
        COOKIE,
        token,
        max_age=max(seconds, 1),
        path="/portal",
        httponly=True,
        secure=settings_of(request).secure_cookies,
        samesite="lax",
    )
    return response


async def _account(request: Request, link: PortalLink) -> accounts.Account:
    upstream = upstream_of(request)
    invoices, (payments, unapplied), customer, promises = await asyncio.gather(
        upstream.invoices_of(link),
        upstream.payments_of(link),
        upstream.json("invoice", f"/v1/customers/{link.customer_id}", link),
        upstream.promises_of(link),
    )
    return accounts.account(
        link.customer_id,
        invoices,
        payments,
        unapplied,
        _today(),
        name=customer.get("name"),
        promises=promises,
    )


async def _page(
    request: Request,
    link: PortalLink,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    try:
        acct = await _account(request, link)
    except LedgerlineError as exc:
        log.warning("portal page for a customer could not load: %s", exc.code)
        return _message(request, 503, "Your account", "Your account cannot be shown right now.")
    today = _today()
    return _html(
        request,
        "account.html.j2",
        status,
        title=f"{acct.name}: your account" if acct.name else "Your account",
        account=acct,
        csrf=csrf_token(settings_of(request).links, link),
        form_id=uuid.uuid4(),
        dispute_form_id=uuid.uuid4(),
        today=today.isoformat(),
        month_start=today.replace(day=1).isoformat(),
        notice=notice,
        error=error,
    )


@pages.get("/portal")
async def account_page(
    request: Request, link: Link, notice: Annotated[str | None, Query(max_length=20)] = None
) -> Response:
    return await _page(request, link, notice=NOTICES.get(notice or ""))


@pages.get("/portal/invoices/{invoice_id}.pdf")
async def invoice_pdf(request: Request, invoice_id: uuid.UUID, link: Link) -> Response:
    upstream = upstream_of(request)
    try:
        view = await upstream.invoice(link, invoice_id)
        pdf = await upstream.request(
            "invoice", "GET", f"/v1/invoices/{invoice_id}.pdf", link, ("invoices:read",)
        )
    except NotFound:
        return _message(request, 404, "Not found", "There is no such invoice on your account.")
    name = view.get("number") or str(invoice_id)
    return Response(
        pdf.content,
        media_type="application/pdf",
        headers={**_headers(request), "Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


@pages.get("/portal/statement")
async def statement(
    request: Request,
    link: Link,
    from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    to: Annotated[str | None, Query(max_length=10)] = None,
    format: Annotated[str, Query(pattern="^(pdf|csv)$")] = "pdf",
) -> Response:
    try:
        start, end = accounts.statement_period(from_, to, _today())
    except ValidationFailed as exc:
        return await _page(request, link, status=422, error=exc.message)
    answer = await upstream_of(request).request(
        "reporting",
        "GET",
        f"/v1/customers/{link.customer_id}/statement",
        link,
        ("reporting:read",),
        params={"from_date": start.isoformat(), "to_date": end.isoformat(), "format": format},
    )
    filename = f"statement-{start.isoformat()}-{end.isoformat()}.{format}"
    return Response(
        answer.content,
        media_type="application/pdf" if format == "pdf" else "text/csv; charset=utf-8",
        headers={**_headers(request), "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _check_form(request: Request, link: PortalLink, csrf: str | None) -> None:
    """The form's token must be this link's; and a browser that names the origin must name ours
    (defence in depth: SameSite=Lax already keeps the cookie off cross-site posts)."""
    if not csrf_valid(settings_of(request).links, link, csrf):
        raise FormRefused("This form has expired. Please reload the page and try again.")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin != own:
            raise FormRefused("This form was sent from another site and was ignored.")


class FormRefused(Exception):
    """A form without this link's CSRF token, or from another site."""

    def __init__(self, message: str) -> None:
        self.message = message


def form_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FormRefused)
    return _message(request, 403, "Not sent", exc.message)


def _key(form_id: str | None, action: str) -> str | None:
    """The Idempotency-Key: one per rendered form and action."""
    try:
        return f"portal-{action}-{uuid.UUID(form_id or '')}"
    except ValueError:
        return None


@pages.post("/portal/disputes")
async def dispute(
    request: Request,
    link: Link,
    csrf: FormText = None,
    form_id: FormText = None,
    invoice_id: FormText = None,
    amount: FormText = None,
    reason: FormText = None,
) -> Response:
    _check_form(request, link, csrf)
    try:
        acct = await _account(request, link)
        line = accounts.owned_open_invoice(acct, invoice_id or "")
        disputed = accounts.dispute_amount(line, amount)
        if not (reason or "").strip():
            raise ValidationFailed("tell us the reason for the dispute", {"field": "reason"})
        await upstream_of(request).request(
            "invoice",
            "POST",
            f"/v1/invoices/{line.invoice_id}/disputes",
            link,
            ("invoices:read", "disputes:write"),
            json={"amount": disputed.amount, "reason": (reason or "").strip()},
            idempotency_key=_key(form_id, "dispute"),
        )
    except LedgerlineError as exc:
        return await _page(request, link, status=exc.status_code, error=exc.message)
    return _redirect(request, "/portal?notice=disputed")


def _chosen(form: Any) -> list[str]:
    return [str(v) for v in form.getlist("invoice_id")][:100]


@pages.post("/portal/promises")
async def promise(
    request: Request,
    link: Link,
    csrf: FormText = None,
    form_id: FormText = None,
    amount: FormText = None,
    promised_date: FormText = None,
    note: FormText = None,
) -> Response:
    _check_form(request, link, csrf)
    chosen = _chosen(await request.form())
    try:
        acct = await _account(request, link)
        lines = accounts.selected(acct, chosen)
        promised, when = accounts.promise(lines, amount, promised_date, _today())
        body: dict[str, Any] = {
            "invoice_ids": [str(line.invoice_id) for line in lines],
            "amount": promised.model_dump(),
            "promised_date": when.isoformat(),
        }
        if (note or "").strip():
            body["note"] = (note or "").strip()[:1000]
        await upstream_of(request).request(
            "dunning",
            "POST",
            f"/v1/customers/{link.customer_id}/promises",
            link,
            ("dunning:read", "promises:write"),
            json=body,
            idempotency_key=_key(form_id, "promise"),
        )
    except LedgerlineError as exc:
        return await _page(request, link, status=exc.status_code, error=exc.message)
    return _redirect(request, "/portal?notice=promised")


def gateway_of(request: Request) -> PaymentGateway:
    gateway: PaymentGateway = request.app.state.gateway
    return gateway


async def _known_to_payments(
    request: Request, link: PortalLink, lines: list[accounts.InvoiceLine]
) -> None:
    """The gateway's webhook can only apply the payment to invoices the payments service has
    consumed; a just-issued one may still be on its way over Kafka. Better to ask for a moment
    than to take money that then waits unapplied."""
    upstream = upstream_of(request)
    for line in lines:
        try:
            path = f"/v1/invoices/{line.invoice_id}/open-amount"
            await upstream.request("payments", "GET", path, link, ("payments:read",))
        except NotFound:
            raise ValidationFailed(
                f"Invoice {line.number} can be paid in a minute; please try again shortly.",
                {"field": "invoice_id"},
            ) from None


@pages.post("/portal/pay")
async def pay(request: Request, link: Link, session: Session, csrf: FormText = None) -> Response:
    """Hand the chosen invoices' payable amount to the gateway's hosted page: card data is
    entered there, never here. The gateway's webhook to the payments service records the
    payment against these invoices."""
    _check_form(request, link, csrf)
    chosen = _chosen(await request.form())
    try:
        acct = await _account(request, link)
        lines = accounts.selected(acct, chosen)
        amount = accounts.checkout_amount(lines)
        await _known_to_payments(request, link, lines)
        checkout_id = uuid.uuid4()
        base = f"{request.url.scheme}://{request.url.netloc}/portal"
        back = urlencode({"checkout": str(checkout_id)})
        checkout = await gateway_of(request).create_checkout(
            CheckoutRequest(
                checkout_id=checkout_id,
                tenant_id=link.tenant_id,
                customer_id=link.customer_id,
                amount_minor=amount.amount,
                currency=amount.currency,
                invoice_ids=[line.invoice_id for line in lines],
                invoice_numbers=[line.number for line in lines],
                description=f"Invoices {', '.join(line.number for line in lines)}",
                success_url=f"{base}?notice=paid&{back}",
                cancel_url=f"{base}?notice=cancelled&{back}",
            )
        )
        await links.record_checkout(
            session,
            link,
            checkout_id,
            [line.invoice_id for line in lines],
            amount,
            checkout.session_id,
        )
        await session.commit()
    except LedgerlineError as exc:
        return await _page(request, link, status=exc.status_code, error=exc.message)
    return _redirect(request, checkout.redirect_url)


@pages.post("/portal/sign-out")
async def sign_out(request: Request, link: Link, csrf: FormText = None) -> Response:
    _check_form(request, link, csrf)
    response = _message(request, 200, "Signed out", "You are signed out. Your link still works.")
    response.delete_cookie(COOKIE, path="/portal")
    return response
