"""The CreditAccount aggregate (one per tenant customer) as pure decide/evolve functions.

``decide`` functions take the current state and a command's arguments and return the events
that record the decision (an empty list for an idempotent repeat or a no-op), or raise
``StateConflict`` (409: not allowed now, e.g. a second pending limit request),
``ValidationFailed`` (422: a bad amount, the wrong currency), ``Forbidden`` (403: a requester
approving their own limit change) or ``NotFound`` (404: an unknown hold or request). ``evolve``
folds one event into the state and never refuses a recorded fact, except one that cannot
belong to this stream (``InvalidEventSequence``: a bug or a corrupted stream).

A stream may start with any event (a hold or a policy can come before the first limit): start
from ``replay(events) or CreditAccountState(customer_id=...)``. Only ``change_limit`` also takes
``None``.

Credit arithmetic: ``headroom = limit - exposure - reserved``, where ``exposure`` is the
customer's open receivables (supplied by the caller from its projection) and ``reserved`` the sum
of live reservations (passed checks whose invoice is not issued yet, and whose
``reserved_until`` is still in the future). A check passes only if the amount fits the headroom,
so at any instant ``exposure + reserved <= limit`` for the exposure the checks were made with.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

from shared.contracts.credit import (
    CreditCheckFailed,
    CreditCheckPassed,
    CreditCheckReason,
    CreditDocument,
    CreditHoldKind,
    CreditHoldPlaced,
    CreditHoldReleased,
    CreditLimitChanged,
    CreditLimitChangeRejected,
    CreditLimitChangeRequested,
    CreditPolicyUpdated,
    CreditReservationReleased,
    CreditReservationReleaseReason,
    RiskScoreChanged,
)
from shared.contracts.invoice import TermsKind
from shared.errors import Forbidden, NotFound, StateConflict, ValidationFailed
from shared.events.registry import EventPayload, build_event
from shared.money import Money, sum_money

__all__ = [
    "DEFAULT_MAX_DAYS_OVERDUE",
    "CheckRecord",
    "CreditAccountState",
    "Hold",
    "InvalidEventSequence",
    "PendingLimitChange",
    "Reservation",
    "approve_limit_change",
    "change_limit",
    "check_credit",
    "evolve",
    "expire_reservations",
    "headroom",
    "live_reservations",
    "outcome_for",
    "place_hold",
    "reject_limit_change",
    "release_automatic_holds",
    "release_hold",
    "release_reservation",
    "replay",
    "reserved",
    "update_policy",
]

DEFAULT_MAX_DAYS_OVERDUE = 60
"""Until a policy says otherwise, a check fails once an invoice is more than 60 days overdue."""

RequestOutcome = Literal["approved", "rejected"]


class InvalidEventSequence(ValueError):
    """An event that cannot follow the stream so far: a bug or a corrupted stream, never user input."""


# ============================================================================ state


@dataclasses.dataclass(frozen=True)
class Hold:
    kind: CreditHoldKind
    rule: str | None
    reason: str
    placed_by: str


@dataclasses.dataclass(frozen=True)
class Reservation:
    """Credit set aside by a passed check until ``reserved_until`` (exclusive) or its release."""

    reference: str
    amount: Money
    reserved_until: datetime

    def is_live(self, now: datetime) -> bool:
        return now < self.reserved_until


@dataclasses.dataclass(frozen=True)
class PendingLimitChange:
    """A limit change waiting for a second person (maker-checker)."""

    request_id: uuid.UUID
    limit: Money
    previous_limit: Money | None
    requested_by: str
    reason: str
    review_date: date | None = None


@dataclasses.dataclass(frozen=True)
class CheckRecord:
    """The latest credit check of one reference, so a repeated check can answer from it."""

    check_id: uuid.UUID
    passed: bool
    amount: Money
    reasons: tuple[CreditCheckReason, ...] = ()
    released: CreditReservationReleaseReason | None = None
    """How a passed check's reservation ended; ``None`` while it is held (or for a failure)."""


@dataclasses.dataclass(frozen=True)
class CreditAccountState:
    """A customer's credit account as of ``version`` events. Treat the mappings as read-only."""

    customer_id: str
    currency: str | None = None
    """Set by the first limit; every later limit and check is in it."""
    limit: Money | None = None
    max_days_overdue: int = DEFAULT_MAX_DAYS_OVERDUE
    allowed_terms: tuple[TermsKind, ...] = ()
    """Empty: any terms."""
    review_date: date | None = None
    documents: tuple[CreditDocument, ...] = ()
    segment: str | None = None
    holds: Mapping[uuid.UUID, Hold] = dataclasses.field(default_factory=dict)
    """Active holds, in the order they were placed."""
    released_holds: frozenset[uuid.UUID] = frozenset()
    reservations: Mapping[uuid.UUID, Reservation] = dataclasses.field(default_factory=dict)
    """Reservations not yet released, by check id (some may be past ``reserved_until``)."""
    pending_change: PendingLimitChange | None = None
    decided_requests: Mapping[uuid.UUID, RequestOutcome] = dataclasses.field(default_factory=dict)
    checks: Mapping[str, CheckRecord] = dataclasses.field(default_factory=dict)
    """The latest check per reference."""
    last_risk: RiskScoreChanged | None = None
    """The risk score last published, so reassessing the same facts publishes nothing."""
    version: int = 0

    @property
    def on_hold(self) -> bool:
        return bool(self.holds)


# ============================================================================ derived


def live_reservations(state: CreditAccountState, now: datetime) -> dict[uuid.UUID, Reservation]:
    """Reservations still holding credit at ``now``."""
    _require_aware(now, "now")
    return {cid: r for cid, r in state.reservations.items() if r.is_live(now)}


def reserved(state: CreditAccountState, now: datetime) -> Money | None:
    """Sum of live reservations at ``now``; ``None`` before the account has a currency."""
    if state.currency is None:
        return None
    return sum_money((r.amount for r in live_reservations(state, now).values()), state.currency)


def headroom(state: CreditAccountState, exposure: Money, now: datetime) -> Money | None:
    """``limit - exposure - reserved`` at ``now`` (negative when over); ``None`` without a limit."""
    if state.limit is None:
        return None
    _require_exposure_currency(state, exposure)
    held = reserved(state, now)
    assert held is not None
    return state.limit - exposure - held


def outcome_for(state: CreditAccountState, reference: str) -> CheckRecord | None:
    """The latest check of ``reference`` (check id, passed, reasons), or ``None`` if never checked.

    ``check_credit`` returns ``[]`` for a repeated check; the caller answers from this.
    """
    return state.checks.get(reference)


# ============================================================================ evolve


def _apply(state: CreditAccountState, event: EventPayload) -> CreditAccountState:
    replace = dataclasses.replace
    if isinstance(event, CreditLimitChanged):
        if state.currency is not None and event.limit.currency != state.currency:
            raise InvalidEventSequence(
                f"limit in {event.limit.currency} for an account in {state.currency}"
            )
        pending = state.pending_change
        decided = dict(state.decided_requests)
        if event.request_id is not None:
            decided[event.request_id] = "approved"
            if pending is not None and pending.request_id == event.request_id:
                pending = None
        return replace(
            state,
            currency=event.limit.currency,
            limit=event.limit,
            review_date=event.review_date or state.review_date,
            pending_change=pending,
            decided_requests=decided,
        )
    if isinstance(event, CreditLimitChangeRequested):
        change = PendingLimitChange(
            request_id=event.request_id,
            limit=event.limit,
            previous_limit=event.previous_limit,
            requested_by=event.requested_by,
            reason=event.reason,
            review_date=event.review_date,
        )
        return replace(state, pending_change=change)
    if isinstance(event, CreditLimitChangeRejected):
        pending = state.pending_change
        if pending is not None and pending.request_id == event.request_id:
            pending = None
        decided = {**state.decided_requests, event.request_id: "rejected"}
        return replace(state, pending_change=pending, decided_requests=decided)
    if isinstance(event, CreditPolicyUpdated):
        return replace(
            state,
            max_days_overdue=event.max_days_overdue,
            allowed_terms=tuple(event.allowed_terms),
            review_date=event.review_date,
            documents=tuple(event.documents),
            segment=event.segment,
        )
    if isinstance(event, CreditCheckPassed):
        reservation = Reservation(event.reference, event.amount, event.reserved_until)
        record = CheckRecord(event.check_id, passed=True, amount=event.amount)
        return replace(
            state,
            reservations={**state.reservations, event.check_id: reservation},
            checks={**state.checks, event.reference: record},
        )
    if isinstance(event, CreditCheckFailed):
        record = CheckRecord(
            event.check_id, passed=False, amount=event.amount, reasons=tuple(event.reasons)
        )
        return replace(state, checks={**state.checks, event.reference: record})
    if isinstance(event, CreditReservationReleased):
        reservations = {k: v for k, v in state.reservations.items() if k != event.check_id}
        checks = dict(state.checks)
        latest = checks.get(event.reference)
        if latest is not None and latest.check_id == event.check_id:
            checks[event.reference] = replace(latest, released=event.reason)
        return replace(state, reservations=reservations, checks=checks)
    if isinstance(event, CreditHoldPlaced):
        hold = Hold(event.kind, event.rule, event.reason, event.placed_by)
        return replace(state, holds={**state.holds, event.hold_id: hold})
    if isinstance(event, CreditHoldReleased):
        return replace(
            state,
            holds={k: v for k, v in state.holds.items() if k != event.hold_id},
            released_holds=state.released_holds | {event.hold_id},
        )
    if isinstance(event, RiskScoreChanged):
        return replace(state, last_risk=event)
    raise InvalidEventSequence(f"{event.event_type} is not a credit account event")


def evolve(state: CreditAccountState | None, event: EventPayload) -> CreditAccountState:
    """The state after ``event``; any credit event may open a stream."""
    customer_id = getattr(event, "customer_id", None)
    if not isinstance(customer_id, str):
        raise InvalidEventSequence(f"{event.event_type} is not a credit account event")
    if state is None:
        state = CreditAccountState(customer_id=customer_id)
    elif customer_id != state.customer_id:
        raise InvalidEventSequence(
            f"{event.event_type} for customer {customer_id} applied to "
            f"the account of {state.customer_id}"
        )
    return dataclasses.replace(_apply(state, event), version=state.version + 1)


def replay(events: Iterable[EventPayload]) -> CreditAccountState | None:
    """Fold a stream's events from the beginning; ``None`` for an empty stream."""
    state: CreditAccountState | None = None
    for event in events:
        state = evolve(state, event)
    return state


def _fold(state: CreditAccountState, events: Iterable[EventPayload]) -> CreditAccountState:
    for event in events:
        state = evolve(state, event)
    return state


# ============================================================================ helpers


def _details(state: CreditAccountState, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"customer_id": state.customer_id}
    for key, value in extra.items():
        if isinstance(value, Money):
            details[key] = value.model_dump(mode="json")
        elif isinstance(value, uuid.UUID | date):
            details[key] = str(value)
        else:
            details[key] = value
    return details


def _require_aware(value: datetime, what: str) -> None:
    """A naive instant is a programming error (the clock is read by the caller, in UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


def _require_exposure_currency(state: CreditAccountState, exposure: Money) -> None:
    if state.currency is not None and exposure.currency != state.currency:
        raise ValidationFailed(
            f"exposure is in {exposure.currency} but the credit account of "
            f"{state.customer_id} is in {state.currency}",
            _details(state, field="exposure", exposure=exposure, currency=state.currency),
        )


# ============================================================================ limits


def change_limit(
    state: CreditAccountState | None,
    customer_id: str,
    limit: Money,
    reason: str,
    by: str,
    *,
    request_id: uuid.UUID,
    approval_threshold: Money | None,
    review_date: date | None = None,
) -> list[EventPayload]:
    """Set the credit limit, or ask a second person to approve it (maker-checker).

    The first limit fixes the account's currency; later ones must be in it. An increase (the
    first limit counts as one) to a limit above ``approval_threshold`` is only requested
    (``CreditLimitChangeRequested`` under ``request_id``); a limit equal to the threshold, a
    decrease, or any change when ``approval_threshold`` is ``None`` takes effect at once.
    Only one request may be pending, and no limit changes while one is (approve or reject it
    first): a stale request must not undo a decrease made in the meantime. Repeating the same
    request, or setting the limit it already has, changes nothing.
    """
    if state is None:
        state = CreditAccountState(customer_id=customer_id)
    elif state.customer_id != customer_id:
        raise ValidationFailed(
            f"customer {customer_id} does not own the credit account of {state.customer_id}",
            _details(state, field="customer_id", value=customer_id),
        )
    if limit.is_negative():
        raise ValidationFailed(
            f"a credit limit cannot be negative, got {limit}",
            _details(state, field="limit", limit=limit),
        )
    if state.currency is not None and limit.currency != state.currency:
        raise ValidationFailed(
            f"the credit limit of {state.customer_id} is in {state.currency}, not {limit.currency}",
            _details(state, field="limit", limit=limit, currency=state.currency),
        )
    if approval_threshold is not None and approval_threshold.currency != limit.currency:
        raise ValidationFailed(
            f"the approval threshold is in {approval_threshold.currency} "
            f"but the limit is in {limit.currency}",
            _details(state, field="approval_threshold", approval_threshold=approval_threshold),
        )
    pending = state.pending_change
    if pending is not None:
        if (pending.limit, pending.requested_by, pending.reason, pending.review_date) == (
            limit,
            by,
            reason,
            review_date,
        ):
            return []
        raise StateConflict(
            f"limit change request {pending.request_id} for {state.customer_id} is pending "
            "approval: approve or reject it first",
            _details(state, pending_request_id=pending.request_id, pending_limit=pending.limit),
        )
    if limit == state.limit and review_date in (None, state.review_date):
        return []
    increase = state.limit is None or limit > state.limit
    if increase and approval_threshold is not None and limit > approval_threshold:
        if request_id in state.decided_requests:
            raise StateConflict(
                f"limit change request {request_id} was already "
                f"{state.decided_requests[request_id]}; use a new request id",
                _details(state, request_id=request_id),
            )
        return [
            build_event(
                CreditLimitChangeRequested,
                customer_id=state.customer_id,
                request_id=request_id,
                limit=limit,
                previous_limit=state.limit,
                reason=reason,
                requested_by=by,
                review_date=review_date,
            )
        ]
    return [
        build_event(
            CreditLimitChanged,
            customer_id=state.customer_id,
            limit=limit,
            previous_limit=state.limit,
            reason=reason,
            changed_by=by,
            review_date=review_date,
        )
    ]


def _decided(
    state: CreditAccountState, request_id: uuid.UUID, action: str
) -> RequestOutcome | None:
    outcome = state.decided_requests.get(request_id)
    if outcome is not None:
        return outcome
    pending = state.pending_change
    if pending is None or pending.request_id != request_id:
        raise NotFound(
            f"no pending limit change request {request_id} for {state.customer_id} to {action}",
            _details(state, request_id=request_id),
        )
    return None


def approve_limit_change(
    state: CreditAccountState, request_id: uuid.UUID, approver: str
) -> list[EventPayload]:
    """The second person approves a pending request: the limit changes. Idempotent."""
    outcome = _decided(state, request_id, "approve")
    if outcome == "approved":
        return []
    if outcome == "rejected":
        raise StateConflict(
            f"limit change request {request_id} was rejected and cannot be approved",
            _details(state, request_id=request_id),
        )
    pending = state.pending_change
    assert pending is not None
    if approver == pending.requested_by:
        raise Forbidden(
            "maker-checker: the requester cannot approve their own change",
            _details(state, request_id=request_id, requested_by=pending.requested_by),
        )
    return [
        build_event(
            CreditLimitChanged,
            customer_id=state.customer_id,
            limit=pending.limit,
            previous_limit=state.limit,
            reason=pending.reason,
            changed_by=pending.requested_by,
            approved_by=approver,
            request_id=request_id,
            review_date=pending.review_date,
        )
    ]


def reject_limit_change(
    state: CreditAccountState, request_id: uuid.UUID, by: str, reason: str
) -> list[EventPayload]:
    """Turn down a pending request (the requester may withdraw their own). Idempotent."""
    outcome = _decided(state, request_id, "reject")
    if outcome == "rejected":
        return []
    if outcome == "approved":
        raise StateConflict(
            f"limit change request {request_id} was already approved and cannot be rejected",
            _details(state, request_id=request_id),
        )
    return [
        build_event(
            CreditLimitChangeRejected,
            customer_id=state.customer_id,
            request_id=request_id,
            rejected_by=by,
            reason=reason,
        )
    ]


# ============================================================================ policy


def update_policy(
    state: CreditAccountState,
    *,
    max_days_overdue: int,
    allowed_terms: Sequence[str] = (),
    review_date: date | None = None,
    documents: Sequence[CreditDocument] = (),
    segment: str | None = None,
) -> list[EventPayload]:
    """Replace the credit policy as a whole (a PATCH merges onto the state first); ``[]`` if
    nothing changes."""
    event = build_event(
        CreditPolicyUpdated,
        customer_id=state.customer_id,
        max_days_overdue=max_days_overdue,
        allowed_terms=list(allowed_terms),
        review_date=review_date,
        documents=list(documents),
        segment=segment,
    )
    unchanged = (
        event.max_days_overdue == state.max_days_overdue
        and tuple(event.allowed_terms) == state.allowed_terms
        and event.review_date == state.review_date
        and tuple(event.documents) == state.documents
        and event.segment == state.segment
    )
    return [] if unchanged else [event]


# ============================================================================ holds


def place_hold(
    state: CreditAccountState,
    hold_id: uuid.UUID,
    kind: str,
    reason: str,
    by: str,
    rule: str | None = None,
) -> list[EventPayload]:
    """Put the account on hold: every credit check fails until the hold is released.

    Idempotent on ``hold_id``, and an ``automatic`` hold for a ``rule`` that already holds the
    account is not placed twice. A released hold id cannot be placed again.
    """
    event = build_event(
        CreditHoldPlaced,
        customer_id=state.customer_id,
        hold_id=hold_id,
        kind=kind,
        rule=rule,
        reason=reason,
        placed_by=by,
    )
    existing = state.holds.get(hold_id)
    if existing is not None:
        if existing == Hold(event.kind, event.rule, event.reason, event.placed_by):
            return []
        raise ValidationFailed(
            f"hold {hold_id} was already placed with a different kind, rule, reason or author",
            _details(state, field="hold_id", hold_id=hold_id),
        )
    if hold_id in state.released_holds:
        raise StateConflict(
            f"hold {hold_id} was already released; place a new hold with a new id",
            _details(state, hold_id=hold_id),
        )
    if event.kind == "automatic" and any(
        h.kind == "automatic" and h.rule == event.rule for h in state.holds.values()
    ):
        return []
    return [event]


def release_hold(
    state: CreditAccountState, hold_id: uuid.UUID, reason: str, by: str
) -> list[EventPayload]:
    """Lift one hold. Releasing it again changes nothing."""
    if hold_id in state.released_holds:
        return []
    if hold_id not in state.holds:
        raise NotFound(
            f"customer {state.customer_id} has no hold {hold_id}", _details(state, hold_id=hold_id)
        )
    return [
        build_event(
            CreditHoldReleased,
            customer_id=state.customer_id,
            hold_id=hold_id,
            reason=reason,
            released_by=by,
        )
    ]


def release_automatic_holds(
    state: CreditAccountState, rule: str, reason: str, *, by: str = "system:credit"
) -> list[EventPayload]:
    """Lift every automatic hold ``rule`` placed (its condition cleared); ``[]`` if none."""
    return [
        build_event(
            CreditHoldReleased,
            customer_id=state.customer_id,
            hold_id=hold_id,
            reason=reason,
            released_by=by,
        )
        for hold_id, hold in state.holds.items()
        if hold.kind == "automatic" and hold.rule == rule
    ]


# ============================================================================ checks


def _released(
    state: CreditAccountState, check_id: uuid.UUID, reason: CreditReservationReleaseReason
) -> CreditReservationReleased:
    return build_event(
        CreditReservationReleased,
        customer_id=state.customer_id,
        check_id=check_id,
        reference=state.reservations[check_id].reference,
        reason=reason,
    )


def expire_reservations(state: CreditAccountState, now: datetime) -> list[EventPayload]:
    """Release (``expired``) every reservation whose ``reserved_until`` is at or before ``now``."""
    _require_aware(now, "now")
    return [
        _released(state, check_id, "expired")
        for check_id, reservation in state.reservations.items()
        if not reservation.is_live(now)
    ]


def release_reservation(
    state: CreditAccountState, reference: str, reason: str
) -> list[EventPayload]:
    """Release the reservation held for ``reference`` — ``invoiced`` once the invoice is issued
    (its amount is exposure from then on), ``cancelled`` if the sale is off. ``[]`` if none."""
    record = state.checks.get(reference)
    if record is None or record.check_id not in state.reservations:
        return []
    return [
        build_event(
            CreditReservationReleased,
            customer_id=state.customer_id,
            check_id=record.check_id,
            reference=reference,
            reason=reason,
        )
    ]


def _reasons(
    state: CreditAccountState,
    *,
    amount: Money,
    exposure: Money,
    held: Money | None,
    days_overdue: int,
    terms_kind: str | None,
    unconvertible: Sequence[str] = (),
) -> list[CreditCheckReason]:
    reasons: list[CreditCheckReason] = []
    if state.holds:
        why = "; ".join(h.reason for h in state.holds.values())
        reasons.append(
            CreditCheckReason(code="on_hold", message=f"customer is on credit hold: {why}")
        )
    limit = state.limit
    if limit is None:
        reasons.append(
            CreditCheckReason(
                code="no_limit", message=f"no credit limit is set for customer {state.customer_id}"
            )
        )
    elif amount.currency != limit.currency:
        reasons.append(
            CreditCheckReason(
                code="currency_mismatch",
                message=f"the amount is in {amount.currency} but the credit limit is in "
                f"{limit.currency}",
            )
        )
    if days_overdue > state.max_days_overdue:
        reasons.append(
            CreditCheckReason(
                code="overdue",
                message=f"an open invoice is {days_overdue} days overdue "
                f"(the policy allows {state.max_days_overdue})",
                days=days_overdue,
            )
        )
    if terms_kind is not None and state.allowed_terms and terms_kind not in state.allowed_terms:
        allowed = ", ".join(state.allowed_terms)
        reasons.append(
            CreditCheckReason(
                code="terms_not_allowed",
                message=f"payment terms {terms_kind!r} are not allowed for this customer "
                f"(allowed: {allowed})",
            )
        )
    if unconvertible and limit is not None:
        reasons.append(
            CreditCheckReason(
                code="no_exchange_rate",
                message=f"no exchange rate recorded from {', '.join(sorted(unconvertible))} "
                f"to {limit.currency}: exposure cannot be totalled",
            )
        )
    if (
        limit is not None
        and held is not None
        and amount.currency == limit.currency
        and not unconvertible  # a partial total must not pass a check
    ):
        excess = exposure + held + amount - limit
        if excess.is_positive():
            reasons.append(
                CreditCheckReason(
                    code="over_limit",
                    message=f"over the limit by {excess} (limit {limit}, exposure {exposure}, "
                    f"reserved {held}, amount {amount})",
                    amount=excess,
                )
            )
    return reasons


def check_credit(
    state: CreditAccountState,
    *,
    check_id: uuid.UUID,
    reference: str,
    amount: Money,
    exposure: Money,
    days_overdue: int,
    now: datetime,
    reservation_ttl: timedelta,
    terms_kind: str | None = None,
    unconvertible: Sequence[str] = (),
) -> list[EventPayload]:
    """Decide whether ``amount`` of new credit for ``reference`` (e.g. ``invoice-<id>``) fits.

    ``exposure`` is the customer's open receivables and ``days_overdue`` how late its oldest
    open invoice is (both from the caller's projection); ``terms_kind`` the invoice's payment
    terms kind, if the policy should look at it.

    Idempotent per reference: while the reference's passed check still holds its reservation,
    or after it was invoiced, a repeat with the same amount returns ``[]`` (read the earlier
    outcome with ``outcome_for``) and never reserves twice; so does re-sending the same
    ``check_id``. A repeat with another amount releases the old reservation (``cancelled``) and
    checks afresh; a failed or expired check is simply checked again.

    Otherwise: first ``CreditReservationReleased(expired)`` for every reservation past its
    ``reserved_until``, then ``CreditCheckPassed`` (reserving ``amount`` until ``now +
    reservation_ttl``) or ``CreditCheckFailed`` with every reason that applies, in the order
    on_hold, no_limit, currency_mismatch, overdue, terms_not_allowed, over_limit.
    """
    _require_aware(now, "now")
    if reservation_ttl <= timedelta(0):
        raise ValueError(f"reservation_ttl must be positive, got {reservation_ttl}")
    if isinstance(days_overdue, bool) or days_overdue < 0:
        raise ValueError(f"days_overdue must be a non-negative int, got {days_overdue!r}")
    if not amount.is_positive():
        raise ValidationFailed(
            f"a credit check needs an amount greater than zero, got {amount}",
            _details(state, field="amount", amount=amount),
        )
    _require_exposure_currency(state, exposure)

    events: list[EventPayload] = []
    record = state.checks.get(reference)
    if record is not None and record.check_id == check_id:
        if record.amount != amount:
            raise ValidationFailed(
                f"credit check {check_id} was for {record.amount}, not {amount}",
                _details(state, field="amount", check_id=check_id, recorded=record.amount),
            )
        return []
    if record is not None and record.passed:
        reservation = state.reservations.get(record.check_id)
        invoiced = record.released == "invoiced"
        if invoiced or (reservation is not None and reservation.is_live(now)):
            if record.amount == amount:
                return []
            if invoiced:
                raise StateConflict(
                    f"{reference} was already invoiced after credit check {record.check_id} "
                    f"for {record.amount}; it cannot be checked again for {amount}",
                    _details(state, reference=reference, check_id=record.check_id),
                )
            events.append(_released(state, record.check_id, "cancelled"))
    used = {r.check_id for r in state.checks.values()} | set(state.reservations)
    if check_id in used:
        raise ValidationFailed(
            f"credit check id {check_id} was already used for another reference",
            _details(state, field="check_id", check_id=check_id),
        )

    events += expire_reservations(_fold(state, events), now)
    current = _fold(state, events)
    held = reserved(current, now)
    reasons = _reasons(
        current,
        amount=amount,
        exposure=exposure,
        held=held,
        days_overdue=days_overdue,
        terms_kind=terms_kind,
        unconvertible=unconvertible,
    )
    if reasons:
        decision: EventPayload = build_event(
            CreditCheckFailed,
            customer_id=state.customer_id,
            check_id=check_id,
            reference=reference,
            amount=amount,
            reasons=reasons,
            limit=current.limit,
            exposure=exposure,
        )
    else:
        assert current.limit is not None and held is not None
        decision = build_event(
            CreditCheckPassed,
            customer_id=state.customer_id,
            check_id=check_id,
            reference=reference,
            amount=amount,
            reserved_until=now + reservation_ttl,
            limit=current.limit,
            exposure=exposure,
            reserved=held,
            headroom_after=current.limit - exposure - held - amount,
        )
    return [*events, decision]
