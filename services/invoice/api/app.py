"""The invoice service's FastAPI app; run with `uvicorn --factory services.invoice.api.app:create_app`."""

from fastapi import FastAPI

from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.api.routes import router
from services.invoice.config import InvoiceSettings
from services.invoice.consumers.handlers import CONSUMERS
from shared.web.app import create_service_app


def create_app(
    settings: InvoiceSettings | None = None, credit_client: CreditCheckClient | None = None
) -> FastAPI:
    settings = settings or InvoiceSettings()
    client = credit_client or CreditCheckClient(
        settings.credit_service_url, timeout_seconds=settings.credit_check_timeout_seconds
    )
    app = create_service_app(
        settings,
        title="Ledgerline invoice service",
        description="Invoices, credit notes, disputes, payment terms and gapless numbering.",
        routers=[router],
        consumers=CONSUMERS,
        on_shutdown=[client.close],
    )
    app.state.credit_client = client
    return app
