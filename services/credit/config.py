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
    # How long a passed credit check holds its amount for the invoice that asked.
    reservation_ttl_seconds: int = 900
    # A limit raised above this (minor units of the account currency) needs a second approver.
    limit_approval_threshold_minor: int | None = 5_000_000
    # How often the hold sweeper looks for accounts not yet reviewed today (invoices become
    # overdue by the calendar); each account is swept at most once a day unless it changed.
    hold_sweep_interval_seconds: float = 300.0
