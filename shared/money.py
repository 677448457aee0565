"""Money: integer minor units plus an ISO 4217 currency code.

Why this shape:

* Money is never a float. Binary floating point cannot represent 0.10 exactly, and
  an accounts-receivable ledger must balance to the last minor unit forever.
* The amount is an ``int`` of *minor* units (cents, fils, yen) so that addition,
  subtraction and allocation are exact integer arithmetic with no rounding at all.
* ``Decimal`` appears only where a rate or a percentage is applied; that is the only
  place a result can fall between two minor units, so it is the only place a
  rounding mode is needed, and the caller must always name one explicitly.
* The currency exponent comes from the ISO 4217 table below and is never guessed:
  defaulting an unknown code to 2 decimals would mis-scale a JPY or KWD amount by a
  factor of 100 or 10 and still look like a plausible number.

This module is pure (no I/O) and ``Money`` is a frozen pydantic model, so it can be
embedded directly in event payloads and serializes as
``{"amount": 1234, "currency": "EUR"}``.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, field_validator

__all__ = [
    "CURRENCY_EXPONENTS",
    "CurrencyMismatch",
    "InexactAmount",
    "Money",
    "Rounding",
    "UnknownCurrency",
    "currency_exponent",
    "sum_money",
]


# --------------------------------------------------------------------------- errors


class UnknownCurrency(ValueError):
    """The code is ill-formed or not an active ISO 4217 currency with a minor unit."""


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined or ordered.

    Adding EUR to USD without an explicit conversion is always a bug, never a
    convenience, so it fails loudly.
    """


class InexactAmount(ValueError):
    """A decimal value has more places than the currency allows and no rounding was given.

    Silently dropping fractions of a minor unit is how ledgers drift; the caller
    must either pass an exact value or choose a rounding mode.
    """


# ------------------------------------------------------------------ ISO 4217 table

#: Active ISO 4217 codes (List One) mapped to their minor-unit exponent.
#:
#: Deliberately excluded: codes whose minor unit is "N.A." (precious metals XAU XAG
#: XPD XPT, bond-market units XBA-XBD, XDR, XSU, XUA, test code XTS and "no
#: currency" XXX) because an amount in them has no integer minor unit, and
#: withdrawn codes (e.g. ANG, CUC, HRK, SLL, ZWL) because new money must not be
#: created in them.
CURRENCY_EXPONENTS: Final[Mapping[str, int]] = MappingProxyType(
    {
        # -- exponent 0: no minor unit in use
        "BIF": 0,  # Burundi Franc
        "CLP": 0,  # Chilean Peso
        "DJF": 0,  # Djibouti Franc
        "GNF": 0,  # Guinean Franc
        "ISK": 0,  # Iceland Krona
        "JPY": 0,  # Yen
        "KMF": 0,  # Comorian Franc
        "KRW": 0,  # Won
        "PYG": 0,  # Guarani
        "RWF": 0,  # Rwanda Franc
        "UGX": 0,  # Uganda Shilling
        "UYI": 0,  # Uruguay Peso en Unidades Indexadas (fund code)
        "VND": 0,  # Dong
        "VUV": 0,  # Vatu
        "XAF": 0,  # CFA Franc BEAC
        "XOF": 0,  # CFA Franc BCEAO
        "XPF": 0,  # CFP Franc
        # -- exponent 3
        "BHD": 3,  # Bahraini Dinar
        "IQD": 3,  # Iraqi Dinar
        "JOD": 3,  # Jordanian Dinar
        "KWD": 3,  # Kuwaiti Dinar
        "LYD": 3,  # Libyan Dinar
        "OMR": 3,  # Rial Omani
        "TND": 3,  # Tunisian Dinar
        # -- exponent 4 (index/fund units)
        "CLF": 4,  # Unidad de Fomento
        "UYW": 4,  # Unidad Previsional
        # -- exponent 2: everything else
        "AED": 2,
        "AFN": 2,
        "ALL": 2,
        "AMD": 2,
        "AOA": 2,
        "ARS": 2,
        "AUD": 2,
        "AWG": 2,
        "AZN": 2,
        "BAM": 2,
        "BBD": 2,
        "BDT": 2,
        "BGN": 2,
        "BMD": 2,
        "BND": 2,
        "BOB": 2,
        "BOV": 2,  # Mvdol (fund code)
        "BRL": 2,
        "BSD": 2,
        "BTN": 2,
        "BWP": 2,
        "BYN": 2,
        "BZD": 2,
        "CAD": 2,
        "CDF": 2,
        "CHE": 2,  # WIR Euro (fund code)
        "CHF": 2,
        "CHW": 2,  # WIR Franc (fund code)
        "CNY": 2,
        "COP": 2,
        "COU": 2,  # Unidad de Valor Real (fund code)
        "CRC": 2,
        "CUP": 2,
        "CVE": 2,
        "CZK": 2,
        "DKK": 2,
        "DOP": 2,
        "DZD": 2,
        "EGP": 2,
        "ERN": 2,
        "ETB": 2,
        "EUR": 2,
        "FJD": 2,
        "FKP": 2,
        "GBP": 2,
        "GEL": 2,
        "GHS": 2,
        "GIP": 2,
        "GMD": 2,
        "GTQ": 2,
        "GYD": 2,
        "HKD": 2,
        "HNL": 2,
        "HTG": 2,
        "HUF": 2,
        "IDR": 2,
        "ILS": 2,
        "INR": 2,
        "IRR": 2,
        "JMD": 2,
        "KES": 2,
        "KGS": 2,
        "KHR": 2,
        "KPW": 2,
        "KYD": 2,
        "KZT": 2,
        "LAK": 2,
        "LBP": 2,
        "LKR": 2,
        "LRD": 2,
        "LSL": 2,
        "MAD": 2,
        "MDL": 2,
        "MGA": 2,
        "MKD": 2,
        "MMK": 2,
        "MNT": 2,
        "MOP": 2,
        "MRU": 2,
        "MUR": 2,
        "MVR": 2,
        "MWK": 2,
        "MXN": 2,
        "MXV": 2,  # Mexican Unidad de Inversion (fund code)
        "MYR": 2,
        "MZN": 2,
        "NAD": 2,
        "NGN": 2,
        "NIO": 2,
        "NOK": 2,
        "NPR": 2,
        "NZD": 2,
        "PAB": 2,
        "PEN": 2,
        "PGK": 2,
        "PHP": 2,
        "PKR": 2,
        "PLN": 2,
        "QAR": 2,
        "RON": 2,
        "RSD": 2,
        "RUB": 2,
        "SAR": 2,
        "SBD": 2,
        "SCR": 2,
        "SDG": 2,
        "SEK": 2,
        "SGD": 2,
        "SHP": 2,
        "SLE": 2,
        "SOS": 2,
        "SRD": 2,
        "SSP": 2,
        "STN": 2,
        "SVC": 2,
        "SYP": 2,
        "SZL": 2,
        "THB": 2,
        "TJS": 2,
        "TMT": 2,
        "TOP": 2,
        "TRY": 2,
        "TTD": 2,
        "TWD": 2,
        "TZS": 2,
        "UAH": 2,
        "USD": 2,
        "USN": 2,  # US Dollar (Next day) (fund code)
        "UYU": 2,
        "UZS": 2,
        "VED": 2,
        "VES": 2,
        "WST": 2,
        "XCD": 2,
        "XCG": 2,  # Caribbean Guilder (replaced ANG)
        "YER": 2,
        "ZAR": 2,
        "ZMW": 2,
        "ZWG": 2,  # Zimbabwe Gold (replaced ZWL)
    }
)

_CODE_RE: Final = re.compile(r"[A-Z]{3}")


def currency_exponent(code: str) -> int:
    """Return the number of minor-unit digits of an ISO 4217 currency.

    Input must already be three uppercase ASCII letters: lowercase is rejected
    rather than normalized, so that one canonical spelling ends up in events.
    """
    if not isinstance(code, str) or _CODE_RE.fullmatch(code) is None:
        raise UnknownCurrency(f"ill-formed currency code {code!r}: need 3 uppercase letters")
    try:
        return CURRENCY_EXPONENTS[code]
    except KeyError:
        raise UnknownCurrency(f"unknown ISO 4217 currency code {code!r}") from None


# ------------------------------------------------------------------------ rounding


class Rounding(StrEnum):
    """Explicit rounding modes; every lossy operation must name one.

    Values are stable strings so a policy (e.g. "tax rounds half_up") can itself be
    stored in configuration or events.
    """

    HALF_EVEN = "half_even"  # banker's rounding: ties to the even neighbour
    HALF_UP = "half_up"  # commercial rounding: ties away from zero
    HALF_DOWN = "half_down"  # ties toward zero
    UP = "up"  # always away from zero
    DOWN = "down"  # always toward zero (truncate)
    CEILING = "ceiling"  # toward +infinity
    FLOOR = "floor"  # toward -infinity

    @property
    def decimal_mode(self) -> str:
        """The equivalent ``decimal`` module rounding constant."""
        return _DECIMAL_MODES[self]


_DECIMAL_MODES: Final[Mapping[Rounding, str]] = MappingProxyType(
    {
        Rounding.HALF_EVEN: decimal.ROUND_HALF_EVEN,
        Rounding.HALF_UP: decimal.ROUND_HALF_UP,
        Rounding.HALF_DOWN: decimal.ROUND_HALF_DOWN,
        Rounding.UP: decimal.ROUND_UP,
        Rounding.DOWN: decimal.ROUND_DOWN,
        Rounding.CEILING: decimal.ROUND_CEILING,
        Rounding.FLOOR: decimal.ROUND_FLOOR,
    }
)


# -------------------------------------------------------------- decimal internals


def _to_decimal(value: object, what: str) -> Decimal:
    """Coerce an int/str/Decimal to a finite Decimal; refuse floats and bools outright.

    A float has already lost precision before we see it, so accepting one would
    hide the bug instead of surfacing it.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(
            f"{what} must be Decimal, int or str (never float/bool), got {type(value).__name__}"
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    else:
        try:
            result = Decimal(value)
        except decimal.InvalidOperation:
            raise ValueError(f"{what} is not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"{what} must be finite, got {value!r}")
    return result


def _digits(value: Decimal) -> int:
    return len(value.as_tuple().digits)


def _exact_context(*operands: Decimal) -> decimal.Context:
    """A context precise enough that multiplying/scaling the operands never rounds.

    The default 28-digit context would silently round large products; here any
    inexact step traps instead.
    """
    return decimal.Context(
        prec=sum(_digits(d) for d in operands) + 2,
        rounding=decimal.ROUND_HALF_EVEN,
        Emax=decimal.MAX_EMAX,
        Emin=decimal.MIN_EMIN,
        traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow],
    )


def _exact_product(a: Decimal, b: Decimal, scale: int) -> Decimal:
    """Exactly ``a * b * 10**scale``."""
    ctx = _exact_context(a, b)
    return ctx.scaleb(ctx.multiply(a, b), Decimal(scale))


def _round_to_int(value: Decimal, rounding: Rounding) -> int:
    """Round an exact decimal to an integer with the given mode."""
    if not isinstance(rounding, Rounding):
        raise TypeError(f"rounding must be a Rounding, got {type(rounding).__name__}")
    ctx = decimal.Context(
        prec=max(value.adjusted(), 0) + 2,
        Emax=decimal.MAX_EMAX,
        Emin=decimal.MIN_EMIN,
        traps=[decimal.InvalidOperation, decimal.Overflow],
    )
    return int(value.quantize(Decimal(1), rounding=rounding.decimal_mode, context=ctx))


def _is_integral(value: Decimal) -> bool:
    return value == value.to_integral_value()


def _check_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be int (never float/bool), got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- Money


class Money(BaseModel):
    """An immutable amount of money: integer minor units in one ISO 4217 currency.

    ``==`` is plain value equality (different currencies are simply unequal);
    ordering across currencies raises :class:`CurrencyMismatch`, because "is 5 EUR
    less than 6 USD" has no answer without a rate.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: StrictInt
    """Minor units (cents for EUR, yen for JPY, fils for KWD)."""
    currency: StrictStr
    """ISO 4217 alphabetic code, uppercase."""

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        currency_exponent(value)
        return value

    # ---------------------------------------------------------------- constructors

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in ``currency``; the identity for sums."""
        currency_exponent(currency)
        return cls(amount=0, currency=currency)

    @classmethod
    def of_minor(cls, amount: int, currency: str) -> Money:
        """Build from an integer count of minor units (e.g. 1234 -> 12.34 EUR)."""
        _check_int(amount, "amount")
        currency_exponent(currency)
        return cls(amount=amount, currency=currency)

    @classmethod
    def from_decimal(
        cls,
        value: Decimal | str | int,
        currency: str,
        rounding: Rounding | None = None,
    ) -> Money:
        """Build from a major-unit value such as ``Decimal("12.34")`` or ``"12.34"``.

        Exact values never need a rounding mode. If the value has more places than
        the currency allows, ``rounding`` decides; without one, :class:`InexactAmount`
        is raised rather than guessing.
        """
        exponent = currency_exponent(currency)
        dec = _to_decimal(value, "value")
        scaled = _exact_product(dec, Decimal(1), exponent)
        if _is_integral(scaled):
            return cls(amount=int(scaled), currency=currency)
        if rounding is None:
            raise InexactAmount(
                f"{value!r} has more than {exponent} decimal places for {currency}; "
                "pass an explicit rounding"
            )
        return cls(amount=_round_to_int(scaled, rounding), currency=currency)

    # ------------------------------------------------------------------- inspection

    @property
    def exponent(self) -> int:
        """Minor-unit digits of this amount's currency."""
        return currency_exponent(self.currency)

    def to_decimal(self) -> Decimal:
        """Major-unit value with exactly ``exponent`` places (1234 EUR-cents -> 12.34)."""
        digits = tuple(int(ch) for ch in str(abs(self.amount)))
        return Decimal((1 if self.amount < 0 else 0, digits, -self.exponent))

    def __str__(self) -> str:
        return f"{self.to_decimal():f} {self.currency}"

    def is_zero(self) -> bool:
        """True for exactly zero minor units."""
        return self.amount == 0

    def is_positive(self) -> bool:
        """True when strictly greater than zero."""
        return self.amount > 0

    def is_negative(self) -> bool:
        """True when strictly less than zero (e.g. a credit balance)."""
        return self.amount < 0

    # ------------------------------------------------------------------- arithmetic

    # Operands are typed ``Money`` so mypy flags ``money + 1``; at runtime a
    # non-Money still gets ``NotImplemented`` and hence a TypeError.

    def _same_currency(self, other: Money, op: str) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(
                f"cannot {op} {self.currency} and {other.currency} without conversion"
            )

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "add")
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "subtract")
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(amount=abs(self.amount), currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount >= other.amount

    # ------------------------------------------------------ rates and percentages

    def multiply(self, factor: Decimal | int | str, rounding: Rounding) -> Money:
        """Scale by ``factor`` (e.g. a quantity or unit price ratio), rounding explicitly."""
        dec = _to_decimal(factor, "factor")
        product = _exact_product(Decimal(self.amount), dec, 0)
        return Money(amount=_round_to_int(product, rounding), currency=self.currency)

    def percentage(self, percent: Decimal | int | str, rounding: Rounding) -> Money:
        """``percent`` % of this amount, e.g. ``percentage("2", HALF_UP)`` for a 2% discount."""
        dec = _to_decimal(percent, "percent")
        product = _exact_product(Decimal(self.amount), dec, -2)
        return Money(amount=_round_to_int(product, rounding), currency=self.currency)

    def convert(self, to_currency: str, rate: Decimal | str, rounding: Rounding) -> Money:
        """Convert at ``rate`` (units of ``to_currency`` per one unit of this currency).

        Works on major-unit values so that differing exponents are handled:
        1000 JPY at 0.0061 -> 6.10 EUR; 100.00 EUR at 1.0845 -> 108.45 USD.
        """
        target_exponent = currency_exponent(to_currency)
        dec = _to_decimal(rate, "rate")
        if dec <= 0:
            raise ValueError(f"exchange rate must be positive, got {rate!r}")
        product = _exact_product(Decimal(self.amount), dec, target_exponent - self.exponent)
        return Money(amount=_round_to_int(product, rounding), currency=to_currency)

    # ------------------------------------------------------------------- allocation

    def allocate(self, ratios: Sequence[int | Decimal]) -> list[Money]:
        """Split into parts proportional to ``ratios`` that sum exactly to ``self``.

        Largest-remainder method: each part gets the floor of its exact share of
        ``abs(amount)``; the leftover minor units go one each to the parts with the
        largest fractional remainders, earlier positions winning ties. The sign is
        applied afterwards so ``allocate(-x) == [-p for p in allocate(x)]``. No money
        is ever created or lost, which is what makes it safe for instalments and
        for spreading a payment over invoice lines.
        """
        if isinstance(ratios, str | bytes) or not isinstance(ratios, Sequence):
            raise TypeError("ratios must be a sequence of int or Decimal")
        if not ratios:
            raise ValueError("ratios must not be empty")
        weights: list[Fraction] = []
        for ratio in ratios:
            if isinstance(ratio, bool) or not isinstance(ratio, int | Decimal):
                raise TypeError(
                    f"ratio must be int or Decimal (never float/bool), got {type(ratio).__name__}"
                )
            if isinstance(ratio, Decimal) and not ratio.is_finite():
                raise ValueError(f"ratio must be finite, got {ratio!r}")
            if ratio < 0:
                raise ValueError(f"ratios must not be negative, got {ratio!r}")
            weights.append(Fraction(ratio))
        total = sum(weights, Fraction(0))
        if total == 0:
            raise ValueError("at least one ratio must be positive")

        magnitude = abs(self.amount)
        shares = [magnitude * w / total for w in weights]
        parts = [s.numerator // s.denominator for s in shares]
        leftover = magnitude - sum(parts)
        by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
        for i in by_remainder[:leftover]:
            parts[i] += 1

        sign = -1 if self.amount < 0 else 1
        return [Money(amount=sign * p, currency=self.currency) for p in parts]

    def split(self, n: int) -> list[Money]:
        """Split into ``n`` near-equal parts (differing by at most one minor unit)."""
        _check_int(n, "n")
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return self.allocate([1] * n)


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """Sum amounts that must all be in ``currency``; an empty input sums to zero.

    The currency is required because an empty sum would otherwise have none.
    """
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total
