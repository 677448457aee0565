"""Benchmark of cash-application matching: auto-match rate, precision and speed of find_matches.

Not a test: nothing is asserted. A synthetic ledger (customers, open invoices, an alias table)
and payments with a known ground truth are generated from one seed, every payment is matched
with :func:`services.payments.domain.matching.find_matches` exactly as the services call it,
and the outcome is compared with the truth at several auto-apply thresholds.

Run: ``.venv/bin/python -m bench.matching [--seed N] [--customers 200] [--payments 5000]``.
The output is Markdown, so it can be pasted into ``docs/benchmarks.md`` as is.

Each payment is matched on its own against the same, unchanged ledger (nothing is applied
between payments), so one payment's outcome never depends on another's.

Two populations, half the payments each:

* ``api``: a payment recorded for a known customer (``customer_id`` set); the matcher sees that
  customer's open invoices only, and no alias table (as ``application/matching.py`` calls it).
* ``statement``: a bank-statement line (``customer_id=None``); ``payer_name`` is how the bank
  spells the customer (often, not always, in the alias table) or a third party's name; the
  matcher sees every open invoice of the tenant and the alias table.

The truth of a payment is the set of (invoice, amount) allocations a person would make; a
payment that belongs to no open invoice has an empty truth (nothing should be applied). See
``SCENARIOS`` for the mix and docs/benchmarks.md for the results.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import string
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from services.payments.domain.matching import (
    Match,
    MatchingPolicy,
    OpenInvoice,
    Remittance,
    find_matches,
    normalize_alias,
)
from shared.money import Money, Rounding

CURRENCY: Final = "EUR"
TODAY: Final = date(2026, 3, 16)
DEFAULT_SEED: Final = 20260316
THRESHOLDS: Final = (Decimal("0.85"), Decimal("0.90"), Decimal("0.95"))
DEFAULT_THRESHOLD: Final = Decimal("0.90")

#: Scenario -> share of payments (percent). Kept in sync with docs/benchmarks.md.
SCENARIOS: Final[Mapping[str, int]] = {
    "ref_exact": 32,  # reference names one invoice, amount = its open amount
    "ref_typo": 3,  # ... but the payer mistyped the number (one digit changed or two swapped)
    "ref_several": 10,  # reference names 2-4 invoices of one customer, amount = their sum
    "exact_no_ref": 15,  # amount = one invoice's open amount, no usable reference
    "combination": 10,  # amount = sum of 2-3 invoices of one customer, no reference
    "bank_charges": 8,  # one invoice short-paid by a bank fee within tolerance
    "discount": 5,  # discounted amount of an invoice inside its discount window
    "partial": 7,  # part of one invoice, reference names it
    "noise": 10,  # belongs to no open invoice: amount matches none, reference gibberish
}

# ------------------------------------------------------------------------ vocabulary

_FIRST_WORDS: Final = tuple(
    "Acme Nordwind Bergmann Helios Kestrel Lindqvist Müller Orion Polaris Rheintal Sable Tauber"
    " Vega Zenith Schäfer Böhm Großmann Alder Brightwater Castell Dunmore Elbe Falkenrath"
    " Granite Hartwell Iberia Jura Kronos Lumen Meridian Novak Oakridge Pioneer Quantum"
    " Riverside Solent Tern Unity Vantage Westbrook".split()
)
_SECOND_WORDS: Final = tuple(
    "Trading Logistics Systems Foods Maschinenbau Consulting Textiles Pharma Solutions"
    " Industries Werkzeugbau Digital Bau Energy Retail Media Engineering Holding Components"
    " Services".split()
)
#: Legal forms as they appear on invoices; repeats weight the common ones. Some (AG, KG, Oy,
#: SARL, S.r.l., AB, SE) are not among the suffixes normalize_alias strips.
_LEGAL_FORMS: Final = tuple(
    "GmbH|GmbH|GmbH|GmbH|Ltd|Ltd.|Limited|Inc.|LLC|S.A.|B.V.|plc|Corp.|AG|AG|GmbH & Co. KG"
    "|SARL|S.r.l.|Oy|AB|SE".split("|")
)
_PEOPLE: Final = tuple(
    "M. Schneider|J. Smith|Anna Kowalska|P. Dubois|Lars Nilsson|K. Yilmaz|Maria Rossi"
    "|T. O'Brien|H. Wagner|S. Jansen".split("|")
)
_THIRD_PARTIES: Final = tuple(
    "PayPal Europe S.a r.l. et Cie S.C.A|Stripe Payments Europe Ltd|Global Factoring AG"
    "|Sparkasse Treuhand|Eurofinance Collect B.V.".split("|")
)
#: Price points many customers are billed at: amounts collide across customers.
_PRICE_POINTS: Final = (4900, 9900, 14900, 19900, 24900, 49900, 99000, 119000, 250000)
_TRANSLITERATION: Final = str.maketrans({"Ä": "AE", "Ö": "OE", "Ü": "UE"})


# ------------------------------------------------------------------------ ledger


@dataclass(frozen=True)
class Customer:
    customer_id: str
    number: int  # what a payer writes as "Kd-Nr"
    name: str  # as on the invoice, with its legal form
    payer_names: tuple[str, ...]  # how banks spell it
    terms_days: int
    discount_terms: bool  # 2 % within 10 days of issue
    recurring_fee: int | None  # minor units billed again and again (subscriptions)


@dataclass(frozen=True)
class Ledger:
    customers: tuple[Customer, ...]
    invoices: tuple[OpenInvoice, ...]
    by_customer: Mapping[str, tuple[OpenInvoice, ...]]
    by_id: Mapping[uuid.UUID, OpenInvoice]
    aliases: Mapping[str, str]
    twins: int  # customers whose name normalises like another customer's


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _lognormal_minor(rng: random.Random, median_eur: float, sigma: float) -> int:
    """A log-normal amount clamped to 20.00-50,000.00, rounded like real prices."""
    eur = min(max(math.exp(rng.gauss(math.log(median_eur), sigma)), 20.0), 50_000.0)
    roll = rng.random()
    if roll < 0.35:
        return round(eur * 100)  # to the cent
    if roll < 0.75:
        return round(eur) * 100  # whole euros
    return max(2, round(eur / 10)) * 1000  # tens of euros


def _payer_names(base: str, legal: str) -> tuple[str, ...]:
    """Spellings a bank statement uses for a company."""
    canonical = f"{base} {legal}"
    names = [
        canonical,
        canonical.upper(),
        base.upper(),
        f"{base.upper()} {legal.replace('.', '').upper()}",
        canonical.upper().translate(_TRANSLITERATION),  # MUELLER for Müller
    ]
    if legal == "GmbH":
        names.append(f"{base} G.m.b.H.")
    if len(canonical) > 27:
        names.append(canonical.upper()[:27])  # fixed-width bank formats truncate
    return tuple(dict.fromkeys(names))


def build_ledger(rng: random.Random, n_customers: int) -> Ledger:
    customers: list[Customer] = []
    bases: list[str] = []
    unused = [f"{a} {b}" for a in _FIRST_WORDS for b in _SECOND_WORDS]
    rng.shuffle(unused)
    twins = 0
    for i in range(n_customers):
        if bases and i >= 10 and rng.random() < 0.03:
            base = rng.choice(bases)  # a sister company: same name, other legal form
            twins += 1
        else:
            base = unused.pop()
        bases.append(base)
        legal = rng.choice(_LEGAL_FORMS)
        recurring = None
        if rng.random() < 0.3:
            recurring = (
                rng.choice(_PRICE_POINTS)
                if rng.random() < 0.5
                else _lognormal_minor(rng, 400, 1.0) // 100 * 100
            )
        customers.append(
            Customer(
                customer_id=f"C{i + 1:04d}",
                number=10_001 + i,
                name=f"{base} {legal}",
                payer_names=_payer_names(base, legal),
                terms_days=rng.choice((14, 30, 30, 45)),
                discount_terms=rng.random() < 0.3,
                recurring_fee=recurring,
            )
        )

    # The alias table as clerks build it: the invoice name for most customers, sometimes one
    # spelling seen on a statement too; a key already taken is refused (add_alias), first wins.
    aliases: dict[str, str] = {}
    for c in customers:
        if rng.random() >= 0.8:
            continue
        names = [c.name] + ([rng.choice(c.payer_names)] if rng.random() < 0.4 else [])
        for name in names:
            aliases.setdefault(normalize_alias(name), c.customer_id)

    # Invoices: 1-15 per customer, due over 90 days, numbered in issue order per year with gaps
    # (the invoices in between are paid already).
    drafts: list[tuple[date, float, Customer, int, date, int | None]] = []
    for c in customers:
        count = min(15, 1 + int(rng.triangular(0, 15, 2)))
        for _ in range(count):
            due = TODAY + timedelta(days=rng.randint(-60, 29))
            issue = due - timedelta(days=c.terms_days)
            if c.recurring_fee is not None and rng.random() < 0.5:
                original = c.recurring_fee
            elif rng.random() < 0.08:
                original = rng.choice(_PRICE_POINTS)
            else:
                original = _lognormal_minor(rng, 900, 1.25)
            open_minor = original
            if rng.random() < 0.05:  # partly paid before
                open_minor -= round(original * rng.uniform(0.2, 0.6) / 100) * 100
            discounted: int | None = None
            if c.discount_terms and open_minor == original and (TODAY - issue).days <= 10:
                money = Money.of_minor(open_minor, CURRENCY)
                discounted = (money - money.percentage(2, Rounding.HALF_UP)).amount
            drafts.append((issue, rng.random(), c, open_minor, due, discounted))
    drafts.sort(key=lambda d: (d[0], d[1]))
    counters = {2025: 14_000, 2026: 0}
    invoices: list[OpenInvoice] = []
    for issue, _, c, open_minor, due, discounted in drafts:
        counters[issue.year] += rng.randint(1, 9)
        invoices.append(
            OpenInvoice(
                invoice_id=_uuid(rng),
                customer_id=c.customer_id,
                number=f"INV-{issue.year}-{counters[issue.year]:06d}",
                open_amount=Money.of_minor(open_minor, CURRENCY),
                due_date=due,
                issue_date=issue,
                discounted_amount=(
                    None if discounted is None else Money.of_minor(discounted, CURRENCY)
                ),
            )
        )
    by_customer: dict[str, list[OpenInvoice]] = defaultdict(list)
    for inv in invoices:
        by_customer[inv.customer_id].append(inv)
    return Ledger(
        customers=tuple(customers),
        invoices=tuple(invoices),
        by_customer={k: tuple(v) for k, v in by_customer.items()},
        by_id={inv.invoice_id: inv for inv in invoices},
        aliases=aliases,
        twins=twins,
    )


# ------------------------------------------------------------------------ payments

Truth = frozenset[tuple[uuid.UUID, int]]


@dataclass(frozen=True)
class Draft:
    """What the payer did, before it is given a population."""

    customer: Customer
    amount: int
    reference: str
    truth: Truth
    variant: str


@dataclass(frozen=True)
class Case:
    scenario: str
    population: str
    variant: str
    remittance: Remittance
    truth: Truth
    true_customer: str


def _parts(number: str) -> tuple[str, str, int]:
    prefix_year, serial = number.rsplit("-", 1)
    return prefix_year.split("-")[1], serial, int(serial)


#: Ways payers write one invoice number; the last three are not recognised by design
#: (a different word, no prefix, two digit groups joined without their zero padding).
_FORMATS: Final[Mapping[str, tuple[int, Callable[[str, str, int], str]]]] = {
    "canonical": (30, lambda year, serial, s: f"INV-{year}-{serial}"),
    "inv yyyy/n": (15, lambda year, serial, s: f"inv {year}/{s}"),
    "INV yyyy nnnnnn": (10, lambda year, serial, s: f"INV {year} {serial}"),
    "INVyyyynnnnnn": (10, lambda year, serial, s: f"INV{year}{serial}"),
    "INV-yyyy-n": (10, lambda year, serial, s: f"INV-{year}-{s}"),
    "Inv. yyyy.nnnnnn": (5, lambda year, serial, s: f"Inv. {year}.{serial}"),
    "Invoice yyyynnnnnn": (8, lambda year, serial, s: f"Invoice {year}{serial}"),
    "yyyy-nnnnnn": (7, lambda year, serial, s: f"{year}-{serial}"),
    "INVyyyyn": (5, lambda year, serial, s: f"INV{year}{s}"),
}
_SUPPORTED_FORMATS: Final = (
    "canonical",
    "inv yyyy/n",
    "INV yyyy nnnnnn",
    "INVyyyynnnnnn",
    "INV-yyyy-n",
)


def _format_number(rng: random.Random, number: str, fmt: str | None = None) -> tuple[str, str]:
    if fmt is None:
        fmt = rng.choices(list(_FORMATS), weights=[w for w, _ in _FORMATS.values()])[0]
    year, serial, s = _parts(number)
    return _FORMATS[fmt][1](year, serial, s), fmt


def _wrap(rng: random.Random, text: str, customer: Customer) -> str:
    """Noise words around a reference."""
    templates = (
        "{r}",
        "{r}",
        "Payment {r}",
        "Rechnung {r} Kd-Nr {k}",
        "{r} thank you",
        "Zahlung {r} vom {d}",
        "{r} / {n}",
    )
    day = TODAY - timedelta(days=rng.randint(1, 40))
    return rng.choice(templates).format(
        r=text, k=customer.number, d=day.strftime("%d.%m.%Y"), n=customer.name.upper()
    )


def _no_reference(rng: random.Random, customer: Customer) -> str:
    return rng.choice(
        (
            "",
            "Payment",
            "Zahlung",
            "Thank you",
            f"Kd-Nr {customer.number}",
            f"PO {rng.randint(4_000_000, 4_999_999)}",
            f"Order {rng.randint(10_000, 99_999)}",
            customer.name.upper(),
        )
    )


def _gibberish(rng: random.Random) -> str:
    token = "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
    while "INV" in token:
        token = "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
    return rng.choice(
        (
            "",
            "Advance payment",
            f"Order {rng.randint(10_000, 99_999)}",
            f"REF {token}",
            f"Abschlag {rng.choice(('Januar', 'Februar', 'März'))}",
            "Deposit",
            f"Contract {token}",
        )
    )


def _truth(pairs: Iterable[tuple[OpenInvoice, int]]) -> Truth:
    return frozenset((inv.invoice_id, minor) for inv, minor in pairs)


def _typo(rng: random.Random, number: str) -> str:
    """One digit of the serial changed, or two adjacent digits swapped (never a no-op)."""
    year, serial, _ = _parts(number)
    digits = list(serial)
    while True:
        candidate = digits.copy()
        if rng.random() < 0.5:
            i = rng.randrange(len(digits) - 4, len(digits) - 1)
            candidate[i], candidate[i + 1] = candidate[i + 1], candidate[i]
        else:
            i = rng.randrange(len(digits) - 3, len(digits))
            candidate[i] = rng.choice([d for d in string.digits if d != digits[i]])
        if candidate != digits:
            return f"INV-{year}-{''.join(candidate)}"


class PaymentMaker:
    """Draws payments of each scenario from a ledger."""

    def __init__(self, rng: random.Random, ledger: Ledger) -> None:
        self.rng = rng
        self.ledger = ledger
        self.by_number = {inv.number: inv for inv in ledger.invoices}
        self.customers = {c.customer_id: c for c in ledger.customers}
        self.settling_amounts = {inv.open_amount.amount for inv in ledger.invoices} | {
            inv.discounted_amount.amount
            for inv in ledger.invoices
            if inv.discounted_amount is not None
        }
        self.with_several = [c for c in ledger.customers if len(self._of(c)) >= 2]
        self.with_three = [c for c in ledger.customers if len(self._of(c)) >= 3]
        self.discounted = [i for i in ledger.invoices if i.discounted_amount is not None]
        self.chargeable = [i for i in ledger.invoices if i.open_amount.amount >= 15_000]
        self.partable = [i for i in ledger.invoices if i.open_amount.amount >= 10_000]

    def _of(self, customer: Customer) -> tuple[OpenInvoice, ...]:
        return self.ledger.by_customer.get(customer.customer_id, ())

    def _owner(self, inv: OpenInvoice) -> Customer:
        return self.customers[inv.customer_id]

    def make(self, scenario: str) -> Draft:
        maker: Callable[[], Draft] = getattr(self, f"_{scenario}")
        return maker()

    def _ref_exact(self) -> Draft:
        inv = self.rng.choice(self.ledger.invoices)
        c = self._owner(inv)
        text, fmt = _format_number(self.rng, inv.number)
        amount = inv.open_amount.amount
        return Draft(c, amount, _wrap(self.rng, text, c), _truth([(inv, amount)]), fmt)

    def _ref_typo(self) -> Draft:
        inv = self.rng.choice(self.ledger.invoices)
        c = self._owner(inv)
        wrong = _typo(self.rng, inv.number)
        text, _ = _format_number(self.rng, wrong, "canonical")
        hit = self.by_number.get(wrong)
        if hit is None:
            variant = "typo names no open invoice"
        elif hit.customer_id == c.customer_id:
            variant = "typo names another invoice of the customer"
        else:
            variant = "typo names another customer's invoice"
        amount = inv.open_amount.amount
        return Draft(c, amount, _wrap(self.rng, text, c), _truth([(inv, amount)]), variant)

    def _ref_several(self) -> Draft:
        c = self.rng.choice(self.with_several)
        own = self._of(c)
        size = self.rng.choice((2, 2, 2, 3, 3, 4))
        roll = self.rng.random()
        by_year: dict[str, list[OpenInvoice]] = defaultdict(list)
        for inv in own:
            by_year[_parts(inv.number)[0]].append(inv)
        same_year = max(by_year.values(), key=len)
        if roll >= 0.80 and len(same_year) >= 2:
            # Payer shorthand "INV-2026-000123/000456": only sensible within one year.
            variant = "later ones as serials only (INV-2026-000123/000456)"
            chosen = self.rng.sample(same_year, min(len(same_year), size))
            text = "/".join([chosen[0].number] + [_parts(inv.number)[1] for inv in chosen[1:]])
        else:
            chosen = self.rng.sample(own, min(len(own), size))
            if roll < 0.45 or roll >= 0.80:
                variant = "each in full"
                text = self.rng.choice((", ", " / ", " ")).join(inv.number for inv in chosen)
            elif roll < 0.70:
                variant = "each in a supported format"
                text = " + ".join(
                    _format_number(self.rng, inv.number, self.rng.choice(_SUPPORTED_FORMATS))[0]
                    for inv in chosen
                )
            else:
                variant = "'and' between full numbers"
                text = "Invoices " + " and ".join(inv.number for inv in chosen)
        pairs = [
            (
                inv,
                inv.discounted_amount.amount
                if inv.discounted_amount is not None and self.rng.random() < 0.5
                else inv.open_amount.amount,
            )
            for inv in chosen
        ]
        amount = sum(minor for _, minor in pairs)
        return Draft(c, amount, _wrap(self.rng, text, c), _truth(pairs), variant)

    def _exact_no_ref(self) -> Draft:
        inv = self.rng.choice(self.ledger.invoices)
        c = self._owner(inv)
        amount = inv.open_amount.amount
        collide = sum(1 for other in self._of(c) if other.open_amount.amount == amount)
        variant = "amount unique in customer" if collide == 1 else "amount shared in customer"
        return Draft(c, amount, _no_reference(self.rng, c), _truth([(inv, amount)]), variant)

    def _combination(self) -> Draft:
        size = self.rng.choice((2, 2, 3))
        c = self.rng.choice(self.with_three if size == 3 else self.with_several)
        chosen = self.rng.sample(self._of(c), size)
        pairs = [(inv, inv.open_amount.amount) for inv in chosen]
        amount = sum(minor for _, minor in pairs)
        variant = f"{size} invoices"
        return Draft(c, amount, _no_reference(self.rng, c), _truth(pairs), variant)

    def _bank_charges(self) -> Draft:
        inv = self.rng.choice(self.chargeable)
        c = self._owner(inv)
        tolerance = min(inv.open_amount.amount // 100, 1000)
        fee = self.rng.choice([f for f in (150, 250, 350, 500, 750, 1000) if f <= tolerance])
        amount = inv.open_amount.amount - fee
        if self.rng.random() < 0.6:
            text, _ = _format_number(self.rng, inv.number, self.rng.choice(_SUPPORTED_FORMATS))
            reference, variant = _wrap(self.rng, text, c), "reference names it"
        else:
            reference, variant = _no_reference(self.rng, c), "no reference"
        return Draft(c, amount, reference, _truth([(inv, amount)]), variant)

    def _discount(self) -> Draft:
        inv = self.rng.choice(self.discounted)
        c = self._owner(inv)
        assert inv.discounted_amount is not None
        amount = inv.discounted_amount.amount
        if self.rng.random() < 0.7:
            text, _ = _format_number(self.rng, inv.number, self.rng.choice(_SUPPORTED_FORMATS))
            reference, variant = _wrap(self.rng, text, c), "reference names it"
        else:
            reference, variant = _no_reference(self.rng, c), "no reference"
        return Draft(c, amount, reference, _truth([(inv, amount)]), variant)

    def _partial(self) -> Draft:
        inv = self.rng.choice(self.partable)
        c = self._owner(inv)
        open_minor = inv.open_amount.amount
        if self.rng.random() < 0.5:
            amount = max(100, round(open_minor * self.rng.uniform(0.2, 0.8) / 10_000) * 10_000)
            variant = "round instalment"
        else:
            amount = round(open_minor * self.rng.uniform(0.2, 0.8) / 100) * 100
            variant = "whole euros"
        amount = min(amount, open_minor - 100)
        text, _ = _format_number(self.rng, inv.number, self.rng.choice(_SUPPORTED_FORMATS))
        return Draft(c, amount, _wrap(self.rng, text, c), _truth([(inv, amount)]), variant)

    def _noise(self) -> Draft:
        c = self.rng.choice(self.ledger.customers)
        while True:
            if self.rng.random() < 0.5:
                amount = self.rng.choice((100, 250, 500, 1000, 2000, 5000)) * 100
                variant = "round amount"
            else:
                amount = _lognormal_minor(self.rng, 900, 1.25) + self.rng.randint(1, 99)
                variant = "odd amount"
            if amount not in self.settling_amounts:
                break
        return Draft(c, amount, _gibberish(self.rng), frozenset(), variant)


def make_cases(rng: random.Random, ledger: Ledger, n_payments: int) -> list[Case]:
    """Exactly the scenario mix (largest remainder), shuffled; populations alternate at random."""
    maker = PaymentMaker(rng, ledger)
    total = sum(SCENARIOS.values())
    counts = {s: n_payments * w // total for s, w in SCENARIOS.items()}
    by_remainder = sorted(SCENARIOS, key=lambda s: -(n_payments * SCENARIOS[s] % total))
    for s in by_remainder[: n_payments - sum(counts.values())]:
        counts[s] += 1
    order = [s for s, n in counts.items() for _ in range(n)]
    rng.shuffle(order)
    cases = []
    for scenario in order:
        d = maker.make(scenario)
        amount = Money.of_minor(d.amount, CURRENCY)
        received = TODAY - timedelta(days=rng.randint(0, 3))
        if rng.random() < 0.5:
            population = "api"
            remittance = Remittance(amount, d.reference, None, d.customer.customer_id, received)
        else:
            population = "statement"
            roll = rng.random()
            if roll < 0.8:
                payer = rng.choice(d.customer.payer_names)
            elif roll < 0.9:
                payer = rng.choice(_PEOPLE)
            else:
                payer = rng.choice(_THIRD_PARTIES)
            reference = d.reference
            if reference and rng.random() < 0.3:
                reference = f"SVWZ+{reference} EREF+NOTPROVIDED"
            remittance = Remittance(amount, reference, payer, None, received)
        cases.append(
            Case(scenario, population, d.variant, remittance, d.truth, d.customer.customer_id)
        )
    return cases


# ------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Result:
    case: Case
    matches: tuple[Match, ...]
    seconds: float
    invoices_passed: int


def run(ledger: Ledger, cases: Sequence[Case], policy: MatchingPolicy) -> list[Result]:
    """find_matches once per payment, as the services call it. The threshold is not an input
    of find_matches (only of MatchingPolicy.auto_applies), so one run serves every threshold."""
    results = []
    no_aliases: Mapping[str, str] = {}
    for case in cases:
        customer_id = case.remittance.customer_id
        if customer_id is not None:
            pool: Sequence[OpenInvoice] = ledger.by_customer.get(customer_id, ())
            aliases = no_aliases
        else:
            pool, aliases = ledger.invoices, ledger.aliases
        start = time.perf_counter()
        matches = find_matches(case.remittance, pool, aliases, policy)
        elapsed = time.perf_counter() - start
        results.append(Result(case, tuple(matches), elapsed, len(pool)))
    return results


def allocations(match: Match) -> Truth:
    return frozenset((a.invoice_id, a.amount.amount) for a in match.allocations)


AUTO_OK: Final = "auto_ok"
AUTO_INCOMPLETE: Final = "auto_incomplete"  # a strict part of the truth, rest left unapplied
AUTO_MISAPPLIED: Final = "auto_misapplied"  # money on an invoice or amount not in the truth
REVIEW_TOP: Final = "review_top"
REVIEW_LISTED: Final = "review_listed"
REVIEW_MISSING: Final = "review_missing"
UNMATCHED: Final = "unmatched"


def classify(result: Result, policy: MatchingPolicy) -> str:
    truth, matches = result.case.truth, result.matches
    if not matches:
        return UNMATCHED
    best = matches[0]
    if policy.auto_applies(best):
        got = allocations(best)
        if got == truth:
            return AUTO_OK
        return AUTO_INCOMPLETE if truth and got < truth else AUTO_MISAPPLIED
    if truth and allocations(best) == truth:
        return REVIEW_TOP
    if truth and any(allocations(m) == truth for m in matches):
        return REVIEW_LISTED
    return REVIEW_MISSING


# ------------------------------------------------------------------------ reporting


def _pct(part: int, whole: int) -> str:
    return "-" if whole == 0 else f"{100 * part / whole:.1f} %"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_HEADER: Final = (
    "group",
    "n",
    "auto-applied",
    "precision",
    "wrong (incomplete / misapplied)",
    "review",
    "truth in proposals",
    "truth at rank 1",
    "unmatched",
    "found",
)


def _row(label: str, results: Sequence[Result], policy: MatchingPolicy) -> list[str]:
    kinds = Counter(classify(r, policy) for r in results)
    auto = kinds[AUTO_OK] + kinds[AUTO_INCOMPLETE] + kinds[AUTO_MISAPPLIED]
    review = kinds[REVIEW_TOP] + kinds[REVIEW_LISTED] + kinds[REVIEW_MISSING]
    reviewed_with_truth = sum(
        1 for r in results if r.case.truth and r.matches and not policy.auto_applies(r.matches[0])
    )
    listed = kinds[REVIEW_TOP] + kinds[REVIEW_LISTED]
    with_truth = sum(1 for r in results if r.case.truth)
    wrong = kinds[AUTO_INCOMPLETE] + kinds[AUTO_MISAPPLIED]
    return [
        label,
        str(len(results)),
        _pct(auto, len(results)),
        _pct(kinds[AUTO_OK], auto),
        f"{wrong} ({kinds[AUTO_INCOMPLETE]} / {kinds[AUTO_MISAPPLIED]})",
        _pct(review, len(results)),
        _pct(listed, reviewed_with_truth),
        _pct(kinds[REVIEW_TOP], reviewed_with_truth),
        _pct(kinds[UNMATCHED], len(results)),
        _pct(kinds[AUTO_OK] + listed, with_truth),
    ]


def _group(results: Iterable[Result], key: Callable[[Result], str]) -> dict[str, list[Result]]:
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[key(r)].append(r)
    return groups


def threshold_table(results: Sequence[Result], policy: MatchingPolicy) -> str:
    rows = [_row("**all**", results, policy)]
    by_population = _group(results, lambda r: r.case.population)
    rows += [_row(f"population {p}", by_population[p], policy) for p in sorted(by_population)]
    by_scenario = _group(results, lambda r: r.case.scenario)
    rows += [_row(s, by_scenario[s], policy) for s in SCENARIOS if s in by_scenario]
    return _table(_HEADER, rows)


def scenario_population_table(results: Sequence[Result], policy: MatchingPolicy) -> str:
    groups = _group(results, lambda r: f"{r.case.scenario} / {r.case.population}")
    order = [f"{s} / {p}" for s in SCENARIOS for p in ("api", "statement")]
    return _table(_HEADER, [_row(k, groups[k], policy) for k in order if k in groups])


def variant_table(results: Sequence[Result], policy: MatchingPolicy, scenarios: set[str]) -> str:
    chosen = [r for r in results if r.case.scenario in scenarios]
    groups = _group(chosen, lambda r: f"{r.case.scenario}: {r.case.variant}")
    return _table(_HEADER, [_row(k, groups[k], policy) for k in sorted(groups)])


def rule_table(results: Sequence[Result], policy: MatchingPolicy) -> str:
    by_rule: dict[tuple[str, Decimal], Counter[str]] = defaultdict(Counter)
    for r in results:
        if r.matches and policy.auto_applies(r.matches[0]):
            best = r.matches[0]
            by_rule[(best.rule, best.confidence)][classify(r, policy)] += 1
    rows = []
    for (rule, confidence), kinds in sorted(by_rule.items(), key=lambda kv: -kv[0][1]):
        auto = sum(kinds.values())
        wrong = kinds[AUTO_INCOMPLETE] + kinds[AUTO_MISAPPLIED]
        rows.append([rule, str(confidence), str(auto), _pct(kinds[AUTO_OK], auto), str(wrong)])
    return _table(("rule", "confidence", "auto-applied", "precision", "wrong"), rows)


def alias_line(ledger: Ledger, cases: Sequence[Case]) -> str:
    """How often the alias table identifies the payer of a statement line spelt as a customer."""
    names = {c.customer_id: c.payer_names for c in ledger.customers}
    resolved = Counter(
        ledger.aliases.get(normalize_alias(case.remittance.payer_name)) == case.true_customer
        for case in cases
        if case.population == "statement"
        and case.remittance.payer_name in names[case.true_customer]
        and case.remittance.payer_name is not None
    )
    elsewhere = sum(
        1
        for case in cases
        if case.population == "statement"
        and case.remittance.payer_name in names[case.true_customer]
        and case.remittance.payer_name is not None
        and ledger.aliases.get(normalize_alias(case.remittance.payer_name))
        not in (None, case.true_customer)
    )
    total = resolved[True] + resolved[False]
    return (
        f"Statement lines whose payer name is a spelling of the paying customer: {total}; the "
        f"alias table resolves {resolved[True]} ({_pct(resolved[True], total)}) to that "
        f"customer and {elsewhere} to another customer (a sister company)."
    )


def timing_table(results: Sequence[Result]) -> str:
    rows = []
    for population, group in sorted(_group(results, lambda r: r.case.population).items()):
        ms = sorted(r.seconds * 1000 for r in group)
        passed = sorted(r.invoices_passed for r in group)
        total = sum(r.seconds for r in group)
        p99 = ms[min(len(ms) - 1, math.ceil(0.99 * len(ms)) - 1)]
        rows.append(
            [
                population,
                str(len(group)),
                f"{statistics.median(passed):g} / {passed[-1]}",
                f"{len(group) / total:,.0f}",
                f"{statistics.median(ms):.3f}",
                f"{p99:.3f}",
                f"{ms[-1]:.3f}",
            ]
        )
    total = sum(r.seconds for r in results)
    rows.append(["**all**", str(len(results)), "", f"{len(results) / total:,.0f}", "", "", ""])
    return _table(
        (
            "population",
            "calls",
            "invoices passed (median / max)",
            "payments / s",
            "p50 ms",
            "p99 ms",
            "max ms",
        ),
        rows,
    )


def _describe(result: Result, ledger: Ledger) -> list[str]:
    def allocs(pairs: Iterable[tuple[uuid.UUID, int]]) -> str:
        parts = sorted(
            f"{ledger.by_id[i].number} ({ledger.by_id[i].customer_id}) "
            f"{Money.of_minor(m, CURRENCY)}"
            for i, m in pairs
        )
        return ", ".join(parts) or "nothing"

    case, best = result.case, result.matches[0]
    named = sorted(
        f"{inv.number} {inv.open_amount}"
        + ("" if inv.discounted_amount is None else f" (discounted {inv.discounted_amount})")
        for inv in ledger.by_customer.get(case.true_customer, ())
    )
    return [
        f"  - input: amount {case.remittance.amount}, reference {case.remittance.reference!r}, "
        f"customer_id {case.remittance.customer_id!r}, payer_name {case.remittance.payer_name!r} "
        f"(paid by {case.true_customer}, {len(named)} open invoices)",
        f"  - did: {best.rule} {best.confidence}: {allocs(allocations(best))} — {best.explanation}",
        f"  - right: {allocs(case.truth)}",
    ]


def _telling(result: Result, ledger: Ledger) -> tuple[bool, Decimal, str]:
    """Which example to show: one whose payer name names the paying customer, surest first."""
    payer = result.case.remittance.payer_name
    named = payer is not None and ledger.aliases.get(normalize_alias(payer)) == (
        result.case.true_customer
    )
    return named, result.matches[0].confidence, result.case.remittance.reference


def wrong_report(results: Sequence[Result], ledger: Ledger) -> str:
    policies = {t: MatchingPolicy(auto_apply_threshold=t) for t in THRESHOLDS}
    groups: dict[tuple[str, str, str], list[Result]] = defaultdict(list)
    lowest = policies[THRESHOLDS[0]]
    for r in results:
        if classify(r, lowest) in (AUTO_INCOMPLETE, AUTO_MISAPPLIED):
            groups[(r.case.scenario, r.case.population, classify(r, lowest))].append(r)
    if not groups:
        return "No wrong auto-application at any threshold."
    lines = []
    for (scenario, population, kind), group in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        per = ", ".join(
            f"{sum(1 for r in group if policies[t].auto_applies(r.matches[0]))} at {t}"
            for t in THRESHOLDS
        )
        variants = Counter(r.case.variant for r in group)
        lines.append(
            f"- **{scenario} / {population}**, {kind.removeprefix('auto_')}: {per} "
            f"(variants: {', '.join(f'{v} x{n}' for v, n in variants.most_common())})"
        )
        lines += _describe(max(group, key=lambda r: _telling(r, ledger)), ledger)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--payments", type=int, default=5000)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rng = random.Random(args.seed)
    ledger = build_ledger(rng, args.customers)
    cases = make_cases(rng, ledger, args.payments)
    results = run(ledger, cases, MatchingPolicy())
    wall = time.perf_counter() - started

    counts = [len(v) for v in ledger.by_customer.values()]
    discounted = sum(1 for i in ledger.invoices if i.discounted_amount is not None)
    shared = sum(
        1
        for invs in ledger.by_customer.values()
        if len({i.open_amount.amount for i in invs}) < len(invs)
    )
    print(f"# Cash application benchmark (seed {args.seed})\n")
    print(
        f"Ledger: {len(ledger.customers)} customers ({ledger.twins} sister companies sharing a "
        f"name), {len(ledger.invoices)} open invoices ({min(counts)}-{max(counts)} per customer, "
        f"median {statistics.median(counts):g}), {discounted} inside an early-payment discount "
        f"window, {shared} customers with two or more invoices of the same amount, "
        f"{len(ledger.aliases)} alias keys."
    )
    print(
        f"Payments: {len(cases)}; mix (%): " + ", ".join(f"{k} {v}" for k, v in SCENARIOS.items())
    )
    print(alias_line(ledger, cases))
    print(
        "\nColumns: auto-applied = best match at or above the threshold / n; precision = "
        "auto-applied exactly as the truth / auto-applied; wrong = auto-applied otherwise "
        "(incomplete: a strict part of the truth, the rest left unapplied; misapplied: money "
        "on an invoice or amount the payer did not mean); review = proposals but none "
        "auto-applied / n; truth in proposals, at rank 1 = of reviewed payments that have a "
        "truth; found = auto-applied correctly or truth among the proposals / payments with a "
        "truth (noise payments have none)."
    )
    for t in THRESHOLDS:
        print(f"\n## Threshold {t}" + (" (default)" if t == DEFAULT_THRESHOLD else "") + "\n")
        print(threshold_table(results, MatchingPolicy(auto_apply_threshold=t)))
    default = MatchingPolicy(auto_apply_threshold=DEFAULT_THRESHOLD)
    print(f"\n## Scenario by population at {DEFAULT_THRESHOLD}\n")
    print(scenario_population_table(results, default))
    print(f"\n## Reference formats and variants at {DEFAULT_THRESHOLD}\n")
    print(variant_table(results, default, {"ref_exact", "ref_typo", "ref_several"}))
    print(f"\n## Auto-applied by rule at {DEFAULT_THRESHOLD}\n")
    print(rule_table(results, default))
    print(f"\n## Wrong auto-applications (threshold {THRESHOLDS[0]} and up)\n")
    print(wrong_report(results, ledger))
    print("\n## Speed of find_matches\n")
    print(timing_table(results))
    print(f"\nWall time including generation: {wall:.1f} s.")


if __name__ == "__main__":
    main()
