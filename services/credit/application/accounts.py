"""Credit accounts: load (event stream), decide (pure domain), save (events + read model).

The stream is `credit_account-<tenant>:<customer_id>` (customer ids are per tenant). Every
decision on one account appends at the version it was decided on, so two concurrent credit
checks cannot both spend the same headroom: the loser gets a concurrency conflict, is retried
on the new state, and sees the winner's reservation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.adapters import SCHEMA, rates
from services.credit.adapters import exposure as exposure_store
from services.credit.application import defaults
from services.credit.domain import account as accounts
from services.credit.domain.account import CreditAccountState, live_reservations
from services.credit.domain.defaults import adopt_default
from shared.contracts.credit import CreditCheckReason
from shared.errors import NotFound
from shared.events.registry import EventPayload, registry
from shared.eventstore.cache import FoldCache
from shared.eventstore.store import AppendContext, EventStore
from shared.money import Money, Rounding

store = EventStore(SCHEMA)
_folded_accounts: FoldCache[CreditAccountState] = FoldCache(store, accounts.evolve)
T = TypeVar("T")
LoadedAccount = tuple[CreditAccountState | None, int]  # (state, stream version): None if none yet


def now() -> datetime:
    return datetime.now(UTC)


def account_stream(tenant_id: str, customer_id: str) -> str:
    return f"credit_account-{tenant_id}:{customer_id}"


async def find_account(session: AsyncSession, tenant_id: str, customer_id: str) -> LoadedAccount:
    return await _folded_accounts.load(session, account_stream(tenant_id, customer_id), tenant_id)


async def load_account(
    session: AsyncSession, tenant_id: str, customer_id: str
) -> tuple[CreditAccountState, int]:
    state, version = await find_account(session, tenant_id, customer_id)
    if state is None:
        raise NotFound(
            f"no credit account for customer {customer_id}", {"customer_id": customer_id}
        )
    return state, version


async def save_account(
    session: AsyncSession,
    state: CreditAccountState | None,
    version: int,
    events: Sequence[EventPayload],
    ctx: AppendContext,
    customer_id: str,
) -> CreditAccountState:
    new_state = state
    for event in events:
        new_state = accounts.evolve(new_state, event)
    if new_state is None:
        raise NotFound(
            f"no credit account for customer {customer_id}", {"customer_id": customer_id}
        )
    if not events:
        return new_state
    context = ctx.for_customer(customer_id)
    await store.append(
        session,
        account_stream(ctx.tenant_id, customer_id),
        version,
        [registry.new_event(e) for e in events],
        context,
    )
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.accounts (tenant_id, customer_id, currency, limit_minor, on_hold,
                    version, document)
                VALUES (:t, :c, :cur, :limit, :hold, :v, CAST(:doc AS jsonb))
                ON CONFLICT (tenant_id, customer_id) DO UPDATE SET currency = EXCLUDED.currency,
                    limit_minor = EXCLUDED.limit_minor, on_hold = EXCLUDED.on_hold,
                    version = EXCLUDED.version, document = EXCLUDED.document, updated_at = now()"""
        ),
        {
            "t": ctx.tenant_id,
            "c": customer_id,
            "cur": new_state.currency,
            "limit": new_state.limit.amount if new_state.limit else None,
            "hold": new_state.on_hold,
            "v": new_state.version,
            "doc": json.dumps(account_view(new_state)),
        },
    )
    return new_state


def account_view(state: CreditAccountState, at: datetime | None = None) -> dict[str, Any]:
    at = at or now()
    pending = state.pending_change
    return {
        "customer_id": state.customer_id,
        "currency": state.currency,
        "limit": state.limit.model_dump() if state.limit else None,
        "on_hold": state.on_hold,
        "holds": [
            {
                "hold_id": str(k),
                "kind": h.kind,
                "rule": h.rule,
                "reason": h.reason,
                "placed_by": h.placed_by,
            }
            for k, h in state.holds.items()
        ],
        "policy": {
            "max_days_overdue": state.max_days_overdue,
            "allowed_terms": [str(t) for t in state.allowed_terms],
            "review_date": state.review_date.isoformat() if state.review_date else None,
            "documents": [d.model_dump(mode="json") for d in state.documents],
            "segment": state.segment,
        },
        "pending_limit_change": None
        if pending is None
        else {
            "request_id": str(pending.request_id),
            "limit": pending.limit.model_dump(),
            "requested_by": pending.requested_by,
            "reason": pending.reason,
        },
        "reservations": [
            {
                "check_id": str(k),
                "reference": r.reference,
                "amount": r.amount.model_dump(),
                "reserved_until": r.reserved_until.isoformat(),
            }
            for k, r in live_reservations(state, at).items()
        ],
        "version": state.version,
    }


# ---- the credit check ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRequest:
    customer_id: str
    amount: Money
    reference: str
    terms_kind: str | None = None


async def check_credit(
    session: AsyncSession,
    ctx: AppendContext,
    request: CheckRequest,
    *,
    reservation_ttl: timedelta,
    today: date | None = None,
) -> dict[str, Any]:
    """Decide, record (CreditCheckPassed/Failed) and answer in the invoice service's contract."""
    at = now()
    found, version = await find_account(session, ctx.tenant_id, request.customer_id)
    state = found or accounts.CreditAccountState(customer_id=request.customer_id)
    # An account without a limit of its own takes its segment's or the tenant's default first.
    default = await defaults.resolve(session, ctx.tenant_id, state.segment)
    adopted = adopt_default(state, default)
    decided_on = state
    for event in adopted:
        decided_on = accounts.evolve(decided_on, event)
    currency = decided_on.currency or request.amount.currency
    day = today or at.date()
    exposure = await exposure_store.exposure_of(
        session, ctx.tenant_id, request.customer_id, currency, day
    )
    unconvertible = set(exposure.unconvertible)
    amount = request.amount
    if amount.currency != currency:  # an invoice in another currency: weigh it in the account's
        rate = await rates.latest(session, ctx.tenant_id, amount.currency, currency, day)
        if rate is None:
            unconvertible.add(amount.currency)
        else:
            exposure.rates_used[amount.currency] = format(rate.normalize(), "f")
            amount = amount.convert(currency, rate, Rounding.HALF_UP)
    check_id = uuid.uuid4()
    events = adopted + accounts.check_credit(
        decided_on,
        check_id=check_id,
        reference=request.reference,
        amount=amount,
        exposure=exposure.net,
        days_overdue=exposure.days_overdue,
        now=at,
        reservation_ttl=reservation_ttl,
        terms_kind=request.terms_kind,
        unconvertible=sorted(unconvertible),
    )
    saved = await save_account(session, state, version, events, ctx, request.customer_id)
    record = accounts.outcome_for(saved, request.reference)
    assert record is not None
    return {
        "check_id": str(record.check_id),
        "outcome": "passed" if record.passed else "failed",
        "reasons": [_reason(r) for r in record.reasons],
        "exposure": exposure.net.model_dump(),
        "open_invoices": exposure.open_invoices.model_dump(),
        "unapplied_cash": exposure.unapplied_cash.model_dump(),
        "days_overdue": exposure.days_overdue,
        "limit": saved.limit.model_dump() if saved.limit else None,
        "amount_weighed": amount.model_dump(),
        "rates_used": exposure.rates_used,
    }


def _reason(reason: CreditCheckReason) -> dict[str, Any]:
    return {
        "code": reason.code,
        "message": reason.message,
        "amount": reason.amount.model_dump() if reason.amount else None,
        "days": reason.days,
    }
