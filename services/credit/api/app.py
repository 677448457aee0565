"""The credit service's FastAPI app; run with `uvicorn --factory services.credit.api.app:create_app`."""

from fastapi import FastAPI

from services.credit.api.routes import router
from services.credit.application.holds import HoldSweeper
from services.credit.config import CreditSettings
from services.credit.consumers import CONSUMERS
from shared.web.app import create_service_app


def create_app(settings: CreditSettings | None = None) -> FastAPI:
    settings = settings or CreditSettings()
    return create_service_app(
        settings,
        title="Ledgerline credit service",
        description="Credit limits, exposure, credit checks and holds, risk scores.",
        routers=[router],
        consumers=CONSUMERS,
        workers=[HoldSweeper(settings.hold_sweep_interval_seconds)],
    )
