"""Settings shared by every service; each service subclasses with its own env prefix.

Defaults match the local stack started by deploy/ (Postgres on 25432, Kafka on 29092), so a
developer needs no configuration; production overrides everything through the environment.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def local_pg_address() -> str:
    """host:port/db of the Postgres that deploy/postgres/start.sh runs (deploy/env.sh exports these)."""
    host = _env("LEDGERLINE_PG_HOST", "127.0.0.1")
    port = _env("LEDGERLINE_PG_PORT", "25432")
    return f"{host}:{port}/{_env('LEDGERLINE_PG_DB', 'ledgerline')}"


class AuthSettings(BaseModel):
    """How bearer JWTs are verified. HS256 with a shared secret locally; RS256/ES256 in production."""

    issuer: str = "ledgerline-dev"
    audience: str = "ledgerline"
    algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    # Symmetric secret (HS*) or PEM public key (RS*/ES*). The dev default is public knowledge.
    verification_key: SecretStr = SecretStr("ledgerline-dev-secret-change-me-0123456789")
    # Additional keys still accepted while rotating (old secret kept until its tokens expire).
    previous_verification_keys: list[SecretStr] = Field(default_factory=list)
    signing_key: SecretStr | None = None  # only the dev token minter needs it
    leeway_seconds: int = 30
    tenant_claim: str = "tenant_id"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field(
        default_factory=lambda: _env("LEDGERLINE_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
    )
    client_id_prefix: str = "ledgerline"
    relay_batch_size: int = 1000
    relay_poll_interval_seconds: float = 0.05
    # Once no events flowed for a second: the service's own commits wake the relay at once, so
    # this only bounds the wait for events written by other processes (outbox.py).
    relay_idle_poll_interval_seconds: float = 0.5
    consumer_max_batch: int = 500
    consumer_max_retries: int = 3
    consumer_retry_backoff_seconds: float = 0.2
    # A consumer commits at least this often within a batch: relays wait for the oldest open
    # transaction in the cluster, so a long one delays every service's events.
    consumer_transaction_budget_seconds: float = 0.1


class TelemetrySettings(BaseModel):
    exporter: str = "none"  # none | console | otlp
    otlp_endpoint: str | None = None
    # Share of new traces recorded while spans are exported (none are recorded without an
    # exporter); a sampled caller's traceparent is always followed.
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    log_level: str = "INFO"


class ServiceSettings(BaseSettings):
    """Base for a service's settings. Nested values use `__`, e.g. LEDGERLINE_INVOICE_KAFKA__BOOTSTRAP_SERVERS."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    service_name: str = "service"
    database_url: str = ""
    # Connections kept open. Beyond them a unit of work opens one and closes it after: about
    # 10 ms of CPU (here and in Postgres) and a cold prepared-statement cache each. With 10, the
    # issue benchmark's 16 clients opened 9 connections a second (the relay and the chain sealer
    # hold one each while leading), and issuing peaked at 41-46/s instead of 52-56/s.
    db_pool_size: int = 32
    db_max_overflow: int = 8
    http_host: str = "127.0.0.1"
    http_port: int = 8100
    run_relay: bool = True
    run_consumers: bool = True
    # When set, GET /metrics answers only `Authorization: Bearer <token>` (the scraper's); unset,
    # it is open like /healthz, for hosts whose metrics port only the scraper can reach.
    metrics_token: SecretStr | None = None
    # TEST ONLY, default off (tests/chaos): "<tenant_id>" or "<tenant_id>:<EventType>". The
    # process SIGKILLs itself once Kafka has acknowledged a relay batch holding such an event,
    # before the relay's checkpoint moves: the crash the outbox must survive by re-publishing.
    fault_kill_relay_after_ack: str | None = None
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    @property
    def schema_name(self) -> str:
        return self.service_name

    def dsn(self) -> str:
        """The service's own login role, which owns its schema and nothing else."""
        if self.database_url:
            return self.database_url
        role = f"{self.service_name}_svc"
        return f"postgresql+asyncpg://{role}:{role}@{local_pg_address()}"
