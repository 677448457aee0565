"""The invoice service's FastAPI app; run with `uvicorn --factory services.invoice.api.app:create_app`."""

from fastapi import FastAPI

from services.invoice.config import InvoiceSettings
from shared.web.app import create_service_app


def create_app(settings: InvoiceSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or InvoiceSettings(),
        title="Ledgerline invoice service",
        description="Invoices, credit notes, disputes, payment terms and gapless numbering.",
    )
