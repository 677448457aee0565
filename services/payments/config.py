"""Settings of the payments service (environment prefix LEDGERLINE_PAYMENTS_)."""

from decimal import Decimal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services import SERVICE_PORTS
from services.payments.domain.matching import MatchingPolicy
from shared.settings import ServiceSettings


class PaymentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINE_PAYMENTS_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "payments"
    http_port: int = SERVICE_PORTS["payments"]
    # Matches at or above this confidence are applied without review.
    auto_apply_threshold: Decimal = Field(default=Decimal("0.90"), ge=0, le=1)
    # A short or over payment within this percent of the open amount (and at most this many
    # minor units) is proposed as a tolerance match (bank charges, rounding by the payer).
    tolerance_percent: Decimal = Field(default=Decimal("1"), ge=0, le=100)
    tolerance_max_minor: int = Field(default=1000, ge=0)
    # Gateway webhook secrets per tenant, newest first; during a rotation list old and new.
    # JSON, e.g. LEDGERLINE_PAYMENTS_WEBHOOK_SECRETS='{"acme": ["whsec_new", "whsec_old"]}'
    webhook_secrets: dict[str, list[SecretStr]] = {}
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    # Largest statement file accepted, in bytes.
    max_statement_bytes: int = 5_000_000

    def matching_policy(self) -> MatchingPolicy:
        return MatchingPolicy(
            auto_apply_threshold=self.auto_apply_threshold,
            tolerance_percent=self.tolerance_percent,
            tolerance_max_minor=self.tolerance_max_minor,
        )
