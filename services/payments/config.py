"""Settings of the payments service (environment prefix LEDGERLINE_PAYMENTS_)."""

from pydantic_settings import SettingsConfigDict

from services import SERVICE_PORTS
from shared.settings import ServiceSettings


class PaymentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_PAYMENTS_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "payments"
    http_port: int = SERVICE_PORTS["payments"]
