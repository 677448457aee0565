"""The portal's FastAPI app; run with `uvicorn --factory services.portal.api.app:create_app`."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.portal.api.pages import FormRefused, LinkRefused, form_refused, link_refused, pages
from services.portal.api.routes import router
from services.portal.application.upstream import Upstream
from services.portal.config import PortalSettings
from services.portal.gateway.adapter import PaymentGateway, SandboxGateway
from shared.service_tokens import ServiceTokens
from shared.web.app import create_service_app


def create_app(
    settings: PortalSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    gateway: PaymentGateway | None = None,
) -> FastAPI:
    """``transport`` routes the calls to the other services (tests run them in-process);
    ``gateway`` replaces the sandbox gateway adapter."""
    settings = settings or PortalSettings()
    upstream = Upstream(
        {
            "invoice": settings.invoice_url,
            "payments": settings.payments_url,
            "dunning": settings.dunning_url,
            "reporting": settings.reporting_url,
        },
        ServiceTokens(settings.auth, client_kind="portal"),
        transport=transport,
    )
    app = create_service_app(
        settings,
        title="Ledgerline customer portal",
        description="Signed, expiring links to a customer's own page: open invoices, payments, "
        "statements; disputes, promises to pay and card payments through the gateway's page.",
        routers=[router, pages],
        on_shutdown=[upstream.aclose],
        secret_paths=("/p/",),  # the link token is a credential: never in logs or traces
    )
    app.state.upstream = upstream
    app.state.gateway = gateway or SandboxGateway(
        settings.gateway_url, settings.gateway_api_key.get_secret_value()
    )
    app.add_exception_handler(LinkRefused, link_refused)
    app.add_exception_handler(FormRefused, form_refused)
    return app
