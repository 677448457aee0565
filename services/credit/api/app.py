"""The credit service's FastAPI app; run with `uvicorn --factory services.credit.api.app:create_app`."""

from fastapi import FastAPI

from services.credit.api.routes import router
from services.credit.config import CreditSettings
from services.credit.consumers.invoices import CONSUMERS
from shared.web.app import create_service_app


def create_app(settings: CreditSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or CreditSettings(),
        title="Ledgerline credit service",
        description="Credit limits, exposure, credit checks and holds, risk scores.",
        routers=[router],
        consumers=CONSUMERS,
    )
