"""The cash-application matcher: each rule and its confidence, normalising, and invariants."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.payments.domain.matching import (
    CONFIDENCE,
    MAX_MATCHES,
    RULES,
    Match,
    MatchingPolicy,
    OpenInvoice,
    ProposedAllocation,
    Remittance,
    find_matches,
    invoice_numbers_in,
    normalize_alias,
)
from shared.money import Money

DAY0 = date(2026, 1, 1)
RECEIVED = date(2026, 3, 1)
POLICY = MatchingPolicy()


def eur(minor: int) -> Money:
    return Money.of_minor(minor, "EUR")


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def inv(
    n: int,
    open_minor: int,
    customer: str = "C1",
    *,
    due_day: int | None = None,
    discounted: int | None = None,
    currency: str = "EUR",
) -> OpenInvoice:
    """Invoice INV-2026-00000n; due n days after DAY0 unless told, so lower n is older."""
    return OpenInvoice(
        invoice_id=uid(n),
        customer_id=customer,
        number=f"INV-2026-{n:06d}",
        open_amount=Money.of_minor(open_minor, currency),
        due_date=DAY0 + timedelta(days=n if due_day is None else due_day),
        issue_date=DAY0 - timedelta(days=30),
        discounted_amount=None if discounted is None else Money.of_minor(discounted, currency),
    )


def pay(
    minor: int,
    reference: str = "",
    customer: str | None = "C1",
    payer: str | None = None,
    currency: str = "EUR",
) -> Remittance:
    return Remittance(Money.of_minor(minor, currency), reference, payer, customer, RECEIVED)


def allocs(match: Match) -> list[tuple[int, int]]:
    """(invoice n, minor units) per allocation, in the match's order."""
    return [(a.invoice_id.int, a.amount.amount) for a in match.allocations]


def only(matches: Sequence[Match]) -> Match:
    assert len(matches) == 1, matches
    return matches[0]


# ------------------------------------------------------------------ invoice_number


def test_number_and_amount_equal_settles_it_at_099() -> None:
    invoices = [inv(1, 10_000), inv(2, 5_000)]
    match = find_matches(pay(10_000, "Payment for INV-2026-000001"), invoices, {})[0]
    assert (match.rule, match.confidence, allocs(match)) == (
        "invoice_number",
        Decimal("0.99"),
        [(1, 10_000)],
    )
    assert match.customer_id == "C1"
    assert match.explanation == "reference names INV-2026-000001; amount equals its open amount"
    assert POLICY.auto_applies(match)


def test_several_numbers_settle_in_the_order_named() -> None:
    invoices = [inv(1, 1_000), inv(2, 2_000), inv(3, 3_000)]
    match = find_matches(pay(4_000, "inv 2026-3 / inv 2026-1"), invoices, {})[0]
    assert match.confidence == Decimal("0.99")
    assert allocs(match) == [(3, 3_000), (1, 1_000)]
    assert "INV-2026-000003 and INV-2026-000001" in match.explanation


def test_partial_payment_by_number_fills_in_the_order_named_at_095() -> None:
    invoices = [inv(1, 1_000), inv(2, 2_000)]
    match = find_matches(pay(2_500, "INV-2026-000002, INV-2026-000001"), invoices, {})[0]
    assert (match.rule, match.confidence) == ("invoice_number", Decimal("0.95"))
    assert allocs(match) == [(2, 2_000), (1, 500)]
    assert match.total == eur(2_500)


def test_over_payment_by_number_is_proposed_for_review_at_085() -> None:
    """Over-payments usually pay more than they name ("INV-1/2/3" shorthand): a person decides."""
    invoices = [inv(1, 1_000), inv(2, 2_000)]
    match = find_matches(pay(3_500, "INV-2026-000001 INV-2026-000002"), invoices, {})[0]
    assert (match.rule, match.confidence) == ("invoice_number", Decimal("0.85"))
    assert not POLICY.auto_applies(match)
    assert allocs(match) == [(1, 1_000), (2, 2_000)]
    assert match.total == eur(3_000)
    assert "5.00 EUR stays unapplied" in match.explanation


def test_number_paid_at_the_discounted_amount_settles_it() -> None:
    invoices = [inv(1, 10_000, discounted=9_800), inv(2, 5_000)]
    match = find_matches(pay(9_800, "INV-2026-000001"), invoices, {})[0]
    assert (match.rule, match.confidence, allocs(match)) == (
        "invoice_number",
        Decimal("0.99"),
        [(1, 9_800)],
    )
    assert "early-payment discount" in match.explanation


def test_discount_taken_on_some_named_invoices_only() -> None:
    invoices = [inv(1, 10_000, discounted=9_800), inv(2, 5_000, discounted=4_900)]
    match = find_matches(pay(14_800, "INV-2026-000001, INV-2026-000002"), invoices, {})[0]
    assert match.confidence == Decimal("0.99")
    assert allocs(match) == [(1, 9_800), (2, 5_000)]


def test_unknown_payer_is_identified_by_the_invoice_number() -> None:
    invoices = [inv(1, 1_000, "C1"), inv(2, 2_000, "C2")]
    match = find_matches(pay(2_000, "ref INV-2026-000002", customer=None), invoices, {})[0]
    assert (match.customer_id, match.rule, match.confidence) == (
        "C2",
        "invoice_number",
        Decimal("0.99"),
    )


def test_numbers_of_two_customers_stay_below_the_threshold() -> None:
    invoices = [inv(1, 1_000, "C1"), inv(2, 2_000, "C2")]
    matches = find_matches(
        pay(1_000, "INV-2026-000001 INV-2026-000002", customer=None), invoices, {}
    )
    assert [(m.customer_id, m.confidence) for m in matches] == [
        ("C1", Decimal("0.70")),  # its named invoice is settled exactly
        ("C2", Decimal("0.50")),
    ]
    assert not any(POLICY.auto_applies(m) for m in matches)
    assert "2 customers" in matches[0].explanation


def test_known_customer_ignores_numbers_of_other_customers() -> None:
    invoices = [inv(1, 1_000, "C1"), inv(2, 1_000, "C2")]
    match = only(find_matches(pay(1_000, "INV-2026-000002", customer="C1"), invoices, {}))
    assert (match.customer_id, match.rule, allocs(match)) == ("C1", "exact_amount", [(1, 1_000)])


def test_amount_alternatives_to_a_named_invoice_are_capped() -> None:
    invoices = [inv(1, 10_000), inv(2, 4_000)]
    matches = find_matches(pay(4_000, "INV-2026-000001"), invoices, {})
    assert [(m.rule, m.confidence, allocs(m)) for m in matches] == [
        ("invoice_number", Decimal("0.95"), [(1, 4_000)]),
        ("exact_amount", Decimal("0.50"), [(2, 4_000)]),
    ]
    assert "but the reference names INV-2026-000001" in matches[1].explanation


def test_a_named_invoice_matching_exactly_is_proposed_once() -> None:
    match = only(find_matches(pay(1_000, "INV-2026-000001"), [inv(1, 1_000)], {}))
    assert match.rule == "invoice_number"


# -------------------------------------------------------------------- exact_amount


def test_exactly_one_invoice_with_the_amount_at_092() -> None:
    invoices = [inv(1, 1_000), inv(2, 2_000), inv(3, 3_000)]
    match = find_matches(pay(2_000), invoices, {})[0]
    assert (match.rule, match.confidence, allocs(match)) == (
        "exact_amount",
        Decimal("0.92"),
        [(2, 2_000)],
    )
    assert POLICY.auto_applies(match)


def test_several_equal_invoices_propose_the_oldest_first_for_review() -> None:
    invoices = [inv(1, 2_000, due_day=40), inv(2, 2_000, due_day=10), inv(3, 2_000, due_day=20)]
    matches = find_matches(pay(2_000), invoices, {})
    exact = [m for m in matches if m.rule == "exact_amount"]
    assert [allocs(m)[0][0] for m in exact] == [2, 3, 1]
    assert {m.confidence for m in exact} == {Decimal("0.60")}
    assert matches[0] == exact[0]
    assert not POLICY.auto_applies(matches[0])


def test_discounted_amount_matches_exactly() -> None:
    invoices = [inv(1, 10_000, discounted=9_800), inv(2, 5_000)]
    match = find_matches(pay(9_800), invoices, {})[0]
    assert (match.rule, match.confidence, allocs(match)) == (
        "exact_amount",
        Decimal("0.92"),
        [(1, 9_800)],
    )
    assert "discounted" in match.explanation


def test_a_discount_that_is_not_below_the_open_amount_is_ignored() -> None:
    odd = inv(1, 10_000, discounted=10_000)
    assert find_matches(pay(10_000), [odd], {})[0].confidence == Decimal("0.92")
    assert find_matches(pay(12_000), [inv(1, 10_000, discounted=12_000)], {}) == []


def test_other_customers_invoices_are_out_of_scope() -> None:
    assert find_matches(pay(1_000, customer="C1"), [inv(1, 1_000, "C2")], {}) == []


def test_cross_currency_invoices_are_ignored() -> None:
    invoices = [inv(1, 1_000, currency="USD"), inv(2, 1_000, currency="EUR")]
    match = only(find_matches(pay(1_000, "INV-2026-000001"), invoices, {}))
    assert (match.rule, allocs(match)) == ("exact_amount", [(2, 1_000)])
    assert find_matches(pay(1_000, "INV-2026-000001", currency="GBP"), invoices, {}) == []


# --------------------------------------------------------------------- combination


def test_unique_combination_at_090() -> None:
    invoices = [inv(1, 1_000), inv(2, 2_500), inv(3, 4_000), inv(4, 7_700)]
    match = only(find_matches(pay(11_200), invoices, {}))
    assert (match.rule, match.confidence) == ("combination", Decimal("0.90"))
    assert allocs(match) == [(1, 1_000), (2, 2_500), (4, 7_700)]
    assert "the only such combination" in match.explanation


def test_combination_may_use_a_discounted_amount() -> None:
    invoices = [inv(1, 1_000, discounted=980), inv(2, 2_500)]
    match = only(find_matches(pay(3_480), invoices, {}))
    assert (match.rule, allocs(match)) == ("combination", [(1, 980), (2, 2_500)])


def test_several_combinations_propose_only_the_oldest_at_055() -> None:
    invoices = [inv(1, 1_000), inv(2, 2_000), inv(3, 1_500), inv(4, 1_500)]
    match = only(find_matches(pay(3_000), invoices, {}))
    assert (match.rule, match.confidence) == ("combination", Decimal("0.55"))
    assert allocs(match) == [(1, 1_000), (2, 2_000)]


def test_a_single_invoice_and_a_combination_making_the_amount_are_both_reviewed() -> None:
    """Found by the benchmark: 403.00 paid for 293.00 + 110.00 went to a lone 403.00 invoice."""
    invoices = [inv(1, 1_000), inv(2, 2_000), inv(3, 3_000)]
    matches = find_matches(pay(3_000), invoices, {})
    assert [(m.rule, m.confidence) for m in matches] == [
        ("exact_amount", Decimal("0.60")),
        ("combination", Decimal("0.55")),
    ]
    assert not any(POLICY.auto_applies(m) for m in matches)


def test_an_unknown_payer_naming_another_customers_invoice_is_reviewed() -> None:
    """Found by the benchmark: a mistyped number (000755 for 000655) named another customer's
    invoice; the payer's alias and an exact amount pointed at the right one."""
    invoices = [inv(1, 99_200, "C2"), inv(2, 19_800, "C1")]
    aliases = {normalize_alias("Grossmann Industries B.V."): "C1"}
    remittance = pay(
        19_800, "Zahlung INV-2026-000001 vom 06.02", customer=None, payer="GROSSMANN INDUSTRIES"
    )
    matches = find_matches(remittance, invoices, aliases)
    assert not any(POLICY.auto_applies(m) for m in matches)
    assert any(m.customer_id == "C1" and allocs(m) == [(2, 19_800)] for m in matches)
    # Without an alias, a partial payment by number from an unknown payer is reviewed too.
    alone = find_matches(pay(19_800, "INV-2026-000001", customer=None), invoices, {})
    assert alone and not POLICY.auto_applies(alone[0])
    # A number the amount settles exactly still applies for an unknown payer.
    exact = find_matches(pay(99_200, "INV-2026-000001", customer=None), invoices, {})
    assert POLICY.auto_applies(exact[0]) and exact[0].customer_id == "C2"


def test_combination_search_only_uses_the_oldest_candidates() -> None:
    invoices = [inv(1, 1_000), inv(2, 2_000), inv(3, 4_000)]
    assert find_matches(pay(5_000), invoices, {})[0].rule == "combination"
    narrow = MatchingPolicy(max_combination_candidates=2)
    assert find_matches(pay(5_000), invoices, {}, narrow) == []
    assert find_matches(pay(7_000), invoices, {}, MatchingPolicy(max_combination_size=2)) == []


def test_combination_search_over_25_candidates_is_fast() -> None:
    rng = random.Random(7)
    invoices = [inv(n, rng.randrange(10_000, 20_000), discounted=None) for n in range(1, 26)]
    equal = [inv(n, 10_000, discounted=9_900) for n in range(1, 26)]
    started = time.perf_counter()
    for pool, amount in (
        (invoices, 1),
        (invoices, 55_555),
        (invoices, 10**9),
        (equal, 39_999),
        (equal, 39_700),
    ):
        find_matches(pay(amount), pool, {})
    assert time.perf_counter() - started < 1.0


# ----------------------------------------------------------------------- tolerance


def test_one_invoice_within_tolerance_at_075() -> None:
    short = only(find_matches(pay(99_500), [inv(1, 100_000)], {}))
    assert (short.rule, short.confidence, allocs(short)) == (
        "tolerance",
        Decimal("0.75"),
        [(1, 99_500)],
    )
    assert "5.00 EUR short of" in short.explanation
    over = only(find_matches(pay(100_400), [inv(1, 100_000)], {}))
    assert allocs(over) == [(1, 100_000)]
    assert not POLICY.auto_applies(short)


def test_tolerance_is_the_smaller_of_percent_and_cap() -> None:
    assert find_matches(pay(99_000), [inv(1, 100_000)], {})[0].rule == "tolerance"  # 1% = 10.00
    assert find_matches(pay(98_999), [inv(1, 100_000)], {}) == []
    big = inv(1, 1_000_000)  # 1% = 100.00, but the cap is 10.00
    assert find_matches(pay(999_000), [big], {})[0].rule == "tolerance"
    assert find_matches(pay(998_999), [big], {}) == []
    assert (
        find_matches(pay(999), [inv(1, 1_000)], {}, MatchingPolicy(tolerance_percent=Decimal("0")))
        == []
    )


def test_several_invoices_within_tolerance_at_050() -> None:
    matches = find_matches(pay(100_000), [inv(1, 100_100), inv(2, 99_900)], {})
    assert [(m.rule, m.confidence, allocs(m)) for m in matches] == [
        ("tolerance", Decimal("0.50"), [(1, 100_000)]),
        ("tolerance", Decimal("0.50"), [(2, 99_900)]),
    ]


def test_tolerance_is_not_tried_when_something_matches_exactly() -> None:
    matches = find_matches(pay(100_000), [inv(1, 100_000), inv(2, 99_950)], {})
    assert [m.rule for m in matches] == ["exact_amount"]


# ------------------------------------------------------------------- unknown payer


ALIASES = {normalize_alias("ACME Ltd."): "C1"}


def test_alias_and_exact_amount_at_090_applies_at_the_default_threshold() -> None:
    """A person confirmed the alias; one invoice of that customer with exactly the amount."""
    invoices = [inv(1, 1_000, "C1"), inv(2, 2_000, "C1"), inv(3, 2_000, "C2")]
    match = only(find_matches(pay(2_000, customer=None, payer="ACME LIMITED"), invoices, ALIASES))
    assert (match.customer_id, match.rule, match.confidence) == ("C1", "alias", Decimal("0.90"))
    assert allocs(match) == [(2, 2_000)]
    assert "alias of customer C1" in match.explanation
    assert POLICY.auto_applies(match)
    assert not MatchingPolicy(auto_apply_threshold=Decimal("0.95")).auto_applies(match)


def test_alias_and_unique_combination_at_085() -> None:
    invoices = [inv(1, 1_000, "C1"), inv(2, 2_500, "C1"), inv(3, 3_500, "C2")]
    match = only(find_matches(pay(3_500, customer=None, payer="Acme"), invoices, ALIASES))
    assert (match.customer_id, match.rule, match.confidence) == ("C1", "alias", Decimal("0.85"))
    assert allocs(match) == [(1, 1_000), (2, 2_500)]


def test_alias_does_not_propose_ambiguous_or_fuzzy_matches() -> None:
    equal = [inv(1, 2_000, "C1"), inv(2, 2_000, "C1")]
    assert find_matches(pay(2_000, customer=None, payer="Acme"), equal, ALIASES) == []
    assert find_matches(pay(1_995, customer=None, payer="Acme"), [inv(1, 2_000)], ALIASES) == []


def test_unknown_payer_with_one_exact_invoice_is_only_a_hint() -> None:
    invoices = [inv(1, 1_000, "C1"), inv(2, 2_000, "C2")]
    match = only(find_matches(pay(2_000, customer=None, payer="Stranger"), invoices, ALIASES))
    assert (match.customer_id, match.rule, match.confidence) == (
        "C2",
        "exact_amount",
        Decimal("0.40"),
    )
    assert not MatchingPolicy(auto_apply_threshold=Decimal("0.50")).auto_applies(match)


def test_unknown_payer_with_ambiguous_or_no_amount_gets_nothing() -> None:
    invoices = [inv(1, 2_000, "C1"), inv(2, 2_000, "C2"), inv(3, 500, "C2"), inv(4, 700, "C2")]
    assert find_matches(pay(2_000, customer=None), invoices, {}) == []
    assert (
        find_matches(pay(1_200, customer=None), invoices, {}) == []
    )  # no combinations unidentified
    assert find_matches(pay(1_990, customer=None), invoices, {}) == []  # nor tolerance


# ----------------------------------------------------------------- general behaviour


def test_nothing_to_apply_or_nothing_open_gives_no_matches() -> None:
    assert find_matches(pay(1_000), [], {}) == []
    assert find_matches(pay(0), [inv(1, 1_000)], {}) == []
    assert find_matches(pay(-1_000), [inv(1, 1_000)], {}) == []
    assert find_matches(pay(50), [inv(1, 1_000), inv(2, 2_000)], {}) == []


def test_at_most_max_matches_are_returned() -> None:
    invoices = [inv(n, 2_000) for n in range(1, 12)]
    matches = find_matches(pay(2_000), invoices, {})
    assert len(matches) == MAX_MATCHES
    assert [allocs(m)[0][0] for m in matches] == [1, 2, 3, 4, 5]


def test_auto_applies_at_and_above_the_threshold_only() -> None:
    allocation = (ProposedAllocation(uid(1), eur(100)),)
    at = Match("C1", allocation, Decimal("0.90"), "exact_amount", "x")
    below = Match("C1", allocation, Decimal("0.89"), "exact_amount", "x")
    assert POLICY.auto_applies(at)
    assert not POLICY.auto_applies(below)
    assert not MatchingPolicy(auto_apply_threshold=Decimal("0.95")).auto_applies(at)
    assert MatchingPolicy(auto_apply_threshold=Decimal("0")).auto_applies(below)


def test_match_refuses_broken_allocations() -> None:
    one = ProposedAllocation(uid(1), eur(100))
    for allocations, confidence in (
        ((), Decimal("0.5")),
        ((one, one), Decimal("0.5")),
        ((ProposedAllocation(uid(1), eur(0)),), Decimal("0.5")),
        ((one, ProposedAllocation(uid(2), Money.of_minor(1, "USD"))), Decimal("0.5")),
        ((one,), Decimal("1.01")),
    ):
        with pytest.raises(ValueError):
            Match("C1", allocations, confidence, "exact_amount", "x")
    assert Match(
        "C1", (one, ProposedAllocation(uid(2), eur(5))), Decimal(1), "alias", "x"
    ).total == eur(105)


def test_policy_refuses_nonsense() -> None:
    for kwargs in (
        {"auto_apply_threshold": Decimal("1.5")},
        {"tolerance_percent": Decimal("-1")},
        {"tolerance_max_minor": -1},
        {"max_combination_size": 0},
        {"max_combination_size": 7},
        {"max_combination_candidates": -1},
    ):
        with pytest.raises(ValueError):
            MatchingPolicy(**kwargs)


def test_the_confidence_table_is_two_decimals_within_bounds() -> None:
    for value in CONFIDENCE.values():
        assert Decimal(0) <= value <= Decimal(1)
        assert value == value.quantize(Decimal("0.01"))
    assert CONFIDENCE["alias_exact"] < CONFIDENCE["exact_unique"]
    assert CONFIDENCE["alias_combination"] < CONFIDENCE["combination_unique"]
    assert CONFIDENCE["number_split_settles"] < POLICY.auto_apply_threshold


# ------------------------------------------------------------------ normalize_alias


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("ACME Ltd.", "acme limited"),
        ("ACME Ltd.", "Acme"),
        ("Acme, Inc.", "ACME INC"),
        ("Müller GmbH", "MULLER G.m.b.H."),
        ("Smith & Co.", "smith"),
        ("Van der Berg B.V.", "van  der   berg bv"),
        ("O'Brien Trading PLC", "OBrien Trading"),
        ("Ledger-Line S.A.", "ledger line"),
    ],
)
def test_alias_spellings_normalise_alike(left: str, right: str) -> None:
    assert normalize_alias(left) == normalize_alias(right)


def test_alias_normalisation_keeps_the_last_word_and_the_middle() -> None:
    assert normalize_alias("ACME Ltd.") == "acme"
    assert normalize_alias("Limited") == "limited"
    assert normalize_alias("Co Op Ltd") == "co op"
    assert normalize_alias("Acme Ltd") != normalize_alias("Acme Holdings Ltd")


# --------------------------------------------------------------- invoice_numbers_in

KNOWN = ["INV-2026-000123", "INV-2026-000124", "INV-2026-000012", "CN-2026-000123"]


@pytest.mark.parametrize(
    "text",
    [
        "INV-2026-000123",
        "inv 2026/000123",
        "invoice no. inv 2026 123",
        "INV2026000123",
        "Inv.2026.000123 thanks",
        "(INV-2026-123)",
        "inv_2026_0123",
    ],
)
def test_invoice_number_spellings(text: str) -> None:
    assert invoice_numbers_in(text, KNOWN) == ["INV-2026-000123"]


@pytest.mark.parametrize(
    "text",
    [
        "INV-2026-0001234",
        "INV-2026-1234",
        "XINV-2026-000123",
        "INV2026123",
        "INV-2025-000123",
        "2026-000123",
    ],
)
def test_not_invoice_numbers(text: str) -> None:
    assert "INV-2026-000123" not in invoice_numbers_in(text, KNOWN)


def test_numbers_in_order_of_appearance_without_duplicates() -> None:
    text = "inv-2026-124, CN 2026 123, INV-2026-000124 again, INV-2026-12"
    assert invoice_numbers_in(text, [*KNOWN, "INV-2026-000124"]) == [
        "INV-2026-000124",
        "CN-2026-000123",
        "INV-2026-000012",
    ]


def test_a_number_only_inside_a_longer_one_does_not_count() -> None:
    assert invoice_numbers_in("INV-2026-000123", ["INV-2026-000123", "2026-000123"]) == [
        "INV-2026-000123"
    ]
    assert invoice_numbers_in("2026-000123", ["INV-2026-000123", "2026-000123"]) == ["2026-000123"]


@given(
    seq=st.integers(1, 999_999),
    sep=st.sampled_from(["-", " ", "/", ".", " - ", ""]),
    upper=st.booleans(),
    strip_zeros=st.booleans(),
    noise=st.sampled_from(["", "Payment ", "re: ", "ref:"]),
)
def test_any_tolerated_spelling_is_found(
    seq: int, sep: str, upper: bool, strip_zeros: bool, noise: str
) -> None:
    number = f"INV-2026-{seq:06d}"
    digits = str(seq) if strip_zeros and sep else f"{seq:06d}"
    text = f"{noise}INV{sep}2026{sep}{digits} thanks"
    text = text.upper() if upper else text.lower()
    assert invoice_numbers_in(text, [number, "INV-2025-000001"]) == [number]


# --------------------------------------------------------------------- properties

CUSTOMERS = ("C1", "C2", "C3")


@st.composite
def invoices_strategy(draw: st.DrawFn) -> list[OpenInvoice]:
    result = []
    for n in range(1, draw(st.integers(0, 14)) + 1):
        open_minor = draw(
            st.sampled_from([100, 250, 500, 1_000, 1_234, 2_000]) | st.integers(1, 5_000)
        )
        discounted = draw(st.none() | st.integers(0, open_minor + 1))
        invoice = inv(
            n,
            open_minor,
            draw(st.sampled_from(CUSTOMERS)),
            due_day=draw(st.integers(0, 20)),
            discounted=discounted if discounted and discounted > 0 else None,
            currency=draw(st.sampled_from(["EUR", "EUR", "EUR", "USD"])),
        )
        number = draw(st.sampled_from([invoice.number, f"INV-2026-{draw(st.integers(1, 5)):06d}"]))
        result.append(dataclasses.replace(invoice, number=number))
    return result


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Remittance, list[OpenInvoice], MatchingPolicy]:
    invoices = draw(invoices_strategy())
    named = draw(st.lists(st.sampled_from(invoices), max_size=3)) if invoices else []
    picked = draw(st.lists(st.sampled_from(invoices), max_size=4)) if invoices else []
    amount = sum(i.open_amount.amount for i in picked) + draw(st.sampled_from([0, 0, -1, 5, -20]))
    amount = draw(st.sampled_from([amount, draw(st.integers(-10, 9_000))]))
    reference = " ".join(
        draw(st.sampled_from([i.number, i.number.lower().replace("-", " ")])) for i in named
    )
    remittance = Remittance(
        amount=Money.of_minor(amount, draw(st.sampled_from(["EUR", "EUR", "USD", "JPY"]))),
        reference=reference + draw(st.sampled_from(["", " thanks", " 2026"])),
        payer_name=draw(st.sampled_from([None, "ACME Ltd", "acme", "Stranger GmbH"])),
        customer_id=draw(st.sampled_from([None, *CUSTOMERS])),
        received_on=RECEIVED,
    )
    policy = MatchingPolicy(
        auto_apply_threshold=draw(st.sampled_from([Decimal("0.90"), Decimal("0.5")])),
        tolerance_percent=draw(st.sampled_from([Decimal("0"), Decimal("1"), Decimal("2.5")])),
        tolerance_max_minor=draw(st.integers(0, 100)),
        max_combination_size=draw(st.integers(1, 5)),
        max_combination_candidates=draw(st.integers(0, 25)),
    )
    return remittance, invoices, policy


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_every_match_keeps_the_invariants(
    scenario: tuple[Remittance, list[OpenInvoice], MatchingPolicy],
) -> None:
    remittance, invoices, policy = scenario
    by_id = {i.invoice_id: i for i in invoices}
    matches = find_matches(remittance, invoices, ALIASES, policy)
    assert len(matches) <= MAX_MATCHES
    for match in matches:
        assert match.rule in RULES
        assert Decimal(0) <= match.confidence <= Decimal(1)
        assert match.confidence == match.confidence.quantize(Decimal("0.01"))
        ids = [a.invoice_id for a in match.allocations]
        assert len(ids) == len(set(ids)) >= 1
        assert match.total <= remittance.amount
        for allocation in match.allocations:
            invoice = by_id[allocation.invoice_id]
            assert (
                allocation.amount.currency
                == remittance.amount.currency
                == invoice.open_amount.currency
            )
            assert Money.zero(remittance.amount.currency) < allocation.amount <= invoice.open_amount
            assert invoice.customer_id == match.customer_id
        if remittance.customer_id is not None:
            assert match.customer_id == remittance.customer_id
        elif match.rule != "alias" and not invoice_numbers_in(
            remittance.reference, [i.number for i in invoices]
        ):
            # An unknown payer, named by neither an alias nor an invoice number: review.
            assert match.confidence < MatchingPolicy().auto_apply_threshold
    for earlier, later in itertools.pairwise(matches):
        assert earlier.confidence >= later.confidence
        if earlier.confidence == later.confidence:
            assert min(by_id[a.invoice_id].due_date for a in earlier.allocations) <= min(
                by_id[a.invoice_id].due_date for a in later.allocations
            )
    assert len({frozenset(m.allocations) for m in matches}) == len(matches)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_matching_is_deterministic_and_order_independent(
    scenario: tuple[Remittance, list[OpenInvoice], MatchingPolicy], rng: random.Random
) -> None:
    remittance, invoices, policy = scenario
    shuffled = list(invoices)
    rng.shuffle(shuffled)
    first = find_matches(remittance, invoices, ALIASES, policy)
    assert find_matches(remittance, invoices, ALIASES, policy) == first
    assert find_matches(remittance, shuffled, ALIASES, policy) == first
