"""Settings of the dunning service (environment prefix LEDGERLINE_DUNNING_)."""

from datetime import time

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services import SERVICE_PORTS
from shared.portal_links import PortalLinkSettings
from shared.settings import ServiceSettings


class DunningSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_DUNNING_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "dunning"
    http_port: int = SERVICE_PORTS["dunning"]
    # How often due steps are looked for, and queued e-mails sent.
    scheduler_interval_seconds: float = 300.0
    mailer_interval_seconds: float = 5.0
    run_scheduler: bool = True
    # SMTP: locally the project's own server (`ar services run` starts it on 2525).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    from_address: str = "billing@ledgerline.invalid"
    reply_to: str | None = None
    seller_name: str = "Ledgerline Demo Seller"
    # Every e-mail links to the customer portal with a signed, expiring link (`pay_link` in the
    # templates). Defaults: LEDGERLINE_PORTAL_URL, LEDGERLINE_PORTAL_LINK_SECRET, 30 days;
    # here: LEDGERLINE_DUNNING_PORTAL__BASE_URL, __SECRET, __TTL_DAYS, __PREVIOUS_SECRETS.
    portal: PortalLinkSettings = Field(default_factory=PortalLinkSettings)
    # Statements of account come from the reporting service, with tokens signed here
    # (auth.signing_key, else the shared HS256 key) for scope reporting:read.
    reporting_url: str = f"http://127.0.0.1:{SERVICE_PORTS['reporting']}"
    reporting_timeout_seconds: float = 30.0
    # No e-mails in these local hours (the window may wrap midnight; equal times: none).
    timezone: str = "Europe/Berlin"
    quiet_start: time = time(20, 0)
    quiet_end: time = time(8, 0)
