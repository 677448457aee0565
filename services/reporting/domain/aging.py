"""Aging: which parts of each invoice are open on a date, and how old they are.

An invoice is a set of dated obligations (its instalments, and any late fee, due the day it is
charged). Everything that lowers the receivable (payments, discounts, credit notes, write-offs,
a void) settles the obligations in due-date order, oldest first. A dispute open on the date takes
its amount out of the open obligations, again oldest first, and is reported in its own column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from itertools import pairwise


class Basis(StrEnum):
    DUE_DATE = "due_date"
    INVOICE_DATE = "invoice_date"


@dataclass(frozen=True)
class Bucket:
    key: str
    label: str
    from_days: int | None  # inclusive; None = open-ended below
    to_days: int | None  # inclusive; None = open-ended above

    def holds(self, days: int) -> bool:
        return (self.from_days is None or days >= self.from_days) and (
            self.to_days is None or days <= self.to_days
        )


DEFAULT_BOUNDARIES = (30, 60, 90)
_BOUNDARIES = re.compile(r"^\d{1,4}(,\d{1,4}){0,19}$")


def parse_boundaries(spec: str | None) -> tuple[int, ...]:
    """`"30,60,90"` -> (30, 60, 90): strictly increasing positive day counts, at most 20."""
    if spec is None or spec == "":
        return DEFAULT_BOUNDARIES
    if not _BOUNDARIES.match(spec):
        raise ValueError("buckets must be comma-separated day counts, e.g. 30,60,90")
    values = tuple(int(v) for v in spec.split(","))
    if values[0] < 1 or any(b <= a for a, b in pairwise(values)):
        raise ValueError("bucket boundaries must be positive and strictly increasing")
    return values


def buckets_for(basis: Basis, boundaries: Sequence[int] = DEFAULT_BOUNDARIES) -> list[Bucket]:
    """By due date: current (not yet due), 1-30, 31-60, 61-90, 90+ days past due.
    By invoice date: 0-30, 31-60, 61-90, 90+ days since the invoice date."""
    result: list[Bucket] = []
    low = 1
    if basis is Basis.DUE_DATE:
        result.append(Bucket("current", "Current", None, 0))
    else:
        low = 0
    for boundary in boundaries:
        key = f"{low}-{boundary}"
        result.append(Bucket(key, key, low, boundary))
        low = boundary + 1
    last = f"{boundaries[-1]}+"
    result.append(Bucket(last, last, low, None))
    return result


@dataclass(frozen=True)
class Obligation:
    due_date: date
    amount: int  # minor units


@dataclass(frozen=True)
class InvoicePosition:
    """An invoice on the as-of date: its obligations that had arisen by then, the total settled
    by then (net of un-applications) and the amount under dispute on that date."""

    invoice_id: str
    customer_id: str
    currency: str
    issue_date: date
    obligations: tuple[Obligation, ...]
    settled: int
    disputed: int = 0


@dataclass(frozen=True)
class OpenPortion:
    invoice_id: str
    customer_id: str
    currency: str
    issue_date: date
    due_date: date
    undisputed: int
    disputed: int


def _take_oldest_first(amounts: Sequence[int], taken: int) -> list[int]:
    """What remains of each amount after `taken` is removed from the first ones on."""
    remaining = []
    for amount in amounts:
        used = min(amount, max(taken, 0))
        taken -= used
        remaining.append(amount - used)
    return remaining


OpenKey = tuple[str, date, date]
"""An open total's key: currency, due date, issue date."""


def open_total_changes(
    old: Sequence[tuple[str, date, date, int, int]], new: Sequence[OpenPortion]
) -> dict[OpenKey, list[int]]:
    """How replacing an invoice's open items (old: currency, due date, issue date, undisputed,
    disputed) by ``new`` changes the open totals: [undisputed, disputed, invoices] per key, the
    invoice counted once, under its first item. Keys may end up all zero."""
    changes: dict[OpenKey, list[int]] = {}
    for sign, items in (
        (-1, old),
        (1, [(p.currency, p.due_date, p.issue_date, p.undisputed, p.disputed) for p in new]),
    ):
        for n, (currency, due, issued, undisputed, disputed) in enumerate(items):
            change = changes.setdefault((currency, due, issued), [0, 0, 0])
            change[0] += sign * undisputed
            change[1] += sign * disputed
            change[2] += sign if n == 0 else 0
    return changes


def open_portions(position: InvoicePosition) -> list[OpenPortion]:
    ordered = sorted(position.obligations, key=lambda o: o.due_date)
    open_amounts = _take_oldest_first([o.amount for o in ordered], position.settled)
    undisputed = _take_oldest_first(open_amounts, position.disputed)
    return [
        OpenPortion(
            invoice_id=position.invoice_id,
            customer_id=position.customer_id,
            currency=position.currency,
            issue_date=position.issue_date,
            due_date=o.due_date,
            undisputed=left,
            disputed=total - left,
        )
        for o, total, left in zip(ordered, open_amounts, undisputed, strict=True)
        if total > 0
    ]


def age_in_days(portion: OpenPortion, as_of: date, basis: Basis) -> int:
    anchor = portion.due_date if basis is Basis.DUE_DATE else portion.issue_date
    return (as_of - anchor).days


@dataclass
class AgingLine:
    """One customer in one currency (or the total of one currency)."""

    currency: str
    buckets: dict[str, int]
    disputed: int = 0
    overdue: int = 0
    oldest_days_overdue: int = 0
    invoices: set[str] = field(default_factory=set)
    invoice_count: int = 0

    @property
    def total(self) -> int:
        return sum(self.buckets.values()) + self.disputed

    def add_group(self, group: OpenGroup) -> None:
        """Open amounts already summed by bucket (today's aging from the open-items tables)."""
        self.buckets[group.bucket] += group.undisputed
        self.disputed += group.disputed
        self.invoice_count += group.invoices
        self.overdue += group.overdue
        self.oldest_days_overdue = max(self.oldest_days_overdue, group.oldest_days_overdue)

    def add(self, portion: OpenPortion, as_of: date, basis: Basis, buckets: list[Bucket]) -> None:
        days = age_in_days(portion, as_of, basis)
        bucket = next(b for b in buckets if b.holds(days))
        self.buckets[bucket.key] += portion.undisputed
        self.disputed += portion.disputed
        if portion.invoice_id not in self.invoices:
            self.invoices.add(portion.invoice_id)
            self.invoice_count += 1
        past_due = (as_of - portion.due_date).days
        if past_due > 0 and portion.undisputed > 0:
            self.overdue += portion.undisputed
            self.oldest_days_overdue = max(self.oldest_days_overdue, past_due)


@dataclass(frozen=True)
class OpenGroup:
    """Open portions of one customer (None: all customers) and currency in one bucket."""

    customer_id: str | None
    currency: str
    bucket: str
    undisputed: int
    disputed: int
    invoices: int  # invoices whose oldest open portion is in this group
    overdue: int
    oldest_days_overdue: int


def bucket_thresholds(buckets: Sequence[Bucket]) -> list[int]:
    """Lower bounds of every bucket after the first: the `k`-th bucket holds the days with
    exactly `k` thresholds at or below them (Postgres' `width_bucket` over this array)."""
    return [b.from_days for b in buckets[1:] if b.from_days is not None]


@dataclass(frozen=True)
class Aging:
    by_customer: dict[tuple[str, str], AgingLine]  # (customer_id, currency)
    totals: dict[str, AgingLine]  # currency


def age(
    positions: Iterable[InvoicePosition], as_of: date, basis: Basis, buckets: list[Bucket]
) -> Aging:
    by_customer: dict[tuple[str, str], AgingLine] = {}
    totals: dict[str, AgingLine] = {}
    for position in positions:
        for portion in open_portions(position):
            key = (portion.customer_id, portion.currency)
            by_customer.setdefault(key, _empty_line(portion.currency, buckets)).add(
                portion, as_of, basis, buckets
            )
            totals.setdefault(portion.currency, _empty_line(portion.currency, buckets)).add(
                portion, as_of, basis, buckets
            )
    return Aging(by_customer, totals)


def age_groups(groups: Iterable[OpenGroup], buckets: list[Bucket]) -> Aging:
    """The same Aging as `age`, from groups: customer lines from groups with a customer, the
    totals from groups without one."""
    by_customer: dict[tuple[str, str], AgingLine] = {}
    totals: dict[str, AgingLine] = {}
    for group in groups:
        if group.customer_id is None:
            line = totals.setdefault(group.currency, _empty_line(group.currency, buckets))
        else:
            key = (group.customer_id, group.currency)
            line = by_customer.setdefault(key, _empty_line(group.currency, buckets))
        line.add_group(group)
    return Aging(by_customer, totals)


def _empty_line(currency: str, buckets: list[Bucket]) -> AgingLine:
    return AgingLine(currency, {b.key: 0 for b in buckets})
