"""Settings of the portal service (environment prefix LEDGERLINE_PORTAL_)."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services import SERVICE_PORTS
from shared.portal_links import PortalLinkSettings
from shared.settings import ServiceSettings


def _local(service: str) -> str:
    return f"http://127.0.0.1:{SERVICE_PORTS[service]}"


class PortalSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_PORTAL_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "portal"
    http_port: int = SERVICE_PORTS["portal"]
    links: PortalLinkSettings = Field(default_factory=PortalLinkSettings)
    # The services the portal acts on, with tokens it signs itself (auth.signing_key, else the
    # shared HS256 key): tenant-scoped, naming the link as the actor, five minutes long.
    invoice_url: str = _local("invoice")
    payments_url: str = _local("payments")
    dunning_url: str = _local("dunning")
    reporting_url: str = _local("reporting")
    # The payment gateway's hosted checkout (the sandbox stands in for Stripe locally).
    gateway_url: str = "http://127.0.0.1:8107"
    gateway_api_key: SecretStr = SecretStr("sk_test_ledgerline_sandbox")
    # Secure cookies need HTTPS; off only for the local stack's plain-HTTP port.
    secure_cookies: bool = False
    seller_name: str = "Ledgerline Demo Seller"
