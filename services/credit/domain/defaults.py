"""Default credit policies: tenant-wide, and per customer segment.

A customer's own policy always wins. An account that has no limit yet takes the default of its
segment (when it has one and that segment has a default) or else the tenant's, at the moment
credit is first asked for, as ordinary limit and policy events attributed to the default, so the
account's history shows where its limit came from.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

from services.credit.domain import account as accounts
from services.credit.domain.account import CreditAccountState
from shared.contracts.credit import CreditDefaultPolicySet
from shared.contracts.invoice import TermsKind
from shared.events.registry import EventPayload, build_event
from shared.money import Money

SYSTEM = "system:credit-defaults"


@dataclasses.dataclass(frozen=True)
class DefaultPolicy:
    segment: str | None
    limit: Money | None
    max_days_overdue: int
    allowed_terms: tuple[TermsKind, ...]
    version: int = 0

    @property
    def scope(self) -> str:
        return scope_of(self.segment)


def scope_of(segment: str | None) -> str:
    return "tenant" if segment is None else f"segment:{segment}"


def set_default_policy(
    state: DefaultPolicy | None,
    segment: str | None,
    limit: Money | None,
    max_days_overdue: int,
    allowed_terms: Sequence[str] = (),
) -> list[EventPayload]:
    """Replace a default as a whole; `[]` when nothing changes."""
    event = build_event(
        CreditDefaultPolicySet,
        segment=segment,
        limit=limit,
        max_days_overdue=max_days_overdue,
        allowed_terms=list(allowed_terms),
    )
    if state is not None and (state.limit, state.max_days_overdue, state.allowed_terms) == (
        event.limit,
        event.max_days_overdue,
        tuple(event.allowed_terms),
    ):
        return []
    return [event]


def evolve_default(state: DefaultPolicy | None, event: EventPayload) -> DefaultPolicy:
    if not isinstance(event, CreditDefaultPolicySet):
        raise ValueError(f"{event.event_type} is not a default-policy event")
    return DefaultPolicy(
        event.segment,
        event.limit,
        event.max_days_overdue,
        tuple(event.allowed_terms),
        (state.version if state else 0) + 1,
    )


def adopt_default(state: CreditAccountState, default: DefaultPolicy | None) -> list[EventPayload]:
    """Give an account without a limit its default limit (and, for a brand-new account, the
    default's policy); `[]` if it has a limit of its own."""
    if state.limit is not None or default is None or default.limit is None:
        return []
    origin = f"default policy ({default.scope})"
    events = accounts.change_limit(
        state if state.version else None,
        state.customer_id,
        default.limit,
        origin,
        SYSTEM,
        request_id=uuid.uuid4(),
        approval_threshold=None,
    )
    if state.version:  # the account has a policy of its own (e.g. its segment): keep it
        return events
    after = state
    for event in events:
        after = accounts.evolve(after, event)
    return events + accounts.update_policy(
        after,
        max_days_overdue=default.max_days_overdue,
        allowed_terms=default.allowed_terms,
        review_date=after.review_date,
        documents=after.documents,
        segment=after.segment,
    )
