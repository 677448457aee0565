"""The payments service's FastAPI app; run with `uvicorn --factory services.payments.api.app:create_app`."""

from fastapi import FastAPI

from services.payments.api.routes import router
from services.payments.config import PaymentsSettings
from services.payments.consumers import consumers
from shared.web.app import create_service_app


def create_app(settings: PaymentsSettings | None = None) -> FastAPI:
    settings = settings or PaymentsSettings()
    return create_service_app(
        settings,
        title="Ledgerline payments service",
        description="Payments, cash application (allocation and auto-matching), refunds, bank statements, gateway webhooks.",
        routers=[router],
        consumers=consumers(settings.matching_policy()),
    )
