"""As-of views for auditors: events already read (and cut at an instant) folded into JSON data.

`ar events replay --as-of ...` reads the streams; this module only folds them, so that a view of
the past is rebuilt by exactly the code that decides today: each stream goes through
`registry.decode` (which upcasts old schema versions) and its aggregate's own `replay`, as the
services' application layers load them. Nothing here reads a clock or a database.

Importing the domain modules imports `shared.contracts.*`, which registers every payload type
the decoder needs.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from pydantic import BaseModel

from services.credit.domain import account as credit_domain
from services.dunning.domain import case as dunning_domain
from services.invoice.domain import invoice as invoice_domain
from services.invoice.domain.customer import CustomerState, replay_customer
from services.payments.domain import payment as payment_domain
from shared.events.envelope import EventEnvelope, aggregate_of
from shared.events.registry import EventPayload, registry
from shared.money import Money, sum_money

__all__ = ["customer_view", "invoice_view", "jsonable"]


# ------------------------------------------------------------------------------- JSON


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data (dict, list, str, int, float, bool, None).

    The domain states are frozen dataclasses holding Money, UUIDs, dates, enums and sets; an
    audit view must print the same bytes for the same facts, so sets come out sorted (by their
    JSON text) and anything unexpected raises instead of being `str()`-ed into something that
    merely looks right. Decimals keep their scale in plain notation ("2.50", never "2.5E+0").
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Enum):  # before str/int: StrEnum and IntEnum are both
        return jsonable(value.value)
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, BaseModel):  # Money too: {"amount": <minor units>, "currency": ...}
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):  # datetime is a date
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=_text)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")


def _text(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _key(key: Any) -> str:
    data = jsonable(key)
    return data if isinstance(data, str) else _text(data)


def _money(amount: Money | None) -> dict[str, Any] | None:
    return None if amount is None else jsonable(amount)


# ---------------------------------------------------------------------------- streams


def _ordered(envelopes: Sequence[EventEnvelope]) -> list[EventEnvelope]:
    """The events of one stream by version, refusing anything but versions 1..n.

    A fold of a stream with a hole (or of two streams) would be a state that never existed; an
    audit view must fail rather than show it.
    """
    ordered = sorted(envelopes, key=lambda e: e.stream_version)
    streams = {e.stream_id for e in ordered}
    if len(streams) > 1:
        raise ValueError(f"events of several streams given as one: {sorted(streams)}")
    versions = [e.stream_version for e in ordered]
    if versions != list(range(1, len(ordered) + 1)):
        raise ValueError(f"{ordered[0].stream_id}: versions {versions} are not 1..{len(ordered)}")
    return ordered


def _decoded(envelopes: Iterable[EventEnvelope]) -> list[EventPayload]:
    return [registry.decode(e) for e in envelopes]


def _last_event(envelope: EventEnvelope) -> dict[str, Any]:
    return {
        "event_type": envelope.event_type,
        "stream_version": envelope.stream_version,
        "recorded_at": envelope.recorded_at.isoformat(),
        "actor": envelope.actor,
    }


# ---------------------------------------------------------------------------- invoice


def _invoice_summary(state: invoice_domain.InvoiceState) -> dict[str, Any]:
    """What finance reads first; the derived amounts are not fields, so `state` lacks them."""
    return {
        "invoice_id": str(state.invoice_id),
        "number": state.number,
        "status": state.status.value,
        "customer_id": state.customer_id,
        "currency": state.currency,
        "issue_date": jsonable(state.issue_date),
        "due_date": jsonable(state.due_date),
        "installments": jsonable(state.installments),
        "total": _money(state.total),
        "total_due": _money(state.total_due),
        "paid": _money(state.paid),
        "credited": _money(state.credited),
        "written_off": _money(state.written_off_amount),
        "open_amount": _money(state.open_amount),
        "disputed_amount": _money(state.disputed_amount),
        "paid_on": jsonable(state.paid_on),
    }


def invoice_view(envelopes: Sequence[EventEnvelope]) -> dict[str, Any]:
    """One invoice rebuilt from its events (`invoice-<uuid>`, already cut at the instant).

    Raises ValueError for no events (the invoice did not exist yet: there is no state to show),
    for another aggregate's stream, or for a stream that is not versions 1..n.
    """
    if not envelopes:
        raise ValueError("no events: the invoice did not exist at that instant")
    ordered = _ordered(envelopes)
    last = ordered[-1]
    if last.aggregate != "invoice":
        raise ValueError(f"{last.stream_id} is not an invoice stream")
    state = invoice_domain.replay(_decoded(ordered))
    assert state is not None  # a non-empty stream folds to a state
    return {
        "stream_id": last.stream_id,
        "version": last.stream_version,
        "events": len(ordered),
        "last_event": _last_event(last),
        "summary": _invoice_summary(state),
        "state": jsonable(state),
    }


# --------------------------------------------------------------------------- customer


@dataclasses.dataclass
class _Rebuilt:
    """The states of one customer's streams, filled in by the fold table below."""

    customer_id: str
    customer: CustomerState | None = None
    invoices: list[invoice_domain.InvoiceState] = dataclasses.field(default_factory=list)
    payments: list[payment_domain.PaymentState] = dataclasses.field(default_factory=list)
    credit: credit_domain.CreditAccountState | None = None
    dunning: dunning_domain.CaseState | None = None

    def owned(self, stream_id: str, owner: str) -> None:
        """The reader picks the streams; a state of another customer means it picked wrong."""
        if owner != self.customer_id:
            raise ValueError(f"{stream_id} belongs to customer {owner}, not {self.customer_id}")


def _customer_owner(stream_id: str) -> str:
    """`<aggregate>-<tenant>:<customer>`: tenant ids hold no ':', customer ids may."""
    return stream_id.split("-", 1)[1].partition(":")[2]


def _fold_customer(r: _Rebuilt, stream_id: str, events: list[EventPayload]) -> None:
    r.customer = replay_customer(events)
    if r.customer is not None:
        r.owned(stream_id, r.customer.customer_id)


def _fold_invoice(r: _Rebuilt, stream_id: str, events: list[EventPayload]) -> None:
    state = invoice_domain.replay(events)
    if state is not None:
        r.owned(stream_id, state.customer_id)
        r.invoices.append(state)


def _fold_payment(r: _Rebuilt, stream_id: str, events: list[EventPayload]) -> None:
    state = payment_domain.replay(events)
    if state is not None:
        r.owned(stream_id, state.customer_id)
        r.payments.append(state)


def _fold_credit(r: _Rebuilt, stream_id: str, events: list[EventPayload]) -> None:
    r.credit = credit_domain.replay(events)
    if r.credit is not None:
        r.owned(stream_id, r.credit.customer_id)


def _fold_dunning(r: _Rebuilt, stream_id: str, events: list[EventPayload]) -> None:
    # A case's events do not name the customer: only the stream id does.
    r.owned(stream_id, _customer_owner(stream_id))
    r.dunning = dunning_domain.replay(r.customer_id, events)


_Fold = Callable[[_Rebuilt, str, list[EventPayload]], None]

#: Stream aggregate -> how its events become state. Any other aggregate is only counted.
_FOLDS: Final[Mapping[str, _Fold]] = {
    "customer": _fold_customer,
    "invoice": _fold_invoice,
    "payment": _fold_payment,
    "credit_account": _fold_credit,
    "dunning_case": _fold_dunning,
}


def _is_overdue(state: invoice_domain.InvoiceState, day: date) -> bool:
    """Past its (final) due date with something open; instalments are not looked at apart."""
    return state.due_date is not None and state.due_date < day and state.open_amount.is_positive()


def _invoice_order(state: invoice_domain.InvoiceState) -> tuple[bool, date, str, str]:
    """By issue date then number; drafts (neither) last."""
    issued = state.issue_date or date.max
    return (state.issue_date is None, issued, state.number or "", str(state.invoice_id))


def _payment_summary(state: payment_domain.PaymentState) -> dict[str, Any]:
    return {
        "payment_id": str(state.payment_id),
        "received_on": state.received_on.isoformat(),
        "method": state.method,
        "reference": state.reference,
        "amount": _money(state.amount),
        "applied": _money(state.applied),
        "unapplied": _money(state.unapplied),
        "refunded": _money(state.refunded),
        "reversed": _money(state.reversed),
        "status": state.status.value,
    }


def _credit_summary(state: credit_domain.CreditAccountState, as_of: datetime) -> dict[str, Any]:
    """Headroom is left out: it needs the credit service's exposure, which is not an event."""
    risk = state.last_risk
    return {
        "currency": state.currency,
        "limit": _money(state.limit),
        "reserved": _money(credit_domain.reserved(state, as_of)),
        "on_hold": state.on_hold,
        "holds": jsonable(state.holds),
        "pending_limit_change": jsonable(state.pending_change),
        "max_days_overdue": state.max_days_overdue,
        "allowed_terms": jsonable(state.allowed_terms),
        "review_date": jsonable(state.review_date),
        "segment": state.segment,
        "risk": None
        if risk is None
        else {
            "score": risk.score,
            "band": risk.band,
            "recommended_limit": _money(risk.recommended_limit),
            "as_of": risk.as_of.isoformat(),
        },
        "version": state.version,
    }


def _dunning_summary(state: dunning_domain.CaseState) -> dict[str, Any]:
    steps: dict[str, list[str]] = {}
    for invoice_id, step in sorted(state.done, key=lambda d: (str(d[0]), d[1])):
        steps.setdefault(str(invoice_id), []).append(step)
    messages: dict[str, int] = {}
    for status in state.messages.values():
        messages[status] = messages.get(status, 0) + 1
    return {
        "customer_paused": any(p.invoice_id is None for p in state.pauses.values()),
        "pauses": jsonable(state.pauses),
        "promises": jsonable(state.promises),
        "escalated_invoices": jsonable(state.escalated),
        "steps_done": steps,
        "last_email_on": jsonable(state.last_email_on),
        "messages": dict(sorted(messages.items())),
        "version": state.version,
    }


_NOT_BILLED: Final = (invoice_domain.InvoiceStatus.DRAFT, invoice_domain.InvoiceStatus.VOID)


def _totals(r: _Rebuilt, day: date) -> dict[str, dict[str, Any]]:
    """Per currency: invoiced (total due of issued invoices, voids and drafts excluded), open,
    overdue (open of invoices due before `day`) and cash received but not applied."""
    billed = [s for s in r.invoices if s.status not in _NOT_BILLED]
    currencies = sorted({s.currency for s in billed} | {p.currency for p in r.payments})
    totals: dict[str, dict[str, Any]] = {}
    for c in currencies:
        mine = [s for s in billed if s.currency == c]
        totals[c] = {
            "invoiced": _money(sum_money((s.total_due for s in mine), c)),
            "open": _money(sum_money((s.open_amount for s in mine), c)),
            "overdue": _money(sum_money((s.open_amount for s in mine if _is_overdue(s, day)), c)),
            "unapplied_cash": _money(
                sum_money((p.unapplied for p in r.payments if p.currency == c), c)
            ),
        }
    return totals


def customer_view(
    customer_id: str, streams: Mapping[str, Sequence[EventEnvelope]], as_of: datetime
) -> dict[str, Any]:
    """A customer across the services, from its streams' events already cut at `as_of`.

    `streams` maps stream id -> events. Customer, invoice, payment, credit account and dunning
    case streams are folded; others (bank statements, terms templates, ...) are only counted
    under "other_streams", since they are not this customer's state. Streams without events
    are skipped (nothing of them existed yet). Raises ValueError for a naive `as_of`, streams
    of several tenants, a stream that is not versions 1..n, or a state of another customer.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError(f"as_of must be timezone-aware, got {as_of!r}")
    tenants = {e.tenant_id for events in streams.values() for e in events}
    if len(tenants) > 1:
        raise ValueError(f"streams of several tenants: {sorted(tenants)}")
    rebuilt = _Rebuilt(customer_id)
    other: dict[str, int] = {}
    for stream_id in sorted(streams):
        events = streams[stream_id]
        if not events:
            continue
        ordered = _ordered(events)
        if ordered[0].stream_id != stream_id:
            raise ValueError(f"events of {ordered[0].stream_id} filed under {stream_id}")
        fold = _FOLDS.get(aggregate_of(stream_id))
        if fold is None:
            other[stream_id] = len(ordered)
        else:
            fold(rebuilt, stream_id, _decoded(ordered))
    day = as_of.date()
    return {
        "customer_id": customer_id,
        "as_of": as_of.isoformat(),
        "customer": None if rebuilt.customer is None else jsonable(rebuilt.customer),
        "invoices": [
            {**_invoice_summary(s), "overdue": _is_overdue(s, day)}
            for s in sorted(rebuilt.invoices, key=_invoice_order)
        ],
        "payments": [
            _payment_summary(p)
            for p in sorted(rebuilt.payments, key=lambda p: (p.received_on, str(p.payment_id)))
        ],
        "credit": None if rebuilt.credit is None else _credit_summary(rebuilt.credit, as_of),
        "dunning": None if rebuilt.dunning is None else _dunning_summary(rebuilt.dunning),
        "totals": _totals(rebuilt, day),
        "other_streams": other,
    }
