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
