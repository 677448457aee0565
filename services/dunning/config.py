"""Settings of the dunning service (environment prefix LEDGERLINE_DUNNING_)."""

from pydantic_settings import SettingsConfigDict

from services import SERVICE_PORTS
from shared.settings import ServiceSettings


class DunningSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_DUNNING_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "dunning"
    http_port: int = SERVICE_PORTS["dunning"]
