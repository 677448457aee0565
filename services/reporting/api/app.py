"""The reporting service's FastAPI app; run with `uvicorn --factory services.reporting.api.app:create_app`."""

from fastapi import FastAPI

from services.reporting.api import ledger_routes, statement_routes
from services.reporting.api.routes import pages, router
from services.reporting.config import ReportingSettings
from services.reporting.consumers import consumers
from shared.web.app import create_service_app


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    return create_service_app(
        settings,
        title="Ledgerline reporting service",
        description="Aging as of any date, DSO, ADP, CEI, payment behaviour, cash forecast; "
        "BI tables and a dashboard; the general-ledger journal, its exports and reconciliation.",
        routers=[router, ledger_routes.router, statement_routes.router, pages],
        consumers=consumers(settings.schema_name, journal=settings.run_journal),
    )
