"""Credit checks: pass, every failure reason, idempotent re-checks, reservation expiry and release."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from services.credit.domain.account import (
    CheckRecord,
    CreditAccountState,
    check_credit,
    expire_reservations,
    headroom,
    live_reservations,
    outcome_for,
    release_reservation,
    reserved,
    update_policy,
)
from services.credit.tests.test_domain_account import (
    CUSTOMER,
    NOW,
    TTL,
    check_passed,
    eur,
    given,
    hold_placed,
    limit_changed,
    then,
    uid,
)
from shared.contracts.credit import (
    CreditCheckFailed,
    CreditCheckPassed,
    CreditCheckReason,
    CreditReservationReleased,
)
from shared.errors import StateConflict, ValidationFailed
from shared.events.registry import EventPayload
from shared.money import Money


def check(
    state: CreditAccountState,
    amount: Money | str,
    *,
    check: int = 1,
    reference: str = "invoice-1",
    exposure: Money | str = "0.00",
    days_overdue: int = 0,
    now: datetime = NOW,
    terms_kind: str | None = None,
) -> list[EventPayload]:
    return check_credit(
        state,
        check_id=uid(check),
        reference=reference,
        amount=eur(amount) if isinstance(amount, str) else amount,
        exposure=eur(exposure) if isinstance(exposure, str) else exposure,
        days_overdue=days_overdue,
        now=now,
        reservation_ttl=TTL,
        terms_kind=terms_kind,
    )


def failed(events: list[EventPayload]) -> CreditCheckFailed:
    assert len(events) >= 1
    decision = events[-1]
    assert isinstance(decision, CreditCheckFailed)
    return decision


def codes(events: list[EventPayload]) -> list[str]:
    return [r.code for r in failed(events).reasons]


def released(check: int, reference: str, reason: str) -> CreditReservationReleased:
    return CreditReservationReleased(
        customer_id=CUSTOMER,
        check_id=uid(check),
        reference=reference,
        reason=reason,
    )


LIMITED = (limit_changed("1000.00"),)


# ============================================================================ passing


def test_a_check_within_the_headroom_passes_and_reserves_the_amount() -> None:
    state = given(*LIMITED)

    events = check(state, "400.00", exposure="300.00")

    assert events == [
        CreditCheckPassed(
            customer_id=CUSTOMER,
            check_id=uid(1),
            reference="invoice-1",
            amount=eur("400.00"),
            reserved_until=NOW + TTL,
            limit=eur("1000.00"),
            exposure=eur("300.00"),
            reserved=eur("0.00"),
            headroom_after=eur("300.00"),
        )
    ]
    after = then(state, events)
    assert reserved(after, NOW) == eur("400.00")
    assert headroom(after, eur("300.00"), NOW) == eur("300.00")
    assert outcome_for(after, "invoice-1") == CheckRecord(uid(1), passed=True, amount=eur("400.00"))


def test_a_second_check_counts_the_first_reservation() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "400.00"))

    events = check(state, "500.00", check=2, reference="invoice-2", exposure="100.00")

    assert events == [check_passed(2, "invoice-2", "500.00", exposure="100.00", reserved="400.00")]
    assert headroom(then(state, events), eur("100.00"), NOW) == eur("0.00")


def test_a_check_exactly_at_the_limit_passes() -> None:
    events = check(given(*LIMITED), "600.00", exposure="400.00")

    assert isinstance(events[0], CreditCheckPassed)
    assert events[0].headroom_after == eur("0.00")


def test_a_negative_exposure_a_credit_balance_adds_headroom() -> None:
    events = check(given(*LIMITED), "1100.00", exposure="-100.00")

    assert isinstance(events[0], CreditCheckPassed)


# ============================================================================ failing


def test_one_cent_over_the_limit_fails_with_the_excess() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "300.00"))

    events = check(state, "300.01", check=2, reference="invoice-2", exposure="400.00")

    assert events == [
        CreditCheckFailed(
            customer_id=CUSTOMER,
            check_id=uid(2),
            reference="invoice-2",
            amount=eur("300.01"),
            reasons=[
                CreditCheckReason(
                    code="over_limit",
                    message="over the limit by 0.01 EUR (limit 1000.00 EUR, exposure 400.00 EUR, "
                    "reserved 300.00 EUR, amount 300.01 EUR)",
                    amount=eur("0.01"),
                )
            ],
            limit=eur("1000.00"),
            exposure=eur("400.00"),
        )
    ]
    after = then(state, events)
    assert reserved(after, NOW) == eur("300.00")
    record = outcome_for(after, "invoice-2")
    assert record is not None
    assert not record.passed
    assert [r.code for r in record.reasons] == ["over_limit"]


def test_a_zero_limit_refuses_any_credit() -> None:
    assert codes(check(given(limit_changed("0.00")), "0.01")) == ["over_limit"]


def test_a_hold_fails_the_check_and_names_the_hold_reasons() -> None:
    state = given(*LIMITED, hold_placed(1, "fraud review"), hold_placed(2, "legal dispute"))

    reasons = failed(check(state, "1.00")).reasons

    assert [r.code for r in reasons] == ["on_hold"]
    assert reasons[0].message == "customer is on credit hold: fraud review; legal dispute"


def test_without_a_limit_the_check_fails_with_no_limit() -> None:
    decision = failed(check(given(), "1.00", exposure="5.00"))

    assert [r.code for r in decision.reasons] == ["no_limit"]
    assert decision.limit is None
    assert decision.exposure == eur("5.00")


def test_an_amount_in_another_currency_fails_with_currency_mismatch_only() -> None:
    events = check(given(*LIMITED), Money.from_decimal("5000.00", "USD"))

    assert codes(events) == ["currency_mismatch"]
    assert failed(events).reasons[0].message == (
        "the amount is in USD but the credit limit is in EUR"
    )


def test_an_invoice_more_days_overdue_than_the_policy_allows_fails() -> None:
    state = given(*LIMITED)

    assert isinstance(check(state, "1.00", days_overdue=60)[0], CreditCheckPassed)
    reasons = failed(check(state, "1.00", days_overdue=61)).reasons
    assert [(r.code, r.days) for r in reasons] == [("overdue", 61)]
    assert reasons[0].message == "an open invoice is 61 days overdue (the policy allows 60)"


def test_the_policy_sets_the_days_overdue_allowed() -> None:
    state = given(*LIMITED)
    state = then(state, update_policy(state, max_days_overdue=0))

    assert codes(check(state, "1.00", days_overdue=1)) == ["overdue"]


def test_terms_outside_the_allowed_ones_fail() -> None:
    state = given(*LIMITED)
    state = then(state, update_policy(state, max_days_overdue=60, allowed_terms=["net"]))

    assert codes(check(state, "1.00", terms_kind="end_of_month")) == ["terms_not_allowed"]
    assert isinstance(check(state, "1.00", terms_kind="net")[0], CreditCheckPassed)
    assert isinstance(check(state, "1.00", terms_kind=None)[0], CreditCheckPassed)


def test_with_no_allowed_terms_any_terms_pass() -> None:
    assert isinstance(
        check(given(*LIMITED), "1.00", terms_kind="installments")[0], CreditCheckPassed
    )


def test_every_reason_that_applies_is_listed_in_order() -> None:
    state = given(*LIMITED, hold_placed(1))
    state = then(state, update_policy(state, max_days_overdue=30, allowed_terms=["net"]))

    events = check(state, "2000.00", days_overdue=45, terms_kind="installments", exposure="10.00")

    assert codes(events) == ["on_hold", "overdue", "terms_not_allowed", "over_limit"]
    assert failed(events).reasons[-1].amount == eur("1010.00")


def test_hold_and_no_limit_come_before_the_others() -> None:
    state = given(hold_placed(1))

    assert codes(check(state, "1.00", days_overdue=99)) == ["on_hold", "no_limit", "overdue"]


def test_hold_and_currency_mismatch() -> None:
    state = given(*LIMITED, hold_placed(1))

    assert codes(check(state, Money.from_decimal("1", "JPY"))) == ["on_hold", "currency_mismatch"]


# ============================================================================ idempotency


def test_rechecking_a_reference_with_a_live_reservation_changes_nothing() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "400.00"))

    assert check(state, "400.00", check=2, exposure="900.00") == []
    assert reserved(state, NOW) == eur("400.00")
    record = outcome_for(state, "invoice-1")
    assert record is not None
    assert (record.check_id, record.passed) == (uid(1), True)


def test_rechecking_with_the_same_check_id_changes_nothing() -> None:
    state = given(*LIMITED)
    state = then(state, check(state, "2000.00"))

    assert check(state, "2000.00") == []
    with pytest.raises(ValidationFailed, match=r"was for 2000\.00 EUR"):
        check(state, "3000.00")
    with pytest.raises(ValidationFailed, match="already used"):
        check(state, "1.00", reference="invoice-2")


def test_rechecking_an_invoiced_reference_changes_nothing() -> None:
    state = given(
        *LIMITED,
        check_passed(1, "invoice-1", "400.00"),
        released(1, "invoice-1", "invoiced"),
    )

    assert check(state, "400.00", check=2, now=NOW + timedelta(days=3)) == []
    with pytest.raises(StateConflict, match="already invoiced"):
        check(state, "500.00", check=2)


def test_rechecking_with_another_amount_replaces_the_reservation() -> None:
    state = given(
        *LIMITED,
        check_passed(1, "invoice-1", "400.00"),
        check_passed(2, "invoice-2", "100.00", reserved="400.00"),
    )

    events = check(state, "800.00", check=3)

    assert events == [
        released(1, "invoice-1", "cancelled"),
        check_passed(3, "invoice-1", "800.00", reserved="100.00"),
    ]
    assert reserved(then(state, events), NOW) == eur("900.00")


def test_a_failed_reference_is_checked_again() -> None:
    state = given(limit_changed("100.00"))
    state = then(state, check(state, "400.00"))
    state = then(state, [limit_changed("500.00", "100.00")])

    events = check(state, "400.00", check=2)

    assert events == [check_passed(2, "invoice-1", "400.00", limit="500.00")]


# ============================================================================ expiry and release


def test_a_reservation_expires_at_reserved_until() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "400.00"))

    assert reserved(state, NOW + TTL - timedelta(microseconds=1)) == eur("400.00")
    assert reserved(state, NOW + TTL) == eur("0.00")
    assert live_reservations(state, NOW + TTL) == {}


def test_a_check_first_releases_expired_reservations() -> None:
    state = given(
        *LIMITED,
        check_passed(1, "invoice-1", "400.00"),
        check_passed(2, "invoice-2", "100.00", reserved="400.00", until=NOW + 2 * TTL),
    )
    later = NOW + TTL

    events = check(state, "900.00", check=3, reference="invoice-3", now=later)

    assert events == [
        released(1, "invoice-1", "expired"),
        check_passed(3, "invoice-3", "900.00", reserved="100.00", until=later + TTL),
    ]
    after = then(state, events)
    assert set(after.reservations) == {uid(2), uid(3)}
    record = outcome_for(after, "invoice-1")
    assert record is not None
    assert record.released == "expired"


def test_a_failed_check_still_releases_expired_reservations() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "400.00"), hold_placed(1))

    events = check(state, "1.00", check=2, reference="invoice-2", now=NOW + TTL)

    assert events[0] == released(1, "invoice-1", "expired")
    assert isinstance(events[1], CreditCheckFailed)


def test_rechecking_a_reference_whose_reservation_expired_reserves_again() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "400.00"))
    later = NOW + TTL

    events = check(state, "400.00", check=2, now=later)

    assert events == [
        released(1, "invoice-1", "expired"),
        check_passed(2, "invoice-1", "400.00", until=later + TTL),
    ]


def test_expire_reservations() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "400.00"))

    assert expire_reservations(state, NOW) == []
    events = expire_reservations(state, NOW + TTL)
    assert events == [released(1, "invoice-1", "expired")]
    assert then(state, events).reservations == {}


def test_issuing_the_invoice_releases_its_reservation() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "400.00"))

    events = release_reservation(state, "invoice-1", "invoiced")

    assert events == [released(1, "invoice-1", "invoiced")]
    after = then(state, events)
    assert reserved(after, NOW) == eur("0.00")
    # the amount is exposure now: the caller passes it in
    assert headroom(after, eur("400.00"), NOW) == eur("600.00")
    record = outcome_for(after, "invoice-1")
    assert record is not None
    assert record.released == "invoiced"
    assert release_reservation(after, "invoice-1", "invoiced") == []


def test_releasing_a_reference_without_a_reservation_changes_nothing() -> None:
    state = given(*LIMITED)
    assert release_reservation(state, "invoice-9", "cancelled") == []
    failed_state = then(state, check(state, "2000.00"))
    assert release_reservation(failed_state, "invoice-1", "cancelled") == []


def test_a_release_reason_must_be_known() -> None:
    state = given(*LIMITED, check_passed(1, "invoice-1", "400.00"))

    with pytest.raises(ValidationFailed, match="reason"):
        release_reservation(state, "invoice-1", "forgotten")


# ============================================================================ refusals


def test_the_amount_must_be_positive() -> None:
    with pytest.raises(ValidationFailed, match="greater than zero"):
        check(given(*LIMITED), "0.00")


def test_the_exposure_must_be_in_the_accounts_currency() -> None:
    with pytest.raises(ValidationFailed, match="exposure is in USD"):
        check(given(*LIMITED), "1.00", exposure=Money.from_decimal("1.00", "USD"))


def test_a_reference_must_not_be_blank() -> None:
    with pytest.raises(ValidationFailed, match="reference"):
        check(given(*LIMITED), "1.00", reference=" ")


def test_programming_errors_are_not_validation_errors() -> None:
    state = given(*LIMITED)
    with pytest.raises(ValueError, match="timezone-aware"):
        check(state, "1.00", now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="days_overdue"):
        check(state, "1.00", days_overdue=-1)
    with pytest.raises(ValueError, match="reservation_ttl"):
        check_credit(
            state,
            check_id=uuid.uuid4(),
            reference="x",
            amount=eur("1.00"),
            exposure=eur("0.00"),
            days_overdue=0,
            now=NOW,
            reservation_ttl=timedelta(0),
        )


def test_derived_amounts_without_a_limit() -> None:
    state = given(hold_placed(1))

    assert reserved(state, NOW) is None
    assert headroom(state, eur("0.00"), NOW) is None
