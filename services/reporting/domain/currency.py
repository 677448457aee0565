"""Converting report amounts into the tenant's reporting currency."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from shared.money import Money, Rounding


class MissingRates(ValueError):
    def __init__(self, target: str, currencies: Iterable[str]) -> None:
        self.target = target
        self.currencies = sorted(set(currencies))
        super().__init__(
            f"no exchange rate to {target} for {', '.join(self.currencies)}: "
            "add rates (PUT /v1/fx-rates) or ask for one currency"
        )


@dataclass(frozen=True)
class Converter:
    """Rates are units of `target` per one unit of each currency (the latest on or before the
    report's date); amounts are rounded half up to the target's minor unit, one amount at a time."""

    target: str
    rates: Mapping[str, Decimal]

    def missing(self, currencies: Iterable[str]) -> list[str]:
        return sorted({c for c in currencies if c != self.target and c not in self.rates})

    def require(self, currencies: Iterable[str]) -> None:
        missing = self.missing(currencies)
        if missing:
            raise MissingRates(self.target, missing)

    def convert(self, amount: int, currency: str) -> int:
        if currency == self.target:
            return amount
        if currency not in self.rates:
            raise MissingRates(self.target, [currency])
        return (
            Money.of_minor(amount, currency)
            .convert(self.target, self.rates[currency], Rounding.HALF_UP)
            .amount
        )
