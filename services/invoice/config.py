"""Settings of the invoice service (environment prefix LEDGERLINE_INVOICE_)."""

from pydantic_settings import SettingsConfigDict

from services import SERVICE_PORTS
from shared.settings import ServiceSettings


class InvoiceSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_INVOICE_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "invoice"
    http_port: int = SERVICE_PORTS["invoice"]
