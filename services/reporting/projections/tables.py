"""Where the projection tables live. A rebuild writes the same tables under a suffix (shadow
tables) and swaps them in, so every writer and reader names tables through `Tables`."""

from __future__ import annotations

from dataclasses import dataclass

from shared.db import checked_schema

# The tables a rebuild replaces, all written only by the projector. tenant_settings and fx_rates
# are configuration, not projections: they are not in this list and survive a rebuild.
PROJECTION_TABLES = (
    "customers",
    "invoices",
    "obligations",
    "settlements",
    "disputes",
    "payments",
    "allocations",
    "payment_returns",
    "open_items",
    "open_totals",
    "aging_horizons",
)
LIVE_PROJECTION = "reporting"
SHADOW_SUFFIX = "_rebuild"


@dataclass(frozen=True)
class Tables:
    schema: str
    suffix: str = ""

    def __post_init__(self) -> None:
        checked_schema(self.schema)
        if self.suffix not in ("", SHADOW_SUFFIX):
            raise ValueError(f"unexpected table suffix {self.suffix!r}")

    def table(self, name: str) -> str:
        return f"{self.schema}.{self.unqualified(name)}"

    def unqualified(self, name: str) -> str:
        """The table's name without its schema (as `pg_indexes` and `RENAME TO` give it)."""
        if name not in PROJECTION_TABLES:
            raise ValueError(f"not a projection table: {name!r}")
        return f"{name}{self.suffix}"

    @property
    def customers(self) -> str:
        return self.table("customers")

    @property
    def invoices(self) -> str:
        return self.table("invoices")

    @property
    def obligations(self) -> str:
        return self.table("obligations")

    @property
    def settlements(self) -> str:
        return self.table("settlements")

    @property
    def disputes(self) -> str:
        return self.table("disputes")

    @property
    def payments(self) -> str:
        return self.table("payments")

    @property
    def allocations(self) -> str:
        return self.table("allocations")

    @property
    def payment_returns(self) -> str:
        return self.table("payment_returns")

    @property
    def open_items(self) -> str:
        return self.table("open_items")

    @property
    def open_totals(self) -> str:
        return self.table("open_totals")

    @property
    def aging_horizons(self) -> str:
        return self.table("aging_horizons")

    @property
    def projection(self) -> str:
        """The name its checkpoints are kept under."""
        return LIVE_PROJECTION + self.suffix

    @property
    def settings(self) -> str:
        return f"{self.schema}.tenant_settings"

    @property
    def fx_rates(self) -> str:
        return f"{self.schema}.fx_rates"

    @classmethod
    def shadow(cls, schema: str) -> Tables:
        return cls(schema, SHADOW_SUFFIX)
