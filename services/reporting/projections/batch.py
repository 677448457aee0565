"""The projector for a rebuild: the same rows as `Projector`, written a batch at a time.

A rebuild replays every topic from offset 0 into empty shadow tables that only it writes, so it
can keep what it has written in memory instead of reading it back: the stream versions, every
invoice's obligations, settlement sum and disputes, the open items and the tenants' totals. Each
event is applied to that mirror exactly as `Projector` applies it to the tables (same version
checks, same `ON CONFLICT DO NOTHING` rules, the open-items refresh after every invoice event, so
`open_totals` gets the same rows, zeros included); `take_writes` then gives the statements that
write the rows the batch changed, one multi-row statement per table.

The mirror is valid only while every write succeeds: `Rebuild` drops this projector and goes on
with `Projector` (which reads the tables) after any failure it cannot count against one event.
The live consumer keeps `Projector`: it shares the tables with other writers and readers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.domain.aging import (
    InvoicePosition,
    Obligation,
    OpenPortion,
    open_portions,
    open_total_changes,
)
from services.reporting.projections.projector import PROJECTED_TYPES
from services.reporting.projections.tables import Tables
from shared.contracts import invoice as inv
from shared.contracts import payments as pay
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload, registry
from shared.events.replay import ReplayEnvelope

Key = tuple[str, uuid.UUID]  # (tenant, id)
Recorded = EventEnvelope | ReplayEnvelope[Any]


@dataclass
class _Obligation:
    key: str
    kind: str
    seq: int
    arises_on: date
    due_date: date
    amount: int


@dataclass
class _Invoice:
    customer_id: str
    number: str
    currency: str
    issue_date: date
    due_date: date
    total: int
    status: str
    closed_on: date | None
    paid_on: date | None
    stream_version: int
    obligations: dict[str, _Obligation] = field(default_factory=dict)
    settled: int = 0
    latest_settlement: date | None = None
    disputes: list[Key] = field(default_factory=list)
    items: list[OpenPortion] = field(default_factory=list)


@dataclass
class _Dispute:
    invoice_id: uuid.UUID
    customer_id: str
    currency: str
    amount: int
    opened_on: date
    resolved_on: date | None = None
    outcome: str | None = None


@dataclass
class _Payment:
    customer_id: str
    currency: str
    amount: int
    method: str
    received_on: date
    source: str
    stream_version: int
    reference: str | None


Streamed = TypeVar("Streamed", _Invoice, _Payment)


def _advanced(
    rows: dict[Key, Streamed], dirty: set[Key], key: Key, stream_version: int
) -> Streamed | None:
    """The row an event of its stream changes, moved to the event's version and marked to be
    written; None if the row is unknown or already past that version (a redelivery)."""
    row = rows.get(key)
    if row is None or row.stream_version >= stream_version:
        return None
    row.stream_version = stream_version
    dirty.add(key)
    return row


class BatchProjector:
    """`apply` one decoded event at a time into memory, `take_writes` once per batch."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables
        self.customers: dict[tuple[str, str], tuple[str, str | None, int]] = {}
        self.invoices: dict[Key, _Invoice] = {}
        self.payments: dict[Key, _Payment] = {}
        self.disputes: dict[Key, _Dispute] = {}
        self.allocations: dict[Key, list[Any]] = {}
        self.settlement_keys: set[tuple[str, uuid.UUID, str]] = set()
        self.return_keys: set[Key] = set()
        self.tenant_invoices: dict[str, int] = defaultdict(int)
        self.horizons: dict[str, list[Any]] = {}  # tenant -> [latest_on, complete]
        self.totals: dict[tuple[str, str, date, date], list[int]] = {}
        self._clear_dirty()

    def _clear_dirty(self) -> None:
        self.d_customers: set[tuple[str, str]] = set()
        self.d_invoices: set[Key] = set()
        self.d_obligations: set[tuple[Key, str]] = set()
        self.new_settlements: list[tuple[Any, ...]] = []
        self.d_disputes: set[Key] = set()
        self.d_payments: set[Key] = set()
        self.d_allocations: set[Key] = set()
        self.new_returns: list[tuple[Any, ...]] = []
        self.d_items: set[Key] = set()
        self.d_totals: set[tuple[str, str, date, date]] = set()
        self.d_horizons: set[str] = set()

    @staticmethod
    def decode(envelope: EventEnvelope) -> EventPayload | None:
        """The payload, or None for an event type this projection ignores; raises if invalid."""
        if envelope.event_type not in PROJECTED_TYPES:
            return None
        return registry.decode(envelope)

    # ---- applying one event (the same rules as Projector._apply) --------------------------------

    def apply(self, env: Recorded, event: Any) -> None:
        """`event` is the payload's model, or its replay struct (the same fields)."""
        event_type = env.event_type
        if event_type in _CUSTOMER_TYPES:
            self._customer(env, event)
        elif event_type == _ISSUED:
            if self._issued(env, event):
                self._refresh(env.tenant_id, event.invoice_id)
        elif event_type == _RECEIVED:
            self._payment_received(env, event)
        elif event_type in _INVOICE_CHANGES:
            key = (env.tenant_id, event.invoice_id)
            invoice = _advanced(self.invoices, self.d_invoices, key, env.stream_version)
            if invoice is not None:
                _INVOICE_CHANGES[event_type](self, env, key, invoice, event)
                self._refresh(env.tenant_id, key[1])
        elif event_type in _PAYMENT_CHANGES:
            key = (env.tenant_id, event.payment_id)
            payment = _advanced(self.payments, self.d_payments, key, env.stream_version)
            if payment is not None:
                _PAYMENT_CHANGES[event_type](self, env, payment, event)

    def _customer(self, env: Recorded, e: inv.CustomerRegistered | inv.CustomerUpdated) -> None:
        key = (env.tenant_id, e.customer_id)
        known = self.customers.get(key)
        if known is None or known[2] < env.stream_version:
            self.customers[key] = (e.name, e.currency, env.stream_version)
            self.d_customers.add(key)

    def _issued(self, env: Recorded, e: inv.InvoiceIssued) -> bool:
        key = (env.tenant_id, e.invoice_id)
        if key in self.invoices:
            return False
        invoice = _Invoice(
            customer_id=e.customer_id,
            number=e.number,
            currency=e.currency,
            issue_date=e.issue_date,
            due_date=e.due_date,
            total=e.total.amount,
            status="open",
            closed_on=None,
            paid_on=None,
            stream_version=env.stream_version,
        )
        self.invoices[key] = invoice
        self.tenant_invoices[env.tenant_id] += 1
        self.d_invoices.add(key)
        for seq, installment in enumerate(e.installments):
            self._obligation(
                key,
                invoice,
                _Obligation(
                    f"installment:{seq}",
                    "installment",
                    seq,
                    e.issue_date,
                    installment.due_date,
                    installment.amount.amount,
                ),
            )
        return True

    def _obligation(self, key: Key, invoice: _Invoice, obligation: _Obligation) -> None:
        if obligation.key not in invoice.obligations:  # ON CONFLICT DO NOTHING
            invoice.obligations[obligation.key] = obligation
            self.d_obligations.add((key, obligation.key))

    def _payment_received(self, env: Recorded, e: pay.PaymentReceived) -> None:
        key = (env.tenant_id, e.payment_id)
        if key not in self.payments:
            self.payments[key] = _Payment(
                customer_id=e.customer_id,
                currency=e.amount.currency,
                amount=e.amount.amount,
                method=e.method,
                received_on=e.received_on,
                source=e.source,
                stream_version=env.stream_version,
                reference=e.reference,
            )
            self.d_payments.add(key)

    def _settlement(
        self,
        env: Recorded,
        key: Key,
        invoice: _Invoice,
        kind: str,
        amount: int,
        on: date,
        document_number: str | None = None,
    ) -> None:
        if amount == 0:
            return
        settlement = (env.tenant_id, env.event_id, kind)
        if settlement in self.settlement_keys:
            return
        self.settlement_keys.add(settlement)
        self.new_settlements.append(
            (
                *settlement,
                key[1],
                invoice.customer_id,
                invoice.currency,
                on,
                amount,
                document_number,
            )
        )
        invoice.settled += amount
        if invoice.latest_settlement is None or on > invoice.latest_settlement:
            invoice.latest_settlement = on

    def _payment_applied(
        self, env: Recorded, key: Key, invoice: _Invoice, e: inv.PaymentApplied
    ) -> None:
        self._settlement(env, key, invoice, "payment", e.amount.amount, e.applied_on)
        self._settlement(env, key, invoice, "discount", e.discount_taken.amount, e.applied_on)

    def _payment_unapplied(
        self, env: Recorded, key: Key, invoice: _Invoice, e: inv.PaymentUnapplied
    ) -> None:
        self._settlement(env, key, invoice, "payment", -e.amount.amount, e.unapplied_on)
        if e.discount_reversed is not None:
            self._settlement(
                env, key, invoice, "discount", -e.discount_reversed.amount, e.unapplied_on
            )

    def _credit_note(
        self, env: Recorded, key: Key, invoice: _Invoice, e: inv.CreditNoteIssued
    ) -> None:
        self._settlement(env, key, invoice, "credit_note", e.amount.amount, e.issued_on, e.number)

    def _late_fee(self, env: Recorded, key: Key, invoice: _Invoice, e: inv.LateFeeCharged) -> None:
        fee = _Obligation(
            f"fee:{e.fee_id}", "late_fee", 0, e.charged_on, e.charged_on, e.amount.amount
        )
        self._obligation(key, invoice, fee)

    def _written_off(
        self, env: Recorded, key: Key, invoice: _Invoice, e: inv.InvoiceWrittenOff
    ) -> None:
        self._settlement(env, key, invoice, "write_off", e.amount.amount, e.written_off_on)
        self._status(invoice, "written_off", e.written_off_on, None)

    def _voided(self, env: Recorded, key: Key, invoice: _Invoice, e: inv.InvoiceVoided) -> None:
        remaining = sum(o.amount for o in invoice.obligations.values()) - invoice.settled
        self._settlement(env, key, invoice, "void", remaining, e.voided_on)
        self._status(invoice, "void", e.voided_on, None)

    def _paid(self, env: Recorded, key: Key, invoice: _Invoice, e: inv.InvoicePaid) -> None:
        self._status(invoice, "paid", e.paid_on, e.paid_on)

    def _reopened(self, env: Recorded, key: Key, invoice: _Invoice, e: inv.InvoiceReopened) -> None:
        self._status(invoice, "open", None, None)

    @staticmethod
    def _status(
        invoice: _Invoice, status: str, closed_on: date | None, paid_on: date | None
    ) -> None:
        invoice.status, invoice.closed_on, invoice.paid_on = status, closed_on, paid_on

    def _due_date_changed(
        self, env: Recorded, key: Key, invoice: _Invoice, e: inv.InvoiceDueDateChanged
    ) -> None:
        invoice.due_date = e.new_due_date
        installments = [o for o in invoice.obligations.values() if o.kind == "installment"]
        if not installments:
            return
        last = max(o.seq for o in installments)
        for o in installments:
            o.due_date = e.new_due_date if o.seq == last else min(o.due_date, e.new_due_date)
            self.d_obligations.add((key, o.key))

    def _dispute_opened(
        self, env: Recorded, key: Key, invoice: _Invoice, e: inv.DisputeOpened
    ) -> None:
        dispute = (env.tenant_id, e.dispute_id)
        if dispute not in self.disputes:
            self.disputes[dispute] = _Dispute(
                key[1], invoice.customer_id, invoice.currency, e.amount.amount, e.opened_on
            )
            invoice.disputes.append(dispute)
            self.d_disputes.add(dispute)

    def _dispute_resolved(
        self, env: Recorded, key: Key, invoice: _Invoice, e: inv.DisputeResolved
    ) -> None:
        dispute = self.disputes.get((env.tenant_id, e.dispute_id))  # whichever invoice it is on
        if dispute is not None:
            dispute.resolved_on, dispute.outcome = e.resolved_on, e.outcome
            self.d_disputes.add((env.tenant_id, e.dispute_id))

    def _allocated(self, env: Recorded, payment: _Payment, e: pay.PaymentAllocated) -> None:
        key = (env.tenant_id, e.allocation_id)
        if key not in self.allocations:
            self.allocations[key] = [
                e.payment_id,
                e.invoice_id,
                payment.customer_id,
                e.amount.currency,
                e.amount.amount,
                e.allocated_on,
                e.rule,
                None,
            ]
            self.d_allocations.add(key)

    def _unallocated(self, env: Recorded, payment: _Payment, e: pay.PaymentUnallocated) -> None:
        key = (env.tenant_id, e.allocation_id)
        allocation = self.allocations.get(key)
        if allocation is not None:
            allocation[7] = e.unallocated_on
            self.d_allocations.add(key)

    def _refunded(self, env: Recorded, payment: _Payment, e: pay.PaymentRefunded) -> None:
        self._returned(env, payment, e, "refund", e.refunded_on)

    def _reversed(self, env: Recorded, payment: _Payment, e: pay.PaymentReversed) -> None:
        self._returned(env, payment, e, e.kind, e.reversed_on)

    def _returned(
        self,
        env: Recorded,
        payment: _Payment,
        e: pay.PaymentRefunded | pay.PaymentReversed,
        kind: str,
        on: date,
    ) -> None:
        key = (env.tenant_id, env.event_id)
        if key not in self.return_keys:
            self.return_keys.add(key)
            self.new_returns.append(
                (
                    env.tenant_id,
                    env.event_id,
                    e.payment_id,
                    payment.customer_id,
                    kind,
                    e.amount.currency,
                    e.amount.amount,
                    on,
                )
            )

    # ---- the open-items refresh (Projector._refresh_open_items, on the mirror) ------------------

    def _refresh(self, tenant_id: str, invoice_id: uuid.UUID) -> None:
        key = (tenant_id, invoice_id)
        invoice = self.invoices.get(key)
        if invoice is None or not invoice.obligations:
            return
        # ORDER BY due_date, seq; ties in the order of the primary key, as Postgres reads them
        ordered = sorted(invoice.obligations.values(), key=lambda o: (o.due_date, o.seq, o.key))
        disputes = [self.disputes[d] for d in invoice.disputes]
        disputed = sum(d.amount for d in disputes if d.resolved_on is None)
        position = InvoicePosition(
            invoice_id=str(invoice_id),
            customer_id=invoice.customer_id,
            currency=invoice.currency,
            issue_date=invoice.issue_date,
            obligations=tuple(Obligation(o.due_date, o.amount) for o in ordered),
            settled=invoice.settled,
            disputed=disputed,
        )
        portions = open_portions(position) if invoice.closed_on is None else []
        old = [
            (i.currency, i.due_date, i.issue_date, i.undisputed, i.disputed) for i in invoice.items
        ]
        deltas = open_total_changes(old, portions)
        if invoice.items or portions:
            self.d_items.add(key)
        invoice.items = portions
        for (cur, due, issued), d in deltas.items():
            if any(d):
                total_key = (tenant_id, cur, due, issued)
                total = self.totals.setdefault(total_key, [0, 0, 0])
                total[0] += d[0]
                total[1] += d[1]
                total[2] += d[2]
                self.d_totals.add(total_key)
        dates = [
            invoice.issue_date,
            invoice.closed_on,
            invoice.latest_settlement,
            *(
                max(
                    (x for x in (d.opened_on, d.resolved_on) if x is not None),
                )
                for d in disputes
            ),
            *(o.arises_on for o in ordered),
        ]
        latest = max(d for d in dates if d is not None)
        horizon = self.horizons.get(tenant_id)
        if horizon is None:
            self.horizons[tenant_id] = [latest, self.tenant_invoices[tenant_id] == 1]
            self.d_horizons.add(tenant_id)
        elif horizon[0] < latest:
            horizon[0] = latest
            self.d_horizons.add(tenant_id)

    # ---- writing the batch ----------------------------------------------------------------------

    def take_writes(self) -> list[Write]:
        """The statements writing every row the events since the last call changed, one per
        table, taken now: applying more events does not change them, so the rebuild writes one
        batch while it applies the next."""
        t = self.t
        writes: list[Write] = []
        if self.d_customers:
            rows = [(*k, *self.customers[k]) for k in sorted(self.d_customers)]
            _stage(
                writes,
                f"""INSERT INTO {t.customers} (tenant_id, customer_id, name, currency,
                        stream_version)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS text[]),
                        CAST(:c2 AS text[]), CAST(:c3 AS text[]), CAST(:c4 AS int[]))
                    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET name = EXCLUDED.name,
                        currency = EXCLUDED.currency, stream_version = EXCLUDED.stream_version""",
                rows,
            )
        if self.d_invoices:
            inv_rows = []
            for k in sorted(self.d_invoices):
                i = self.invoices[k]
                inv_rows.append(
                    (
                        *k,
                        i.customer_id,
                        i.number,
                        i.currency,
                        i.issue_date,
                        i.due_date,
                        i.total,
                        i.status,
                        i.closed_on,
                        i.paid_on,
                        i.stream_version,
                    )
                )
            _stage(
                writes,
                f"""INSERT INTO {t.invoices} (tenant_id, invoice_id, customer_id, number,
                        currency, issue_date, due_date, total_minor, status, closed_on, paid_on,
                        stream_version)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[]),
                        CAST(:c2 AS text[]), CAST(:c3 AS text[]), CAST(:c4 AS text[]),
                        CAST(:c5 AS date[]), CAST(:c6 AS date[]), CAST(:c7 AS bigint[]),
                        CAST(:c8 AS text[]), CAST(:c9 AS date[]), CAST(:c10 AS date[]),
                        CAST(:c11 AS int[]))
                    ON CONFLICT (tenant_id, invoice_id) DO UPDATE SET
                        due_date = EXCLUDED.due_date, status = EXCLUDED.status,
                        closed_on = EXCLUDED.closed_on, paid_on = EXCLUDED.paid_on,
                        stream_version = EXCLUDED.stream_version""",
                inv_rows,
            )
        if self.d_obligations:
            ob_rows = []
            for k, name in sorted(self.d_obligations):
                i = self.invoices[k]
                o = i.obligations[name]
                ob_rows.append(
                    (
                        *k,
                        o.key,
                        o.kind,
                        o.seq,
                        i.customer_id,
                        i.currency,
                        o.arises_on,
                        o.due_date,
                        o.amount,
                    )
                )
            _stage(
                writes,
                f"""INSERT INTO {t.obligations} (tenant_id, invoice_id, obligation_key, kind, seq,
                        customer_id, currency, arises_on, due_date, amount_minor)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[]),
                        CAST(:c2 AS text[]), CAST(:c3 AS text[]), CAST(:c4 AS int[]),
                        CAST(:c5 AS text[]), CAST(:c6 AS text[]), CAST(:c7 AS date[]),
                        CAST(:c8 AS date[]), CAST(:c9 AS bigint[]))
                    ON CONFLICT (tenant_id, invoice_id, obligation_key) DO UPDATE SET
                        due_date = EXCLUDED.due_date""",
                ob_rows,
            )
        if self.new_settlements:
            _stage(
                writes,
                f"""INSERT INTO {t.settlements} (tenant_id, event_id, kind, invoice_id,
                        customer_id, currency, effective_on, amount_minor, document_number)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[]),
                        CAST(:c2 AS text[]), CAST(:c3 AS uuid[]), CAST(:c4 AS text[]),
                        CAST(:c5 AS text[]), CAST(:c6 AS date[]), CAST(:c7 AS bigint[]),
                        CAST(:c8 AS text[]))""",
                self.new_settlements,
            )
        if self.d_disputes:
            d_rows = []
            for k in sorted(self.d_disputes):
                d = self.disputes[k]
                d_rows.append(
                    (
                        *k,
                        d.invoice_id,
                        d.customer_id,
                        d.currency,
                        d.amount,
                        d.opened_on,
                        d.resolved_on,
                        d.outcome,
                    )
                )
            _stage(
                writes,
                f"""INSERT INTO {t.disputes} (tenant_id, dispute_id, invoice_id, customer_id,
                        currency, amount_minor, opened_on, resolved_on, outcome)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[]),
                        CAST(:c2 AS uuid[]), CAST(:c3 AS text[]), CAST(:c4 AS text[]),
                        CAST(:c5 AS bigint[]), CAST(:c6 AS date[]), CAST(:c7 AS date[]),
                        CAST(:c8 AS text[]))
                    ON CONFLICT (tenant_id, dispute_id) DO UPDATE SET
                        resolved_on = EXCLUDED.resolved_on, outcome = EXCLUDED.outcome""",
                d_rows,
            )
        if self.d_payments:
            p_rows = []
            for k in sorted(self.d_payments):
                p = self.payments[k]
                p_rows.append(
                    (
                        *k,
                        p.customer_id,
                        p.currency,
                        p.amount,
                        p.method,
                        p.received_on,
                        p.source,
                        p.stream_version,
                        p.reference,
                    )
                )
            _stage(
                writes,
                f"""INSERT INTO {t.payments} (tenant_id, payment_id, customer_id, currency,
                        amount_minor, method, received_on, source, stream_version, reference)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[]),
                        CAST(:c2 AS text[]), CAST(:c3 AS text[]), CAST(:c4 AS bigint[]),
                        CAST(:c5 AS text[]), CAST(:c6 AS date[]), CAST(:c7 AS text[]),
                        CAST(:c8 AS int[]), CAST(:c9 AS text[]))
                    ON CONFLICT (tenant_id, payment_id) DO UPDATE SET
                        stream_version = EXCLUDED.stream_version""",
                p_rows,
            )
        if self.d_allocations:
            a_rows = [(*k, *self.allocations[k]) for k in sorted(self.d_allocations)]
            _stage(
                writes,
                f"""INSERT INTO {t.allocations} (tenant_id, allocation_id, payment_id, invoice_id,
                        customer_id, currency, amount_minor, allocated_on, rule, unallocated_on)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[]),
                        CAST(:c2 AS uuid[]), CAST(:c3 AS uuid[]), CAST(:c4 AS text[]),
                        CAST(:c5 AS text[]), CAST(:c6 AS bigint[]), CAST(:c7 AS date[]),
                        CAST(:c8 AS text[]), CAST(:c9 AS date[]))
                    ON CONFLICT (tenant_id, allocation_id) DO UPDATE SET
                        unallocated_on = EXCLUDED.unallocated_on""",
                a_rows,
            )
        if self.new_returns:
            _stage(
                writes,
                f"""INSERT INTO {t.payment_returns} (tenant_id, event_id, payment_id, customer_id,
                        kind, currency, amount_minor, returned_on)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[]),
                        CAST(:c2 AS uuid[]), CAST(:c3 AS text[]), CAST(:c4 AS text[]),
                        CAST(:c5 AS text[]), CAST(:c6 AS bigint[]), CAST(:c7 AS date[]))""",
                self.new_returns,
            )
        if self.d_items:
            touched = sorted(self.d_items)
            _stage(
                writes,
                f"""DELETE FROM {t.open_items} o
                    USING unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[])) AS k(t, i)
                    WHERE o.tenant_id = k.t AND o.invoice_id = k.i""",
                touched,
            )
            item_rows = [
                (
                    *k,
                    n,
                    p.customer_id,
                    p.currency,
                    p.issue_date,
                    p.due_date,
                    p.undisputed,
                    p.disputed,
                )
                for k in touched
                for n, p in enumerate(self.invoices[k].items)
            ]
            if item_rows:
                _stage(
                    writes,
                    f"""INSERT INTO {t.open_items} (tenant_id, invoice_id, seq, customer_id,
                            currency, issue_date, due_date, undisputed_minor, disputed_minor)
                        SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS uuid[]),
                            CAST(:c2 AS int[]), CAST(:c3 AS text[]), CAST(:c4 AS text[]),
                            CAST(:c5 AS date[]), CAST(:c6 AS date[]), CAST(:c7 AS bigint[]),
                            CAST(:c8 AS bigint[]))""",
                    item_rows,
                )
        if self.d_totals:
            t_rows = [(*k, *self.totals[k]) for k in sorted(self.d_totals)]
            _stage(
                writes,
                f"""INSERT INTO {t.open_totals} (tenant_id, currency, due_date, issue_date,
                        undisputed_minor, disputed_minor, invoices)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS text[]),
                        CAST(:c2 AS date[]), CAST(:c3 AS date[]), CAST(:c4 AS bigint[]),
                        CAST(:c5 AS bigint[]), CAST(:c6 AS int[]))
                    ON CONFLICT (tenant_id, currency, due_date, issue_date) DO UPDATE SET
                        undisputed_minor = EXCLUDED.undisputed_minor,
                        disputed_minor = EXCLUDED.disputed_minor,
                        invoices = EXCLUDED.invoices""",
                t_rows,
            )
        if self.d_horizons:
            h_rows = [(k, *self.horizons[k]) for k in sorted(self.d_horizons)]
            _stage(
                writes,
                f"""INSERT INTO {t.aging_horizons} (tenant_id, latest_on, complete)
                    SELECT * FROM unnest(CAST(:c0 AS text[]), CAST(:c1 AS date[]),
                        CAST(:c2 AS boolean[]))
                    ON CONFLICT (tenant_id) DO UPDATE SET latest_on = EXCLUDED.latest_on""",
                h_rows,
            )
        self._clear_dirty()
        return writes


Write = tuple[str, dict[str, list[Any]]]  # SQL with one array parameter per column


def _stage(writes: list[Write], sql: str, rows: list[tuple[Any, ...]]) -> None:
    """`sql` with one array parameter per column (`:c0`, `:c1`, ...) holding every row."""
    columns = list(zip(*rows, strict=True))
    writes.append((sql, {f"c{n}": list(values) for n, values in enumerate(columns)}))


async def write(session: AsyncSession, writes: list[Write]) -> None:
    for sql, parameters in writes:
        await session.execute(text(sql), parameters)


_INVOICE_CHANGES: dict[str, Any] = {
    inv.PaymentApplied.event_type: BatchProjector._payment_applied,
    inv.PaymentUnapplied.event_type: BatchProjector._payment_unapplied,
    inv.CreditNoteIssued.event_type: BatchProjector._credit_note,
    inv.LateFeeCharged.event_type: BatchProjector._late_fee,
    inv.InvoiceWrittenOff.event_type: BatchProjector._written_off,
    inv.InvoiceVoided.event_type: BatchProjector._voided,
    inv.InvoicePaid.event_type: BatchProjector._paid,
    inv.InvoiceReopened.event_type: BatchProjector._reopened,
    inv.InvoiceDueDateChanged.event_type: BatchProjector._due_date_changed,
    inv.DisputeOpened.event_type: BatchProjector._dispute_opened,
    inv.DisputeResolved.event_type: BatchProjector._dispute_resolved,
}
_CUSTOMER_TYPES = frozenset((inv.CustomerRegistered.event_type, inv.CustomerUpdated.event_type))
_ISSUED = inv.InvoiceIssued.event_type
_RECEIVED = pay.PaymentReceived.event_type
_PAYMENT_CHANGES: dict[str, Any] = {
    pay.PaymentAllocated.event_type: BatchProjector._allocated,
    pay.PaymentUnallocated.event_type: BatchProjector._unallocated,
    pay.PaymentRefunded.event_type: BatchProjector._refunded,
    pay.PaymentReversed.event_type: BatchProjector._reversed,
}
