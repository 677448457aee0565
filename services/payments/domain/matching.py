"""Cash-application auto-matching: propose how unapplied money settles open invoices.

Pure: no I/O, no clock, no randomness. The caller passes the money still to apply (a payment's
unapplied amount or a bank-statement line) as a :class:`Remittance`, the open invoices, and the
alias table (``normalize_alias(name) -> customer_id``); :func:`find_matches` returns at most
:data:`MAX_MATCHES` candidate :class:`Match` es, best first (confidence descending, then the
oldest due date, then invoice number, then invoice id), each with the rule that made it and one
sentence explaining why. Only a match with ``confidence >= policy.auto_apply_threshold`` may be
applied without review (:meth:`MatchingPolicy.auto_applies`); callers apply at most the first.

Scope. Only invoices in the remittance's currency are considered: cross-currency settlement is
manual. With a known ``customer_id`` only that customer's invoices are looked at. An unknown
payer is identified, in this order, by invoice numbers in the reference (across all invoices),
by ``payer_name`` through the alias table, or not at all, in which case only an amount that
equals exactly one invoice of the whole set is proposed, at a confidence that never auto-applies.

Confidence table (two decimals; the default threshold is 0.90):

=================  ==========================================================================  ====
rule               situation                                                                   conf
=================  ==========================================================================  ====
invoice_number     amount settles the named invoices exactly (open amounts, or discounted       0.99
                   amounts where an early-payment discount applies)
invoice_number     amount less than their open total: partial payment, applied in the order    0.95
                   named
invoice_number     amount more than their open total: all settled, the rest stays unapplied    0.85
                   (an over-payment usually pays more than it names: a person decides)
invoice_number     unknown payer, amount does not settle the named invoices exactly             0.80
                   (a mistyped number names another customer's invoice)
invoice_number     unknown payer whose alias names another customer than the invoices do      0.50
invoice_number     unknown payer naming invoices of several customers: per customer, its       0.70
                   named invoices settle exactly
invoice_number     ... same, otherwise                                                         0.50
exact_amount       exactly one invoice's open (or discounted) amount equals the amount         0.92
exact_amount       several do, or a combination also makes up the amount: each is proposed     0.60
combination        exactly one subset of 2..max_combination_size invoices sums to the amount   0.90
                   and no single invoice does
combination        several subsets (or a single invoice matches too): only the oldest subset   0.55
tolerance          no exact match; one invoice within tolerance of the amount                  0.75
tolerance          ... several: each is proposed                                               0.50
alias              unknown payer, customer found by alias, one invoice matches exactly         0.90
alias              ... a unique combination matches                                            0.85
exact_amount       unknown payer, no number, no alias: one invoice of any customer matches     0.40
(any amount rule)  the reference names other invoices of the customer: capped at               0.50
=================  ==========================================================================  ====

Design choices:

* Invoice numbers in free text (:func:`invoice_numbers_in`) match case-insensitively, with any
  short run (up to 3) of separators (space, dash, slash, dot, ...) or none between the letter
  and digit groups, and with leading zeros of a digit group dropped ("inv 2026/123" names
  INV-2026-000123). Two digit groups written with nothing between them must keep their full
  zero-padded width ("INV2026000123"), since "2026123" could split anywhere. A number must not
  touch other letters or digits, so INV-2026-0001234 does not name INV-2026-000123, and a number
  found only inside a longer one (2026-000123 inside INV-2026-000123) does not count.
* A partial payment by number is applied in the order the reference names the invoices, not
  oldest due first: the order is the payer's stated intent and keeps the proposal explainable.
* "Oldest" combination: candidates are ordered oldest due first and subsets compared
  lexicographically, so the subset holding the oldest invoices wins.
* Tolerance is measured against the open amount only (not the discounted amount), and the
  percentage is rounded down to a minor unit, so a tolerance never exceeds what the policy says.
* The alias rule only proposes an exact single invoice or a unique combination; everything
  fuzzier about an unknown payer is left to a person. The alias table's keys must already be
  :func:`normalize_alias` output; the payer name is normalised and looked up as is. Aliases are
  consulted only when the reference names no invoice.
* Combinations are found by a meet-in-the-middle search over the oldest
  ``max_combination_candidates`` invoices (a few milliseconds for 25 candidates of size 4);
  an invoice with an early-payment discount may take part at either amount.
* Proposals with identical allocations are reported once, under the surest rule.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import unicodedata
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from shared.money import Money, Rounding, sum_money

__all__ = [
    "CONFIDENCE",
    "MAX_MATCHES",
    "RULES",
    "Match",
    "MatchingPolicy",
    "OpenInvoice",
    "ProposedAllocation",
    "Remittance",
    "find_matches",
    "invoice_numbers_in",
    "normalize_alias",
]

#: At most this many candidates come back; a reviewer will not read more.
MAX_MATCHES: Final = 5

RULE_INVOICE_NUMBER: Final = "invoice_number"
RULE_EXACT_AMOUNT: Final = "exact_amount"
RULE_TOLERANCE: Final = "tolerance"
RULE_COMBINATION: Final = "combination"
RULE_ALIAS: Final = "alias"
RULES: Final = frozenset(
    {RULE_INVOICE_NUMBER, RULE_EXACT_AMOUNT, RULE_TOLERANCE, RULE_COMBINATION, RULE_ALIAS}
)

#: The confidence table of the module docstring, by situation.
CONFIDENCE: Final[Mapping[str, Decimal]] = {
    "number_settles": Decimal("0.99"),
    "number_partial": Decimal("0.95"),
    "number_over": Decimal("0.85"),
    "number_unsettled_unknown_payer": Decimal("0.80"),
    "number_split_settles": Decimal("0.70"),
    "number_split": Decimal("0.50"),
    "exact_unique": Decimal("0.92"),
    "exact_several": Decimal("0.60"),
    "combination_unique": Decimal("0.90"),
    "combination_several": Decimal("0.55"),
    "tolerance_unique": Decimal("0.75"),
    "tolerance_several": Decimal("0.50"),
    "alias_exact": Decimal("0.90"),
    "alias_combination": Decimal("0.85"),
    "unknown_payer_exact": Decimal("0.40"),
    "contradicts_reference": Decimal("0.50"),
}

#: Which amount finding an alias-identified customer may be proposed with, and at what.
_ALIAS_KINDS: Final[Mapping[str, str]] = {
    "exact_unique": "alias_exact",
    "combination_unique": "alias_combination",
}

#: Named invoices with early-payment discounts beyond this are only tried all-or-nothing.
_MAX_DISCOUNT_CHOICES: Final = 12
#: The largest combination the bounded subset search supports (halves of at most 3 invoices).
_MAX_COMBINATION_SIZE: Final = 6


# ------------------------------------------------------------------------ data types


@dataclass(frozen=True)
class OpenInvoice:
    """An invoice with money still open, as the matcher needs to see it."""

    invoice_id: uuid.UUID
    customer_id: str
    number: str
    open_amount: Money
    due_date: date
    issue_date: date
    discounted_amount: Money | None = None
    """What settles it in full today under an early-payment discount (< open_amount), else None."""


@dataclass(frozen=True)
class Remittance:
    """Money not yet applied and everything the payer told us about it."""

    amount: Money
    reference: str
    payer_name: str | None
    customer_id: str | None
    received_on: date


@dataclass(frozen=True)
class ProposedAllocation:
    """Apply ``amount`` to one invoice."""

    invoice_id: uuid.UUID
    amount: Money


@dataclass(frozen=True)
class Match:
    """One candidate: allocations to invoices of one customer, and how sure we are.

    Construction checks the invariants every proposal must keep, so a bug in a rule fails here
    instead of reaching a ledger: at least one allocation, all strictly positive and in one
    currency, no invoice twice, confidence within 0..1.
    """

    customer_id: str
    allocations: tuple[ProposedAllocation, ...]
    confidence: Decimal
    rule: str
    explanation: str

    def __post_init__(self) -> None:
        if not self.allocations:
            raise ValueError("a match needs at least one allocation")
        currencies = {a.amount.currency for a in self.allocations}
        if len(currencies) != 1:
            raise ValueError(f"allocations mix currencies {sorted(currencies)}")
        if any(not a.amount.is_positive() for a in self.allocations):
            raise ValueError("allocation amounts must be strictly positive")
        if len({a.invoice_id for a in self.allocations}) != len(self.allocations):
            raise ValueError("an invoice appears twice in one match")
        if not Decimal(0) <= self.confidence <= Decimal(1):
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")

    @property
    def total(self) -> Money:
        """What the match applies; never more than the remittance amount."""
        return sum_money((a.amount for a in self.allocations), self.allocations[0].amount.currency)


@dataclass(frozen=True)
class MatchingPolicy:
    """Per-tenant knobs of the matcher."""

    auto_apply_threshold: Decimal = Decimal("0.90")
    tolerance_percent: Decimal = Decimal("1")
    tolerance_max_minor: int = 1000
    max_combination_size: int = 4
    max_combination_candidates: int = 25

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.auto_apply_threshold <= Decimal(1):
            raise ValueError("auto_apply_threshold must be within 0..1")
        if self.tolerance_percent < 0 or self.tolerance_max_minor < 0:
            raise ValueError("tolerances must not be negative")
        if not 1 <= self.max_combination_size <= _MAX_COMBINATION_SIZE:
            # The subset search is exponential in the size; beyond 6 it stops being "fast".
            raise ValueError(f"max_combination_size must be within 1..{_MAX_COMBINATION_SIZE}")
        if self.max_combination_candidates < 0:
            raise ValueError("max_combination_candidates must not be negative")

    def auto_applies(self, match: Match) -> bool:
        """Whether ``match`` is sure enough to apply without a person looking at it."""
        return match.confidence >= self.auto_apply_threshold


# ------------------------------------------------------------------ alias normalising

_LEGAL_SUFFIXES: Final = frozenset(
    {"ltd", "limited", "gmbh", "inc", "llc", "sa", "bv", "plc", "co", "corp", "incorporated"}
)
_DROPPED_PUNCTUATION: Final = re.compile(r"[.'`\u2019\u00b4]")
_NON_WORD: Final = re.compile(r"[\W_]+")


def normalize_alias(name: str) -> str:
    """The key under which a payer name is looked up in the alias table.

    Bank statements spell the same company many ways ("ACME LTD.", "Acme Limited", "Müller
    GmbH" / "MULLER GMBH"), so: casefold, drop accents, drop dots and apostrophes (so "B.V."
    becomes "bv"), turn other punctuation into spaces, "&" into "and", collapse whitespace and
    strip trailing legal-form words (and an "and" left dangling by "& Co."). The last word is
    never stripped, so "Limited" alone stays "limited" rather than becoming empty.
    """
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _DROPPED_PUNCTUATION.sub("", text.replace("&", " and "))
    tokens = _NON_WORD.sub(" ", text).split()
    while len(tokens) > 1 and tokens[-1] in _LEGAL_SUFFIXES:
        tokens.pop()
        if len(tokens) > 1 and tokens[-1] == "and":
            tokens.pop()
    return " ".join(tokens)


# ---------------------------------------------------------------- invoice numbers

_GROUP: Final = re.compile(r"[0-9]+|[^\W\d_]+")
_SEP: Final = r"[\W_]"


def _number_groups(number: str) -> list[str]:
    """Letter and digit groups of an invoice number: "INV-2026-000123" -> INV, 2026, 000123."""
    return _GROUP.findall(number)


def _number_pattern(groups: Sequence[str]) -> re.Pattern[str]:
    """A regex finding the number in free text, tolerant as the module docstring describes."""
    pieces = [r"(?<![^\W_])"]
    previous_digits = False
    for position, group in enumerate(groups):
        digits = group.isdigit()
        body = f"0*{group.lstrip('0') or '0'}" if digits else re.escape(group)
        if position == 0:
            pieces.append(body)
        elif digits and previous_digits:
            pieces.append(f"(?:{_SEP}{{1,3}}{body}|{_SEP}{{0,3}}{group})")
        else:
            pieces.append(f"{_SEP}{{0,3}}{body}")
        previous_digits = digits
    pieces.append(r"(?![^\W_])")
    return re.compile("".join(pieces), re.IGNORECASE)


def _may_contain(groups: Sequence[str], folded_text: str) -> bool:
    """Cheap pre-check so that thousands of known numbers do not each cost a regex search."""
    return all(
        (group.lstrip("0") or "0") in folded_text
        if group.isdigit()
        else group.casefold() in folded_text
        for group in groups
    )


def invoice_numbers_in(text: str, known_numbers: Iterable[str]) -> list[str]:
    """The known numbers that ``text`` names, in order of first appearance, without duplicates.

    See the module docstring for the tolerance (case, separators, dropped leading zeros). A
    number seen only inside a longer known number's match is not counted.
    """
    folded = text.casefold()
    spans: list[tuple[int, int, str]] = []
    for number in dict.fromkeys(known_numbers):
        groups = _number_groups(number)
        if not groups or not _may_contain(groups, folded):
            continue
        spans.extend((m.start(), m.end(), number) for m in _number_pattern(groups).finditer(text))
    first_seen: dict[str, int] = {}
    for start, end, number in sorted(spans):
        if number in first_seen or _inside_longer(start, end, number, spans):
            continue
        first_seen[number] = start
    return sorted(first_seen, key=lambda n: (first_seen[n], n))


def _inside_longer(
    start: int, end: int, number: str, spans: Sequence[tuple[int, int, str]]
) -> bool:
    return any(
        s <= start and end <= e and (e - s) > (end - start) and n != number for s, e, n in spans
    )


# ---------------------------------------------------------------- small helpers


def _key(invoice: OpenInvoice) -> tuple[date, str, uuid.UUID]:
    """The deterministic order of invoices everywhere: oldest due first."""
    return (invoice.due_date, invoice.number, invoice.invoice_id)


def _discount(invoice: OpenInvoice) -> Money | None:
    """The discounted amount if it is usable (same currency, positive, below the open amount)."""
    d = invoice.discounted_amount
    if d is None or d.currency != invoice.open_amount.currency:
        return None
    return d if 0 < d.amount < invoice.open_amount.amount else None


def _settles_exactly(invoice: OpenInvoice, amount: Money) -> bool:
    return invoice.open_amount == amount or _discount(invoice) == amount


def _names(invoices: Sequence[OpenInvoice]) -> str:
    """ "INV-1", "INV-1 and INV-2", "INV-1, INV-2 and INV-3"."""
    numbers = [inv.number for inv in invoices]
    return numbers[0] if len(numbers) == 1 else ", ".join(numbers[:-1]) + " and " + numbers[-1]


def _its(invoices: Sequence[OpenInvoice]) -> str:
    return "its" if len(invoices) == 1 else "their"


def _allocation(invoice: OpenInvoice, minor: int) -> ProposedAllocation:
    return ProposedAllocation(
        invoice.invoice_id, Money.of_minor(minor, invoice.open_amount.currency)
    )


def _eligible(invoices: Sequence[OpenInvoice], currency: str) -> list[OpenInvoice]:
    """Invoices that can take this money: same currency, something open, each id once, sorted."""
    seen: set[uuid.UUID] = set()
    result: list[OpenInvoice] = []
    for inv in sorted(invoices, key=_key):
        if inv.open_amount.currency != currency or inv.open_amount.amount <= 0:
            continue
        if inv.invoice_id not in seen:
            seen.add(inv.invoice_id)
            result.append(inv)
    return result


def _match(
    customer_id: str, allocations: Iterable[ProposedAllocation], kind: str, rule: str, why: str
) -> Match:
    return Match(customer_id, tuple(allocations), CONFIDENCE[kind], rule, why)


# ---------------------------------------------------------------- invoice_number rule


def _settling_amounts(named: Sequence[OpenInvoice], amount: int) -> list[int] | None:
    """Per named invoice, open or discounted amounts that add up to ``amount`` exactly, if any.

    Fewest discounts first (then earliest named), so a payment of the full open total never
    counts as a discounted one.
    """
    opens = [inv.open_amount.amount for inv in named]
    shortfall = sum(opens) - amount
    if shortfall < 0:
        return None
    savings = [
        (i, inv.open_amount.amount - d.amount)
        for i, inv in enumerate(named)
        if (d := _discount(inv)) is not None
    ]
    choices: Iterable[tuple[tuple[int, int], ...]]
    if len(savings) <= _MAX_DISCOUNT_CHOICES:
        choices = itertools.chain.from_iterable(
            itertools.combinations(savings, size) for size in range(len(savings) + 1)
        )
    else:
        choices = [(), tuple(savings)]
    for choice in choices:
        if sum(saving for _, saving in choice) == shortfall:
            taken = dict(choice)
            return [opens[i] - taken.get(i, 0) for i in range(len(named))]
    return None


def _by_number(remittance: Remittance, named: Sequence[OpenInvoice]) -> tuple[Match, bool]:
    """The invoice_number match of one customer's named invoices; and whether it settles exactly."""
    amount = remittance.amount
    open_total = sum_money((inv.open_amount for inv in named), amount.currency)
    customer = named[0].customer_id
    said = f"reference names {_names(named)}"
    settling = _settling_amounts(named, amount.amount)
    if settling is not None:
        discounted = [
            inv for inv, s in zip(named, settling, strict=True) if s != inv.open_amount.amount
        ]
        how = f"{_its(named)} open amount" + ("" if len(named) == 1 else "s")
        if discounted:
            how += f" after the early-payment discount on {_names(discounted)}"
        allocations = [_allocation(inv, s) for inv, s in zip(named, settling, strict=True)]
        return _match(
            customer,
            allocations,
            "number_settles",
            RULE_INVOICE_NUMBER,
            f"{said}; amount equals {how}",
        ), True
    if amount > open_total:
        rest = amount - open_total
        why = f"{said}; amount {amount} exceeds {_its(named)} open {open_total}, {rest} stays unapplied"
        allocations = [_allocation(inv, inv.open_amount.amount) for inv in named]
        return _match(customer, allocations, "number_over", RULE_INVOICE_NUMBER, why), False
    why = f"{said}; amount {amount} is less than {_its(named)} open {open_total}"
    if len(named) > 1:
        why += ", applied in the order named"
    return _match(
        customer, _in_order(named, amount.amount), "number_partial", RULE_INVOICE_NUMBER, why
    ), False


def _in_order(invoices: Sequence[OpenInvoice], amount: int) -> list[ProposedAllocation]:
    """Fill invoices one after another, each at most its open amount, until the money runs out."""
    allocations: list[ProposedAllocation] = []
    remaining = amount
    for inv in invoices:
        take = min(remaining, inv.open_amount.amount)
        if take > 0:
            allocations.append(_allocation(inv, take))
            remaining -= take
    return allocations


def _named_invoices(reference: str, invoices: Sequence[OpenInvoice]) -> list[OpenInvoice]:
    """Invoices the reference names, in the order named (ties of a shared number by due date)."""
    by_number: dict[str, list[OpenInvoice]] = {}
    for inv in invoices:
        by_number.setdefault(inv.number, []).append(inv)
    found = invoice_numbers_in(reference, by_number)
    return [inv for number in found for inv in by_number[number]]


# ---------------------------------------------------------------- amount rules


@dataclass(frozen=True)
class _Finding:
    """An amount-only candidate before its context (known customer, alias, ...) sets confidence."""

    kind: str
    rule: str
    allocations: tuple[ProposedAllocation, ...]
    detail: str


def _exact_findings(pool: Sequence[OpenInvoice], amount: Money) -> list[_Finding]:
    hits = [inv for inv in pool if _settles_exactly(inv, amount)]
    findings = []
    for inv in hits:
        which = "open" if inv.open_amount == amount else "early-payment discounted"
        detail = f"amount equals the {which} amount of {inv.number}"
        if len(hits) == 1:
            kind, detail = "exact_unique", f"{detail}, the only such invoice"
        else:
            kind, detail = "exact_several", f"{detail}, one of {len(hits)} such invoices"
        findings.append(
            _Finding(kind, RULE_EXACT_AMOUNT, (_allocation(inv, amount.amount),), detail)
        )
    return findings


def _tolerance_findings(
    pool: Sequence[OpenInvoice], amount: Money, policy: MatchingPolicy
) -> list[_Finding]:
    hits = [
        inv
        for inv in pool
        if 0 < abs(amount.amount - inv.open_amount.amount) <= _tolerance(inv, policy)
    ]
    findings = []
    for inv in hits:
        gap = abs(amount - inv.open_amount)
        side = "short of" if amount < inv.open_amount else "over"
        detail = f"amount {amount} is {gap} {side} the open {inv.open_amount} of {inv.number}, within tolerance"
        kind = "tolerance_unique" if len(hits) == 1 else "tolerance_several"
        if len(hits) > 1:
            detail += f" like {len(hits) - 1} other invoice" + ("s" if len(hits) > 2 else "")
        allocation = _allocation(inv, min(amount.amount, inv.open_amount.amount))
        findings.append(_Finding(kind, RULE_TOLERANCE, (allocation,), detail))
    return findings


def _tolerance(invoice: OpenInvoice, policy: MatchingPolicy) -> int:
    """Allowed gap in minor units: the smaller of the percentage (rounded down) and the cap."""
    percent = invoice.open_amount.percentage(policy.tolerance_percent, Rounding.DOWN).amount
    return min(percent, policy.tolerance_max_minor)


@dataclass(frozen=True)
class _Pick:
    """One invoice in a combination, at its open or its discounted amount."""

    index: int
    value: int
    discounted: bool


_Subset = tuple[_Pick, ...]


def _order(subset: _Subset) -> tuple[tuple[int, bool], ...]:
    """Lexicographic over (candidate position, discounted): the oldest invoices win."""
    return tuple((p.index, p.discounted) for p in subset)


def _halves(
    options: Sequence[tuple[_Pick, ...]], size: int, target: int
) -> list[tuple[int, _Subset]]:
    """Every choice of ``size`` distinct candidates summing below ``target``, in lexicographic order."""
    halves = []
    for combo in itertools.combinations(options, size):
        for half in itertools.product(*combo):
            total = sum(p.value for p in half)
            if total < target:
                halves.append((total, half))
    return halves


def _exact_subsets(
    options: Sequence[tuple[_Pick, ...]], target: int, max_size: int
) -> tuple[_Subset | None, int]:
    """The oldest subset of 2..max_size candidates summing to ``target``, and how many (capped at 2).

    Meet in the middle: a subset of size s is its first ceil(s/2) picks plus its last floor(s/2),
    so only halves of at most 2 picks (for size 4) are ever enumerated, and the right half is
    found by a dict lookup on the missing sum plus a bisect on "starts after the left half".
    Both halves come in lexicographic order, so the first hit per size is that size's oldest.
    """
    half_max = (max_size + 1) // 2
    halves = {h: _halves(options, h, target) for h in range(1, half_max + 1)}
    buckets: dict[tuple[int, int], tuple[list[int], list[_Subset]]] = {}
    for h, items in halves.items():
        for total, half in items:
            firsts, rights = buckets.setdefault((h, total), ([], []))
            firsts.append(half[0].index)
            rights.append(half)
    best: _Subset | None = None
    count = 0
    for size in range(2, max_size + 1):
        right_size = size // 2
        for total, left in halves[size - right_size]:
            bucket = buckets.get((right_size, target - total))
            if bucket is None:
                continue
            firsts, rights = bucket
            start = bisect_right(firsts, left[-1].index)
            if start == len(rights):
                continue
            subset = left + rights[start]
            if best is None or _order(subset) < _order(best):
                best = subset
            count += len(rights) - start
            if count >= 2:
                break
    return best, min(count, 2)


def _combination_findings(
    pool: Sequence[OpenInvoice], amount: Money, policy: MatchingPolicy, single_exists: bool
) -> list[_Finding]:
    if policy.max_combination_size < 2:
        return []
    candidates = pool[: policy.max_combination_candidates]
    options = [
        tuple(
            [_Pick(i, inv.open_amount.amount, False)]
            + ([_Pick(i, d.amount, True)] if (d := _discount(inv)) is not None else [])
        )
        for i, inv in enumerate(candidates)
    ]
    best, count = _exact_subsets(options, amount.amount, policy.max_combination_size)
    if best is None:
        return []
    chosen = [candidates[p.index] for p in best]
    allocations = tuple(_allocation(candidates[p.index], p.value) for p in best)
    detail = f"amount equals the combined open amounts of {_names(chosen)}"
    if any(p.discounted for p in best):
        detail += " (with early-payment discount)"
    if count == 1 and not single_exists:
        return [
            _Finding(
                "combination_unique",
                RULE_COMBINATION,
                allocations,
                f"{detail}, the only such combination",
            )
        ]
    why = f"{detail}, the oldest of several ways to make up the amount"
    return [_Finding("combination_several", RULE_COMBINATION, allocations, why)]


def _amount_findings(
    pool: Sequence[OpenInvoice], amount: Money, policy: MatchingPolicy
) -> list[_Finding]:
    """Exact, combination and (only when nothing is exact) tolerance candidates of one customer."""
    exact = _exact_findings(pool, amount)
    combos = _combination_findings(pool, amount, policy, single_exists=bool(exact))
    if exact and combos:  # one invoice or several make up the amount: ambiguous either way
        exact = [
            dataclasses.replace(
                f, kind="exact_several", detail=f"{f.detail}, but a combination also matches"
            )
            for f in exact
        ]
    if exact or combos:
        return exact + combos
    return _tolerance_findings(pool, amount, policy)


# ---------------------------------------------------------------- contexts


def _known_customer(
    remittance: Remittance, customer_id: str, pool: Sequence[OpenInvoice], policy: MatchingPolicy
) -> list[Match]:
    """Matches for one identified customer: by number first, amount-only ones as alternatives."""
    named = _named_invoices(remittance.reference, pool)
    matches = [_by_number(remittance, named)[0]] if named else []
    for f in _amount_findings(pool, remittance.amount, policy):
        if named:
            confidence = min(CONFIDENCE[f.kind], CONFIDENCE["contradicts_reference"])
            why = f"{f.detail}, but the reference names {_names(named)}"
            matches.append(Match(customer_id, f.allocations, confidence, f.rule, why))
        else:
            matches.append(Match(customer_id, f.allocations, CONFIDENCE[f.kind], f.rule, f.detail))
    return matches


def _several_customers(remittance: Remittance, named: Sequence[OpenInvoice]) -> list[Match]:
    """An unknown payer naming invoices of several customers: each share, for review."""
    by_customer: dict[str, list[OpenInvoice]] = {}
    for inv in named:
        by_customer.setdefault(inv.customer_id, []).append(inv)
    matches = []
    for invoices in by_customer.values():
        match, settles = _by_number(remittance, invoices)
        kind = "number_split_settles" if settles else "number_split"
        why = (
            f"{match.explanation}, but the reference names invoices of {len(by_customer)} customers"
        )
        matches.append(dataclasses.replace(match, confidence=CONFIDENCE[kind], explanation=why))
    return matches


def _by_alias(
    remittance: Remittance,
    invoices: Sequence[OpenInvoice],
    aliases: Mapping[str, str],
    policy: MatchingPolicy,
) -> list[Match]:
    if not remittance.payer_name:
        return []
    customer_id = aliases.get(normalize_alias(remittance.payer_name))
    if customer_id is None:
        return []
    pool = [inv for inv in invoices if inv.customer_id == customer_id]
    said = f"payer {remittance.payer_name!r} is an alias of customer {customer_id}"
    return [
        Match(
            customer_id,
            f.allocations,
            CONFIDENCE[_ALIAS_KINDS[f.kind]],
            RULE_ALIAS,
            f"{said}; {f.detail}",
        )
        for f in _amount_findings(pool, remittance.amount, policy)
        if f.kind in _ALIAS_KINDS
    ]


def _unknown_payer(
    remittance: Remittance,
    invoices: Sequence[OpenInvoice],
    aliases: Mapping[str, str],
    policy: MatchingPolicy,
) -> list[Match]:
    """Identify the customer by number, then alias, else offer a lone exact amount for review."""
    named = _named_invoices(remittance.reference, invoices)
    customers = {inv.customer_id for inv in named}
    if len(customers) == 1:
        customer_id = named[0].customer_id
        pool = [inv for inv in invoices if inv.customer_id == customer_id]
        matches = _known_customer(remittance, customer_id, pool, policy)
        _, settles = _by_number(remittance, named)
        alias_customer = (
            aliases.get(normalize_alias(remittance.payer_name)) if remittance.payer_name else None
        )
        if alias_customer is not None and alias_customer != customer_id:
            # The number and the payer disagree on the customer: offer both, decide neither.
            cap, note = "contradicts_reference", "the reference and the payer name disagree"
            matches += _by_alias(remittance, invoices, aliases, policy)
        elif not settles:
            cap, note = "number_unsettled_unknown_payer", "unknown payer, amount does not settle"
        else:
            return matches
        return [
            dataclasses.replace(
                m,
                confidence=min(m.confidence, CONFIDENCE[cap]),
                explanation=f"{m.explanation} ({note})",
            )
            for m in matches
        ]
    if customers:
        return _several_customers(remittance, named)
    by_alias = _by_alias(remittance, invoices, aliases, policy)
    if by_alias:
        return by_alias
    hits = [inv for inv in invoices if _settles_exactly(inv, remittance.amount)]
    if len(hits) != 1:
        return []
    (inv,) = hits
    why = f"unknown payer; amount equals the open amount of {inv.number}, the only such invoice of any customer"
    if inv.open_amount != remittance.amount:
        why = f"unknown payer; amount equals the early-payment discounted amount of {inv.number}, the only such invoice of any customer"
    allocation = _allocation(inv, remittance.amount.amount)
    return [_match(inv.customer_id, [allocation], "unknown_payer_exact", RULE_EXACT_AMOUNT, why)]


# ---------------------------------------------------------------- entry point


def find_matches(
    remittance: Remittance,
    open_invoices: Sequence[OpenInvoice],
    aliases: Mapping[str, str],
    policy: MatchingPolicy = MatchingPolicy(),
) -> list[Match]:
    """Candidates, best first (confidence desc, then oldest due date). At most ``MAX_MATCHES``.

    Empty when nothing is plausible (or the remittance has nothing left to apply).
    """
    if not remittance.amount.is_positive():
        return []
    invoices = _eligible(open_invoices, remittance.amount.currency)
    if remittance.customer_id is not None:
        pool = [inv for inv in invoices if inv.customer_id == remittance.customer_id]
        matches = _known_customer(remittance, remittance.customer_id, pool, policy)
    else:
        matches = _unknown_payer(remittance, invoices, aliases, policy)
    return _rank(matches, {inv.invoice_id: inv for inv in invoices})


def _rank(matches: Iterable[Match], invoices: Mapping[uuid.UUID, OpenInvoice]) -> list[Match]:
    """Sort best first, drop repeats of the same allocations (keeping the surest), cut to size."""

    def order(match: Match) -> tuple[Decimal, list[tuple[date, str, uuid.UUID]], str]:
        keys = sorted(_key(invoices[a.invoice_id]) for a in match.allocations)
        return (-match.confidence, keys, match.rule)

    ranked: list[Match] = []
    seen: set[frozenset[tuple[uuid.UUID, int]]] = set()
    for match in sorted(matches, key=order):
        allocations = frozenset((a.invoice_id, a.amount.amount) for a in match.allocations)
        if allocations not in seen:
            seen.add(allocations)
            ranked.append(match)
    return ranked[:MAX_MATCHES]
