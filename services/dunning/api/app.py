"""The dunning service's FastAPI app; run with `uvicorn --factory services.dunning.api.app:create_app`."""

from fastapi import FastAPI

from services.dunning.config import DunningSettings
from shared.web.app import create_service_app


def create_app(settings: DunningSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or DunningSettings(),
        title="Ledgerline dunning service",
        description="Follow-up policies, reminders by e-mail, late fees and interest, escalation.",
    )
