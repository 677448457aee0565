"""Settings of the reporting service (environment prefix LEDGERLINE_REPORTING_)."""

from pydantic_settings import SettingsConfigDict

from services import SERVICE_PORTS
from shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_REPORTING_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "reporting"
    http_port: int = SERVICE_PORTS["reporting"]
    # The general-ledger journal's consumer group (docs/accounting.md); off only to run the
    # service without it, e.g. to compare benchmarks or to run the journal elsewhere.
    run_journal: bool = True
