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
    credit_service_url: str = f"http://127.0.0.1:{SERVICE_PORTS['credit']}"
    credit_check_timeout_seconds: float = 2.0
    # When the credit service cannot answer: refuse to issue (default) or issue and record it.
    issue_when_credit_unavailable: bool = False
    # The seller printed on invoice PDFs.
    seller_name: str = "Ledgerline Demo Seller"
    seller_address_lines: list[str] = ["1 Ledger Street", "10115 Berlin", "Germany"]
    seller_tax_id: str | None = None
    seller_email: str | None = None
