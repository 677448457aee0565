"""The journal projector: posts every financial event as balanced journal entries.

It runs as its own consumer group (``reporting.journal``) beside the reporting projector, so a
journal problem (a missing exchange rate, say) never holds up the reports, and vice versa.

Per event: the ``Books`` of the event's own document (its invoice or its payment) are folded
from that document's journal rows, ``postings_for`` turns the event into entries, and the
entries are inserted with ``ON CONFLICT DO NOTHING`` on their ``entry_id``. An event whose
entries are already there is skipped before anything is computed, so a redelivery, a replay or
a DLQ redrive changes nothing. Each stream arrives in order and every posting needs only its own
stream, so topics may interleave freely.

Failures raise on purpose, so the consumer runtime retries the event and then dead-letters it
(``ar dlq redrive`` once fixed): ``MissingRate`` when ``fx_rates`` has no rate for a foreign
currency on or before the entry date, ``MissingDocument`` when the document's opening event was
never posted (typically because it was itself dead-lettered: redrive that one first).

Positions (the export cursor) must become visible in order per tenant, or an exporter reading
``position > cursor`` could pass a lower position that commits later. Writers therefore hold a
per-tenant advisory lock until their transaction commits. A consumer batch may span tenants, and
two instances taking two tenants' locks in opposite orders would deadlock; so a lock is only
waited for while the transaction holds no other tenant's: otherwise the handler raises
``ConcurrencyConflict``, and the consumer runtime re-applies the batch one record per
transaction, where waiting is safe.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.domain.postings import (
    POSTING_EVENT_TYPES,
    Books,
    EventMeta,
    JournalEntry,
    MissingDocument,
    postings_for,
)
from services.reporting.projections.journal_store import (
    LedgerTables,
    document_entries,
    functional_currency,
    insert_entries,
)
from shared.consumer import MessageContext, Unprocessable
from shared.errors import ConcurrencyConflict
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload, registry
from shared.money import Money

PAYMENT_STREAM_TYPES: Final = frozenset(
    {
        "PaymentReceived",
        "PaymentAllocated",
        "PaymentUnallocated",
        "PaymentRefunded",
        "PaymentReversed",
    }
)
"""Posting events of the payments service's payment stream; every other posting event belongs
to an invoice's stream."""

_MAX_RATE_LOOKUPS: Final = 8
_LOCKS_HELD: Final = "reporting.journal_locks"


class MissingRate(Unprocessable, LookupError):
    """No exchange rate to value the event: load it (``PUT /v1/fx-rates``) and redrive."""

    def __init__(self, tenant_id: str, currency: str, to_currency: str, on: date) -> None:
        super().__init__(
            f"tenant {tenant_id}: no {currency}->{to_currency} rate on or before {on.isoformat()}"
        )
        self.currency, self.to_currency, self.on = currency, to_currency, on


class UnpostedDocument(Unprocessable):
    """The event's invoice or payment was never posted (its opening event was dead-lettered):
    redrive that one first, then this."""


class _RateNeeded(Exception):
    def __init__(self, currency: str, on: date) -> None:
        self.currency, self.on = currency, on


class _Rates:
    """``RateLookup`` is synchronous, so rates are fetched on demand around it: a lookup that
    misses raises ``_RateNeeded``, the caller fetches that rate and posts again."""

    def __init__(self, t: LedgerTables, tenant_id: str, functional: str) -> None:
        self.t, self.tenant_id, self.functional = t, tenant_id, functional
        self.known: dict[tuple[str, date], Decimal] = {}

    def __call__(self, currency: str, on: date) -> Decimal:
        rate = self.known.get((currency, on))
        if rate is None:
            raise _RateNeeded(currency, on)
        return rate

    async def fetch(self, session: AsyncSession, currency: str, on: date) -> None:
        """The latest rate on or before the day (rates are not published every day)."""
        rate = await session.scalar(
            text(
                f"""SELECT rate FROM {self.t.fx_rates}
                    WHERE tenant_id = :t AND currency = :c AND to_currency = :to
                        AND rate_date <= :on
                    ORDER BY rate_date DESC LIMIT 1"""
            ),
            {"t": self.tenant_id, "c": currency, "to": self.functional, "on": on},
        )
        if rate is None:
            raise MissingRate(self.tenant_id, currency, self.functional, on)
        self.known[currency, on] = Decimal(rate)


def journal_lock_key(schema: str, tenant_id: str) -> str:
    return f"ledgerline.journal.{schema}.{tenant_id}"


class JournalProjector:
    def __init__(self, schema: str) -> None:
        self.t = LedgerTables(schema)

    async def __call__(
        self, session: AsyncSession, envelope: EventEnvelope, ctx: MessageContext
    ) -> None:
        """The consumer handler."""
        await self.apply(session, envelope)

    async def apply(self, session: AsyncSession, envelope: EventEnvelope) -> list[JournalEntry]:
        """Post the event; returns the entries it added ([] for a duplicate or a non-posting
        event)."""
        if envelope.event_type not in POSTING_EVENT_TYPES:
            return []
        tenant = envelope.tenant_id
        await self._lock(session, tenant)
        if await self._posted(session, tenant, envelope.event_id):
            return []
        payload = registry.decode(envelope)
        if envelope.event_type in PAYMENT_STREAM_TYPES:
            history = await document_entries(
                session,
                self.t,
                tenant,
                payment_id=getattr(payload, "payment_id"),  # noqa: B009
            )
        else:
            history = await document_entries(
                session,
                self.t,
                tenant,
                invoice_id=getattr(payload, "invoice_id"),  # noqa: B009
            )
        functional = await functional_currency(session, self.t, tenant, _currency_of(payload))
        rates = _Rates(self.t, tenant, functional)
        books = Books().after(history)
        meta = EventMeta.of(envelope)
        for _ in range(_MAX_RATE_LOOKUPS):
            try:
                entries = postings_for(envelope.event_type, payload, meta, functional, rates, books)
            except MissingDocument as exc:
                raise UnpostedDocument(str(exc)) from exc
            except _RateNeeded as need:
                await rates.fetch(session, need.currency, need.on)
                continue
            await insert_entries(session, self.t, entries)
            return entries
        raise RuntimeError(f"event {envelope.event_id}: too many exchange rates needed")

    async def _lock(self, session: AsyncSession, tenant_id: str) -> None:
        key = {"key": journal_lock_key(self.t.schema, tenant_id)}
        transaction = session.get_transaction()
        owner, tenants = session.info.get(_LOCKS_HELD, (None, set()))
        if owner is not transaction:
            tenants = set()
        got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), key)
        if not got:
            if tenants - {tenant_id}:
                raise ConcurrencyConflict(
                    f"the journal of tenant {tenant_id} is being written by another transaction"
                )
            await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), key)
        session.info[_LOCKS_HELD] = (transaction, tenants | {tenant_id})

    async def _posted(self, session: AsyncSession, tenant_id: str, event_id: uuid.UUID) -> bool:
        found = await session.scalar(
            text(f"SELECT 1 FROM {self.t.entries} WHERE tenant_id = :t AND event_id = :e LIMIT 1"),
            {"t": tenant_id, "e": event_id},
        )
        return found is not None


def _currency_of(payload: EventPayload) -> str | None:
    """The event's transaction currency (an invoice's, or its amount's)."""
    currency = getattr(payload, "currency", None)
    if isinstance(currency, str):
        return currency
    amount = getattr(payload, "amount", None)
    return amount.currency if isinstance(amount, Money) else None
