"""An explainable credit risk score per customer, from how it has paid, with a recommended limit.

Pure: no I/O and no clock. The caller passes one ``InvoiceBehaviour`` per invoice issued to the
customer (kept from the invoice stream: ``paid_on`` from ``InvoicePaid``, ``reversals`` counting
``PaymentUnapplied`` with reason chargeback, bounced or reversal, ``disputed`` from
``DisputeOpened``) and the day of the assessment, ``as_of``.

``score`` adds up the points of six factors (plus a seventh for a thin file), each explained in
plain English with its numbers:

==================== ======================================================================
``average_days_late`` mean days late of the paid invoices (``max(0, paid_on - due_date)``) and
                      the open overdue ones (``as_of - due_date``)
``late_share``        share of those paid late or still open past their due date
``trend``             average days late of the most recent half (by due date) minus the older
                      half; only a worsening trend adds points
``disputes``          share of all invoices disputed
``reversals``         number of payment reversals (chargebacks, bounced payments), heavily
``overdue_exposure``  share of the open amount that is overdue as of ``as_of``
``thin_file``         fewer than 3 invoices: a fixed contribution, since there is too little
                      history to judge
==================== ======================================================================

Invoices that are neither paid nor overdue (not yet due, or closed without payment by a credit
note, void or write-off) do not count towards lateness. Only invoices in the assessment's
``currency`` count at all; invoices in other currencies are ignored until amounts can be
converted at recorded rates (the same rule as credit exposure). Invoices issued after ``as_of``
are ignored too.

Points are worked out exactly (fractions, never floats) and capped at 100 per factor; the score
is the sum rounded half up, shared out over the factors as whole points (largest remainder, so
the factors' points always add up to the score before it is capped at 100). The score is
deterministic (the order of the invoices does not matter) and monotone in lateness: paying any
invoice later never lowers it (``RiskWeights`` refuses weights that could break this).

The recommended limit is the typical monthly volume (the amounts of invoices issued in the 90
days up to and including ``as_of``, divided by 3) times the band's multiplier (low 3, medium 2,
high 1, severe 0 = cash in advance), rounded down to a whole major unit.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final, NamedTuple

from shared.contracts.credit import RiskBand, RiskFactorRecord, RiskScoreChanged
from shared.contracts.fields import format_decimal
from shared.events.registry import EventPayload, build_event
from shared.money import CurrencyMismatch, Money, Rounding, currency_exponent, sum_money

__all__ = [
    "BAND_UPPER_BOUNDS",
    "DEFAULT_WEIGHTS",
    "RECOMMENDATION_MOVE",
    "THIN_FILE_INVOICES",
    "VOLUME_MONTHS",
    "VOLUME_WINDOW_DAYS",
    "FactorCode",
    "InvoiceBehaviour",
    "RiskAssessment",
    "RiskFactor",
    "RiskSnapshot",
    "RiskWeights",
    "reassess",
    "risk_band",
    "score",
]

THIN_FILE_INVOICES: Final = 3
"""With fewer invoices than this (in the currency) the file is thin."""
VOLUME_WINDOW_DAYS: Final = 90
"""The recommended limit looks at invoices issued in the 90 days up to and including ``as_of``…"""
VOLUME_MONTHS: Final = 3
"""…which make 3 months of volume."""
BAND_UPPER_BOUNDS: Final[tuple[tuple[int, RiskBand], ...]] = (
    (25, "low"),
    (50, "medium"),
    (75, "high"),
)
"""A score below the bound is in that band; 75 and above is ``severe``."""

FactorCode = str
"""``average_days_late``, ``late_share``, ``trend``, ``disputes``, ``reversals``,
``overdue_exposure`` or ``thin_file``."""

_MAX_FACTOR_POINTS: Final = Fraction(100)
_ZERO: Final = Fraction(0)


def risk_band(score: int) -> RiskBand:
    """``low`` below 25, ``medium`` below 50, ``high`` below 75, ``severe`` from 75."""
    for bound, band in BAND_UPPER_BOUNDS:
        if score < bound:
            return band
    return "severe"


# ============================================================================ inputs


@dataclasses.dataclass(frozen=True)
class InvoiceBehaviour:
    """What one issued invoice says about how the customer pays.

    ``paid_on`` is the day the invoice was paid in full (``InvoicePaid``); it is ``None`` while
    anything is open, so a reopened invoice has none. ``open_amount`` is what is still owed
    (zero once paid, credited, voided or written off); ``reversals`` counts its payments that
    were reversed (chargebacks, bounced payments and other reversals).
    """

    invoice_id: uuid.UUID
    amount: Money
    issue_date: date
    due_date: date
    paid_on: date | None
    open_amount: Money
    disputed: bool
    reversals: int

    def __post_init__(self) -> None:
        if self.open_amount.currency != self.amount.currency:
            raise CurrencyMismatch(
                f"invoice {self.invoice_id}: open amount in {self.open_amount.currency} for an "
                f"invoice in {self.amount.currency}"
            )
        if self.amount.is_negative() or self.open_amount.is_negative():
            raise ValueError(f"invoice {self.invoice_id}: amounts cannot be negative")
        if self.due_date < self.issue_date:
            raise ValueError(f"invoice {self.invoice_id}: due {self.due_date} before issue")
        if self.paid_on is not None and not self.open_amount.is_zero():
            raise ValueError(
                f"invoice {self.invoice_id}: paid on {self.paid_on} but {self.open_amount} open"
            )
        if isinstance(self.reversals, bool) or not isinstance(self.reversals, int):
            raise TypeError(f"invoice {self.invoice_id}: reversals must be an int")
        if self.reversals < 0:
            raise ValueError(f"invoice {self.invoice_id}: reversals cannot be negative")

    @property
    def currency(self) -> str:
        return self.amount.currency


def _check_weight(value: Decimal, name: str) -> None:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal (never a float), got {type(value).__name__}")
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name} must be a finite, non-negative Decimal, got {value!r}")


@dataclasses.dataclass(frozen=True)
class RiskWeights:
    """How many points each factor adds; a tenant may tune them. Defaults in brackets.

    Every weight is a non-negative Decimal. So that paying an invoice later can never lower the
    score, ``trend_points_per_day`` may be at most a third of ``points_per_day_late``: a later
    payment in the older half of three invoices lowers the trend by three times as many days as
    it raises the average.
    """

    points_per_day_late: Decimal = Decimal(1)
    """[1] per day of ``average_days_late``: 30 days late on average is 30 points."""
    late_share_points: Decimal = Decimal(25)
    """[25] when every paid or overdue invoice was late; proportionally less otherwise."""
    trend_points_per_day: Decimal = Decimal("0.25")
    """[0.25] per day the recent half is later than the older half…"""
    trend_max_points: Decimal = Decimal(10)
    """[10] …up to this many points."""
    dispute_share_points: Decimal = Decimal(20)
    """[20] when every invoice was disputed; proportionally less otherwise."""
    points_per_reversal: Decimal = Decimal(15)
    """[15] per reversed payment (a chargeback or a bounced payment is a strong signal)…"""
    reversal_max_points: Decimal = Decimal(60)
    """[60] …up to this many points."""
    overdue_exposure_points: Decimal = Decimal(20)
    """[20] when all of the open amount is overdue; proportionally less otherwise."""
    thin_file_points: Decimal = Decimal(20)
    """[20] with fewer than 3 invoices: alone, a customer with no bad facts stays just ``low``."""
    limit_multiplier_low: Decimal = Decimal(3)
    """[3] months of volume recommended as the limit in the ``low`` band…"""
    limit_multiplier_medium: Decimal = Decimal(2)
    """[2] …in ``medium``…"""
    limit_multiplier_high: Decimal = Decimal(1)
    """[1] …in ``high``…"""
    limit_multiplier_severe: Decimal = Decimal(0)
    """[0] …and in ``severe`` (cash in advance)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_weight(getattr(self, field.name), field.name)
        if self.trend_points_per_day * 3 > self.points_per_day_late:
            raise ValueError(
                "trend_points_per_day must be at most a third of points_per_day_late, or paying "
                "an invoice later could lower the score"
            )
        multipliers = [self.multiplier(band) for band in ("low", "medium", "high", "severe")]
        if multipliers != sorted(multipliers, reverse=True):
            raise ValueError("a riskier band cannot have a larger limit multiplier")

    def multiplier(self, band: RiskBand) -> Decimal:
        """Months of volume recommended as the credit limit in ``band``."""
        return {
            "low": self.limit_multiplier_low,
            "medium": self.limit_multiplier_medium,
            "high": self.limit_multiplier_high,
            "severe": self.limit_multiplier_severe,
        }[band]


DEFAULT_WEIGHTS: Final = RiskWeights()


# ============================================================================ outputs


@dataclasses.dataclass(frozen=True)
class RiskFactor:
    """One factor of a score; ``value`` in the factor's unit (days, a 0..1 share or a count)."""

    code: FactorCode
    label: str
    value: Decimal
    points: int
    explanation: str

    def to_record(self) -> RiskFactorRecord:
        return RiskFactorRecord(
            code=self.code,
            label=self.label,
            value=self.value,
            points=self.points,
            explanation=self.explanation,
        )


@dataclasses.dataclass(frozen=True)
class RiskAssessment:
    """A customer's risk as of ``as_of``: the score, its band, the factors that make it up and
    the recommended limit (``None`` without recent volume), all in ``currency``."""

    score: int
    band: RiskBand
    factors: tuple[RiskFactor, ...]
    recommended_limit: Money | None
    as_of: date
    currency: str
    current_limit: Money | None
    monthly_volume: Money | None
    """The 90-day volume divided by 3, rounded down to the minor unit; ``None`` without one."""
    limit_explanation: str

    def factor(self, code: FactorCode) -> RiskFactor | None:
        return next((f for f in self.factors if f.code == code), None)


class RiskSnapshot(NamedTuple):
    """What ``reassess`` compares: e.g. rebuilt from the last ``RiskScoreChanged``."""

    score: int
    band: RiskBand
    recommended_limit: Money | None


# ============================================================================ arithmetic


def _round_half_up(value: Fraction) -> int:
    """Nearest integer, ties away from zero."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def _decimal(value: Fraction, places: int) -> Decimal:
    """``value`` rounded half up to ``places`` decimal places, exactly."""
    return Decimal(_round_half_up(value * 10**places)).scaleb(-places)


def _days(value: Fraction) -> str:
    return format_decimal(_decimal(value, 2))


def _percent(share: Fraction) -> str:
    return f"{format_decimal(_decimal(share * 100, 2))}%"


def _money(value: Money) -> str:
    return f"{value.to_decimal():,f} {value.currency}"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _mean(values: Sequence[int]) -> Fraction:
    return Fraction(sum(values), len(values)) if values else _ZERO


def _whole_points(contributions: Sequence[Fraction]) -> list[int]:
    """Whole points per factor adding up to the total rounded half up (largest remainder;
    earlier factors win ties)."""
    floors = [math.floor(c) for c in contributions]
    leftover = _round_half_up(sum(contributions, _ZERO)) - sum(floors)
    by_remainder = sorted(
        range(len(contributions)), key=lambda i: (-(contributions[i] - floors[i]), i)
    )
    for i in by_remainder[:leftover]:
        floors[i] += 1
    return floors


# ============================================================================ factors


@dataclasses.dataclass(frozen=True)
class _Measured:
    """A factor before its points are made whole."""

    code: FactorCode
    label: str
    value: Decimal
    contribution: Fraction
    explanation: str


@dataclasses.dataclass(frozen=True)
class _Lateness:
    """An invoice whose lateness is known: paid, or open past its due date."""

    days_late: int
    paid: bool


def _lateness(invoice: InvoiceBehaviour, as_of: date) -> _Lateness | None:
    if invoice.paid_on is not None:
        return _Lateness(max(0, (invoice.paid_on - invoice.due_date).days), paid=True)
    if invoice.open_amount.is_positive() and as_of > invoice.due_date:
        return _Lateness((as_of - invoice.due_date).days, paid=False)
    return None


def _capped(value: Fraction, cap: Fraction = _MAX_FACTOR_POINTS) -> Fraction:
    return min(value, cap, _MAX_FACTOR_POINTS)


def _average_days_late(known: Sequence[_Lateness], w: RiskWeights) -> _Measured:
    mean = _mean([k.days_late for k in known])
    if not known:
        why = "no invoice has been paid or fallen overdue yet, so there is no lateness to average"
    else:
        paid = sum(1 for k in known if k.paid)
        overdue = len(known) - paid
        total = sum(k.days_late for k in known)
        if not overdue:
            which = _count(paid, "paid invoice")
        elif not paid:
            which = _count(overdue, "overdue invoice")
        else:
            which = f"{len(known)} paid or overdue invoices ({paid} paid, {overdue} overdue)"
        verb = "was" if len(known) == 1 else "were"
        why = (
            f"{which} {verb} {_days(mean)} days late on average "
            f"({_count(total, 'day')} late in all)"
        )
    return _Measured(
        "average_days_late",
        "Average days late",
        _decimal(mean, 2),
        _capped(mean * Fraction(w.points_per_day_late)),
        why,
    )


def _late_share(known: Sequence[_Lateness], w: RiskWeights) -> _Measured:
    paid_late = sum(1 for k in known if k.paid and k.days_late > 0)
    overdue = sum(1 for k in known if not k.paid)
    late = paid_late + overdue
    share = Fraction(late, len(known)) if known else _ZERO
    if not known:
        why = "no invoice has been paid or fallen overdue yet"
    else:
        verb, its = ("was", "its") if late == 1 else ("were", "their")
        if overdue == 0:
            what = "paid late"
        elif paid_late == 0:
            what = f"still open past {its} due date"
        else:
            what = f"paid late ({paid_late}) or still open past their due date ({overdue})"
        why = f"{late} of {_count(len(known), 'invoice')} ({_percent(share)}) {verb} {what}"
    return _Measured(
        "late_share",
        "Share of invoices paid late",
        _decimal(share, 4),
        _capped(share * Fraction(w.late_share_points)),
        why,
    )


def _trend(known: Sequence[_Lateness], w: RiskWeights) -> _Measured:
    half = len(known) // 2
    if half == 0:
        return _Measured(
            "trend",
            "Trend in lateness",
            _decimal(_ZERO, 2),
            _ZERO,
            "fewer than 2 paid or overdue invoices, so there is no trend yet",
        )
    older = _mean([k.days_late for k in known[:half]])
    recent = _mean([k.days_late for k in known[-half:]])
    change = recent - older
    if change > 0:
        direction = f"{_days(change)} days worse"
    elif change < 0:
        direction = f"{_days(-change)} days better (an improving trend adds no points)"
    else:
        direction = "no change"
    if half == 1:
        halves = f"the invoice due most recently was {_days(recent)} days late against "
        halves += f"{_days(older)} for the one due before"
    else:
        halves = f"the {half} invoices due most recently were {_days(recent)} days late on "
        halves += f"average against {_days(older)} for the {half} due before"
    why = f"{halves}: {direction}"
    if len(known) % 2:
        why += " (the middle invoice is in neither half)"
    points = max(_ZERO, change) * Fraction(w.trend_points_per_day)
    return _Measured(
        "trend",
        "Trend in lateness",
        _decimal(change, 2),
        _capped(points, Fraction(w.trend_max_points)),
        why,
    )


def _disputes(book: Sequence[InvoiceBehaviour], w: RiskWeights) -> _Measured:
    disputed = sum(1 for i in book if i.disputed)
    share = Fraction(disputed, len(book)) if book else _ZERO
    if not book:
        why = "no invoices on file"
    elif disputed == 0:
        why = f"none of {_count(len(book), 'invoice')} was disputed"
    else:
        verb = "was" if disputed == 1 else "were"
        why = f"{disputed} of {_count(len(book), 'invoice')} ({_percent(share)}) {verb} disputed"
    return _Measured(
        "disputes",
        "Disputed invoices",
        _decimal(share, 4),
        _capped(share * Fraction(w.dispute_share_points)),
        why,
    )


def _reversals(book: Sequence[InvoiceBehaviour], w: RiskWeights) -> _Measured:
    count = sum(i.reversals for i in book)
    if count == 0:
        why = "no payment has been reversed"
    else:
        invoices = sum(1 for i in book if i.reversals)
        why = (
            f"{_count(count, 'payment')} {'was' if count == 1 else 'were'} reversed "
            f"(chargebacks, bounced payments or other reversals) on "
            f"{_count(invoices, 'invoice')}"
        )
    return _Measured(
        "reversals",
        "Payment reversals",
        Decimal(count),
        _capped(count * Fraction(w.points_per_reversal), Fraction(w.reversal_max_points)),
        why,
    )


def _overdue_exposure(
    book: Sequence[InvoiceBehaviour], as_of: date, currency: str, w: RiskWeights
) -> _Measured:
    open_total = sum_money((i.open_amount for i in book), currency)
    overdue = sum_money((i.open_amount for i in book if as_of > i.due_date), currency)
    share = Fraction(overdue.amount, open_total.amount) if open_total.is_positive() else _ZERO
    if not open_total.is_positive():
        why = f"nothing is open as of {as_of.isoformat()}"
    else:
        why = (
            f"{_money(overdue)} of the {_money(open_total)} open ({_percent(share)}) is overdue "
            f"as of {as_of.isoformat()}"
        )
    return _Measured(
        "overdue_exposure",
        "Overdue share of open amount",
        _decimal(share, 4),
        _capped(share * Fraction(w.overdue_exposure_points)),
        why,
    )


def _thin_file(book: Sequence[InvoiceBehaviour], w: RiskWeights) -> _Measured:
    return _Measured(
        "thin_file",
        "Thin credit file",
        Decimal(len(book)),
        _capped(Fraction(w.thin_file_points)),
        f"{'only ' + _count(len(book), 'invoice') if book else 'no invoices'} on file "
        f"(fewer than {THIN_FILE_INVOICES}): "
        f"{format_decimal(w.thin_file_points)} points are added because there is too little "
        "history to judge",
    )


# ============================================================================ the limit


def _recommend(
    book: Sequence[InvoiceBehaviour],
    *,
    as_of: date,
    currency: str,
    band: RiskBand,
    limit: Money | None,
    w: RiskWeights,
) -> tuple[Money | None, Money | None, str]:
    """(recommended limit, monthly volume, why)."""
    since = as_of - timedelta(days=VOLUME_WINDOW_DAYS)
    window = f"the {VOLUME_WINDOW_DAYS} days to {as_of.isoformat()}"
    volume = sum_money((i.amount for i in book if i.issue_date > since), currency)
    current = f"the current limit is {_money(limit)}" if limit is not None else "no limit is set"
    if not volume.is_positive():
        return (
            None,
            None,
            f"nothing was invoiced in {currency} in {window}: no recommendation; {current}",
        )
    multiplier = w.multiplier(band)
    # Months of volume times the multiplier, in minor units (explicitly rounded down), then
    # divided by the months and rounded down to a whole major unit:
    # floor(floor(v * m) / (3 * u)) == floor(v * m / (3 * u)) for whole v >= 0.
    scaled = volume.multiply(multiplier, Rounding.DOWN)
    unit = 10 ** currency_exponent(currency)
    recommended = Money.of_minor(scaled.amount // (VOLUME_MONTHS * unit) * unit, currency)
    monthly = Money.of_minor(volume.amount // VOLUME_MONTHS, currency)
    advance = " (cash in advance)" if recommended.is_zero() else ""
    why = (
        f"{_money(volume)} invoiced in {window} is {_money(monthly)} a month; "
        f"times {format_decimal(multiplier)} for {band} risk is {_money(recommended)}{advance}, "
        f"rounded down to whole {currency}; {current}"
    )
    return recommended, monthly, why


# ============================================================================ score


def _due_order(invoice: InvoiceBehaviour) -> tuple[date, date, uuid.UUID]:
    return (invoice.due_date, invoice.issue_date, invoice.invoice_id)


def score(
    invoices: Sequence[InvoiceBehaviour],
    *,
    as_of: date,
    limit: Money | None,
    currency: str,
    weights: RiskWeights = DEFAULT_WEIGHTS,
) -> RiskAssessment:
    """Assess the customer's risk as of ``as_of`` from its invoices in ``currency``.

    ``limit`` is the current credit limit (in ``currency``), mentioned next to the
    recommendation. Raises ``ValueError`` if an invoice id repeats and ``CurrencyMismatch`` if
    the limit is in another currency.
    """
    currency_exponent(currency)
    if limit is not None and limit.currency != currency:
        raise CurrencyMismatch(f"the limit is in {limit.currency}, the assessment in {currency}")
    ids = [i.invoice_id for i in invoices]
    if len(set(ids)) != len(ids):
        raise ValueError("each invoice may appear only once")

    book = sorted(
        (i for i in invoices if i.currency == currency and i.issue_date <= as_of), key=_due_order
    )
    known = [k for k in (_lateness(i, as_of) for i in book) if k is not None]
    measured = [
        _average_days_late(known, weights),
        _late_share(known, weights),
        _trend(known, weights),
        _disputes(book, weights),
        _reversals(book, weights),
        _overdue_exposure(book, as_of, currency, weights),
    ]
    if len(book) < THIN_FILE_INVOICES:
        measured.append(_thin_file(book, weights))
    points = _whole_points([m.contribution for m in measured])
    factors = tuple(
        RiskFactor(m.code, m.label, m.value, p, m.explanation)
        for m, p in zip(measured, points, strict=True)
    )
    total = min(100, sum(points))
    band = risk_band(total)
    recommended, monthly, why = _recommend(
        book, as_of=as_of, currency=currency, band=band, limit=limit, w=weights
    )
    return RiskAssessment(
        score=total,
        band=band,
        factors=factors,
        recommended_limit=recommended,
        as_of=as_of,
        currency=currency,
        current_limit=limit,
        monthly_volume=monthly,
        limit_explanation=why,
    )


# ============================================================================ decide


PreviousRisk = RiskAssessment | RiskScoreChanged | RiskSnapshot | tuple[int, RiskBand] | None
"""The last published risk: an assessment, the last ``RiskScoreChanged``, a ``RiskSnapshot``
or a bare ``(score, band)`` pair (then the recommended limit is not compared), or ``None``."""


RECOMMENDATION_MOVE: Final = Fraction(1, 10)
"""How far the recommended limit must move from the last published one to be news. It follows
the volume invoiced, so it moved with every invoice, and each issued invoice published a
RiskScoreChanged whose score and band had not changed (a third of the credit service's events)."""


def _recommendation_moved(before: Money | None, now: Money | None) -> bool:
    """It appeared, went away, changed currency, or moved by RECOMMENDATION_MOVE or more."""
    if before is None or now is None:
        return before is not now
    if before.currency != now.currency or not before.is_positive():
        return before != now
    moved = abs(now.amount - before.amount)
    return moved * RECOMMENDATION_MOVE.denominator >= before.amount * RECOMMENDATION_MOVE.numerator


def reassess(
    previous: PreviousRisk, assessment: RiskAssessment, customer_id: str
) -> list[EventPayload]:
    """``[RiskScoreChanged]`` when the score or band differs from ``previous`` or the
    recommended limit moved (``RECOMMENDATION_MOVE``), always for the first assessment, else
    ``[]``: reprocessing the same facts publishes nothing. Changed explanations alone are not
    news."""
    previous_score: int | None = None
    if previous is not None:
        if isinstance(previous, RiskAssessment | RiskScoreChanged | RiskSnapshot):
            score_before, band_before = previous.score, previous.band
            moved = _recommendation_moved(previous.recommended_limit, assessment.recommended_limit)
        else:
            score_before, band_before = previous
            moved = False
        if (score_before, band_before) == (assessment.score, assessment.band) and not moved:
            return []
        previous_score = score_before
    return [
        build_event(
            RiskScoreChanged,
            customer_id=customer_id,
            score=assessment.score,
            previous_score=previous_score,
            band=assessment.band,
            factors=[f.to_record() for f in assessment.factors],
            recommended_limit=assessment.recommended_limit,
            as_of=assessment.as_of,
        )
    ]
