"""The payments service's FastAPI app; run with `uvicorn --factory services.payments.api.app:create_app`."""

from fastapi import FastAPI

from services.payments.config import PaymentsSettings
from shared.web.app import create_service_app


def create_app(settings: PaymentsSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or PaymentsSettings(),
        title="Ledgerline payments service",
        description="Payments, cash application (allocation and auto-matching), refunds, bank statements, gateway webhooks.",
    )
