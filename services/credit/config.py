"""Settings of the credit service (environment prefix LEDGERLINE_CREDIT_)."""

from pydantic_settings import SettingsConfigDict

from services import SERVICE_PORTS
from shared.settings import ServiceSettings


class CreditSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_CREDIT_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "credit"
    http_port: int = SERVICE_PORTS["credit"]
