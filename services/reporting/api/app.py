"""The reporting service's FastAPI app; run with `uvicorn --factory services.reporting.api.app:create_app`."""

from fastapi import FastAPI

from services.reporting.config import ReportingSettings
from shared.web.app import create_service_app


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or ReportingSettings(),
        title="Ledgerline reporting service",
        description="Projections for aging, DSO, ADP, CEI, payment behaviour, cash forecast; BI tables.",
    )
