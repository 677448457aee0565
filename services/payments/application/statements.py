"""Bank statements: import (de-duplicated), match each incoming line, review the rest.

A line is de-duplicated by a fingerprint: the bank's own entry id when the file has one, else
its date, amount, reference and counterparty plus its position among identical lines of the
same file. Re-importing a file, or an overlapping one, adds only lines not seen before. Imports
of one account are serialised by an advisory lock, so two concurrent imports of the same file
cannot both add a line.

Matching an incoming line: first to a payment recorded earlier that the bank now confirms (same
amount and currency, a bank method, received within a week before to three days after the
booking); only if there is none, to open invoices with the matching engine, creating the payment
from the line. Recording a second payment for money already recorded would double the cash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.payments.adapters import SCHEMA
from services.payments.adapters import invoices as balances
from services.payments.adapters.statements import ParsedLine, ParsedStatement
from services.payments.application import matching
from services.payments.application import payments as payment_app
from services.payments.domain import payment as payments
from services.payments.domain.cards import mask_card_numbers
from services.payments.domain.matching import MatchingPolicy, Remittance, find_matches
from services.payments.domain.payment import AllocationRequest
from shared.contracts.payments import (
    BankStatementImported,
    MethodDetails,
    StatementLine,
    StatementLineIgnored,
    StatementLineMatched,
)
from shared.db import json_column
from shared.errors import NotFound, StateConflict, ValidationFailed
from shared.events.registry import EventPayload, build_event, registry
from shared.eventstore.store import AppendContext
from shared.money import Money

BANK_METHODS = ("bank_transfer", "ach", "direct_debit", "cheque", "cash")
CONFIRM_WINDOW = (timedelta(days=7), timedelta(days=3))  # before, after the booking date


def statement_stream(statement_id: uuid.UUID) -> str:
    return f"bank_statement-{statement_id}"


def fingerprint(account: str | None, line: ParsedLine, occurrence: int) -> str:
    if line.bank_reference:
        raw = f"{account or ''}|ref|{line.bank_reference}"
    else:
        raw = "|".join(
            [
                account or "",
                line.booking_date.isoformat(),
                str(line.amount.amount),
                line.amount.currency,
                line.reference,
                line.counterparty_name or "",
                line.counterparty_account or "",
                str(occurrence),
            ]
        )
    return hashlib.sha256(raw.encode()).hexdigest()


async def import_statement(
    session: AsyncSession,
    ctx: AppendContext,
    parsed: ParsedStatement,
    policy: MatchingPolicy,
    today: date,
) -> dict[str, Any]:
    ctx = AppendContext(**{**ctx.__dict__, "customer_id": None})  # keyed by the statement
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
        {"k": f"{SCHEMA}:statement:{ctx.tenant_id}:{parsed.account or ''}"},
    )
    seen: Counter[tuple[Any, ...]] = Counter()
    candidates: list[tuple[str, ParsedLine]] = []
    for raw in parsed.lines:
        line = _masked(raw)
        key = (line.booking_date, line.amount, line.reference, line.counterparty_name)
        candidates.append((fingerprint(parsed.account, line, seen[key]), line))
        seen[key] += 1
    known = await _known_fingerprints(session, ctx.tenant_id, [f for f, _ in candidates])
    new_lines = [
        StatementLine(
            line_id=uuid.uuid4(),
            booking_date=line.booking_date,
            value_date=line.value_date,
            amount=line.amount,
            reference=line.reference[:1000],
            counterparty_name=line.counterparty_name,
            counterparty_account=line.counterparty_account,
            bank_reference=line.bank_reference,
            fingerprint=fp,
        )
        for fp, line in candidates
        if fp not in known
    ]
    statement_id = uuid.uuid4()
    imported = build_event(
        BankStatementImported,
        statement_id=statement_id,
        format=parsed.format,
        account=parsed.account,
        statement_ref=parsed.statement_ref,
        currency=parsed.currency,
        opening_balance=parsed.opening_balance,
        closing_balance=parsed.closing_balance,
        lines=new_lines,
        duplicates_skipped=len(candidates) - len(new_lines),
        imported_on=today,
    )
    await payment_app.store.append(
        session, statement_stream(statement_id), 0, [registry.new_event(imported)], ctx
    )
    for new_line in new_lines:
        await _insert_line(session, ctx.tenant_id, statement_id, new_line)
    summary: dict[str, Any] = {
        "statement_id": str(statement_id),
        "format": parsed.format,
        "account": parsed.account,
        "currency": parsed.currency,
        "lines_imported": len(new_lines),
        "duplicates_skipped": imported.duplicates_skipped,
        "matched": 0,
        "proposed": 0,
        "unmatched": 0,
        "outgoing": sum(1 for n in new_lines if not n.amount.is_positive()),
    }
    for new_line in new_lines:
        if new_line.amount.is_positive():
            outcome = await match_line(session, ctx, new_line.line_id, policy, today)
            summary[outcome] += 1
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.statements (tenant_id, statement_id, document)
                VALUES (:t, :s, CAST(:d AS jsonb))"""
        ),
        {"t": ctx.tenant_id, "s": statement_id, "d": json.dumps(summary)},
    )
    return summary


def _masked(line: ParsedLine) -> ParsedLine:
    """Payers paste card numbers into references; none is stored, even hashed."""
    return dataclasses.replace(
        line,
        reference=mask_card_numbers(line.reference),
        counterparty_name=mask_card_numbers(line.counterparty_name)
        if line.counterparty_name
        else None,
    )


async def _known_fingerprints(
    session: AsyncSession, tenant_id: str, fingerprints: list[str]
) -> set[str]:
    rows = await session.execute(
        text(
            f"""SELECT fingerprint FROM {SCHEMA}.statement_lines
                WHERE tenant_id = :t AND fingerprint = ANY(:f)"""
        ),
        {"t": tenant_id, "f": fingerprints},
    )
    return {r.fingerprint for r in rows}


async def _insert_line(
    session: AsyncSession, tenant_id: str, statement_id: uuid.UUID, line: StatementLine
) -> None:
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.statement_lines (tenant_id, line_id, statement_id,
                    fingerprint, booking_date, amount_minor, currency, reference, counterparty,
                    bank_reference, status)
                VALUES (:t, :l, :s, :f, :d, :a, :c, :r, :n, :b, :st)"""
        ),
        {
            "t": tenant_id,
            "l": line.line_id,
            "s": statement_id,
            "f": line.fingerprint,
            "d": line.booking_date,
            "a": line.amount.amount,
            "c": line.amount.currency,
            "r": line.reference,
            "n": line.counterparty_name,
            "b": line.bank_reference,
            "st": "unmatched" if line.amount.is_positive() else "outgoing",
        },
    )


async def _lock_line(session: AsyncSession, tenant_id: str, line_id: uuid.UUID) -> Any:
    row = (
        await session.execute(
            text(
                f"""SELECT * FROM {SCHEMA}.statement_lines
                    WHERE tenant_id = :t AND line_id = :l FOR UPDATE"""
            ),
            {"t": tenant_id, "l": line_id},
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"statement line {line_id} not found", {"line_id": str(line_id)})
    return row


def _line_amount(row: Any) -> Money:
    return Money.of_minor(row.amount_minor, row.currency.strip())


async def match_line(
    session: AsyncSession,
    ctx: AppendContext,
    line_id: uuid.UUID,
    policy: MatchingPolicy,
    today: date,
) -> str:
    """Match one incoming line automatically: "matched", "proposed" or "unmatched"."""
    row = await _lock_line(session, ctx.tenant_id, line_id)
    if row.status != "unmatched":
        return "matched" if row.status == "matched" else "unmatched"
    confirmed = await _recorded_payments_for(session, ctx.tenant_id, row)
    if len(confirmed) == 1:
        await _link(session, ctx, row, confirmed[0], "existing_payment", None, "auto")
        await matching.record_outcome(
            session, ctx.tenant_id, line_id, "statement_line", "auto_applied", None, today
        )
        return "matched"
    if len(confirmed) > 1:  # the bank confirms one of several: a person decides which
        await matching.record_outcome(
            session, ctx.tenant_id, line_id, "statement_line", "unmatched", None, today
        )
        return "unmatched"
    aliases = await matching.aliases_of(session, ctx.tenant_id)
    remittance = Remittance(
        amount=_line_amount(row),
        reference=row.reference,
        payer_name=row.counterparty,
        customer_id=None,
        received_on=row.booking_date,
    )
    invoices = await balances.open_invoices(
        session,
        ctx.tenant_id,
        remittance.amount.currency,
        customer_id=None,
        today=row.booking_date,  # discounts as of the day the money arrived
        numbers_in=row.reference,
    )
    matches = find_matches(remittance, invoices, aliases, policy)
    best = matches[0] if matches else None
    if best is not None and policy.auto_applies(best):
        await _pay_from_line(
            session,
            ctx,
            row,
            best.customer_id,
            matching.requests_for(best),
            best.rule,
            best.confidence,
            "auto",
        )
        await matching.record_outcome(
            session, ctx.tenant_id, line_id, "statement_line", "auto_applied", best, today
        )
        return "matched"
    outcome = "proposed" if matches else "unmatched"
    await matching.record_outcome(
        session, ctx.tenant_id, line_id, "statement_line", outcome, best, today
    )
    await matching.replace_proposals(session, ctx.tenant_id, matches, line_id=line_id)
    return outcome


async def _recorded_payments_for(
    session: AsyncSession, tenant_id: str, row: Any
) -> list[uuid.UUID]:
    before, after = CONFIRM_WINDOW
    rows = await session.execute(
        text(
            f"""SELECT p.payment_id FROM {SCHEMA}.payments p
                WHERE p.tenant_id = :t AND p.currency = :c AND p.amount_minor = :a
                  AND p.method = ANY(:methods) AND p.status NOT IN ('refunded', 'reversed')
                  AND p.received_on BETWEEN :lo AND :hi
                  AND p.document->>'source' <> 'statement'
                  AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.statement_lines l
                                  WHERE l.tenant_id = p.tenant_id AND l.payment_id = p.payment_id)
                ORDER BY p.received_on, p.payment_id LIMIT 5"""
        ),
        {
            "t": tenant_id,
            "c": row.currency.strip(),
            "a": row.amount_minor,
            "methods": list(BANK_METHODS),
            "lo": row.booking_date - before,
            "hi": row.booking_date + after,
        },
    )
    return [r.payment_id for r in rows]


async def _statement_version(session: AsyncSession, tenant_id: str, statement_id: uuid.UUID) -> int:
    return await payment_app.store.stream_version(
        session, statement_stream(statement_id), tenant_id=tenant_id
    )


async def _append_line_event(
    session: AsyncSession, ctx: AppendContext, statement_id: uuid.UUID, event: EventPayload
) -> None:
    version = await _statement_version(session, ctx.tenant_id, statement_id)
    await payment_app.store.append(
        session,
        statement_stream(statement_id),
        version,
        [registry.new_event(event)],
        AppendContext(**{**ctx.__dict__, "customer_id": None}),
    )


async def _link(
    session: AsyncSession,
    ctx: AppendContext,
    row: Any,
    payment_id: uuid.UUID,
    rule: str,
    confidence: Decimal | None,
    matched_by: str,
) -> None:
    state, _ = await payment_app.load_payment(session, ctx.tenant_id, payment_id)
    event = build_event(
        StatementLineMatched,
        statement_id=row.statement_id,
        line_id=row.line_id,
        payment_id=payment_id,
        customer_id=state.customer_id,
        rule=rule,
        confidence=None if confidence is None else str(confidence),
        matched_by=matched_by,
    )
    await _append_line_event(session, ctx, row.statement_id, event)
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.statement_lines SET status = 'matched', payment_id = :p,
                    customer_id = :c, rule = :r
                WHERE tenant_id = :t AND line_id = :l"""
        ),
        {"t": ctx.tenant_id, "l": row.line_id, "p": payment_id, "c": state.customer_id, "r": rule},
    )


async def _pay_from_line(
    session: AsyncSession,
    ctx: AppendContext,
    row: Any,
    customer_id: str,
    requests: list[AllocationRequest],
    rule: str,
    confidence: Decimal | None,
    matched_by: str,
) -> uuid.UUID:
    """Record the line's money as a bank-transfer payment of the customer, allocate, link."""
    payment_id = uuid.uuid4()
    received = payments.receive_payment(
        payment_id=payment_id,
        customer_id=customer_id,
        amount=_line_amount(row),
        method="bank_transfer",
        received_on=row.booking_date,
        reference=row.reference or None,
        details=MethodDetails(
            bank_reference=row.bank_reference[:200] if row.bank_reference else None,
            payer_name=row.counterparty[:200] if row.counterparty else None,
        ),
        source="statement",
        statement_line_id=row.line_id,
    )
    await payment_app.save_payment(session, None, 0, received, ctx.for_customer(customer_id))
    if requests:
        await payment_app.allocate(
            session, ctx.for_customer(customer_id), payment_id, requests, row.booking_date
        )
    await _link(session, ctx, row, payment_id, rule, confidence, matched_by)
    return payment_id


async def match_line_manually(
    session: AsyncSession,
    ctx: AppendContext,
    line_id: uuid.UUID,
    *,
    payment_id: uuid.UUID | None,
    customer_id: str | None,
    requests: list[AllocationRequest],
) -> dict[str, Any]:
    row = await _lock_line(session, ctx.tenant_id, line_id)
    _require_unmatched(row)
    if payment_id is not None:
        state, _ = await payment_app.load_payment(session, ctx.tenant_id, payment_id)
        if state.amount != _line_amount(row):
            raise ValidationFailed(
                f"payment {payment_id} is {state.amount}, the line {_line_amount(row)}",
                {"payment_id": str(payment_id)},
            )
        await _link(session, ctx, row, payment_id, "manual", None, "manual")
    else:
        assert customer_id is not None
        payment_id = await _pay_from_line(
            session, ctx, row, customer_id, requests, "manual", None, "manual"
        )
    await _close_proposals(session, ctx.tenant_id, line_id)
    return await line_view(session, ctx.tenant_id, line_id)


async def ignore_line(
    session: AsyncSession, ctx: AppendContext, line_id: uuid.UUID, reason: str
) -> dict[str, Any]:
    row = await _lock_line(session, ctx.tenant_id, line_id)
    _require_unmatched(row)
    event = build_event(
        StatementLineIgnored, statement_id=row.statement_id, line_id=line_id, reason=reason
    )
    await _append_line_event(session, ctx, row.statement_id, event)
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.statement_lines SET status = 'ignored'
                WHERE tenant_id = :t AND line_id = :l"""
        ),
        {"t": ctx.tenant_id, "l": line_id},
    )
    await _close_proposals(session, ctx.tenant_id, line_id)
    return await line_view(session, ctx.tenant_id, line_id)


async def accept_line_proposal(
    session: AsyncSession, ctx: AppendContext, proposal: Any
) -> dict[str, Any]:
    row = await _lock_line(session, ctx.tenant_id, proposal.line_id)
    _require_unmatched(row)
    requests = matching.proposal_requests(proposal)
    await _pay_from_line(
        session,
        ctx,
        row,
        proposal.customer_id,
        requests,
        proposal.rule,
        Decimal(proposal.confidence),
        "manual",
    )
    return await line_view(session, ctx.tenant_id, proposal.line_id)


def _require_unmatched(row: Any) -> None:
    if row.status != "unmatched":
        raise StateConflict(
            f"statement line {row.line_id} is {row.status}",
            {"line_id": str(row.line_id), "status": row.status},
        )


async def _close_proposals(session: AsyncSession, tenant_id: str, line_id: uuid.UUID) -> None:
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.match_proposals SET status = 'superseded', decided_at = now()
                WHERE tenant_id = :t AND line_id = :l AND status = 'pending'"""
        ),
        {"t": tenant_id, "l": line_id},
    )


_LINE_COLUMNS = """line_id, statement_id, booking_date, amount_minor, currency, reference,
    counterparty, bank_reference, status, payment_id, customer_id, rule"""


def _line_dict(r: Any) -> dict[str, Any]:
    return {
        "line_id": str(r.line_id),
        "statement_id": str(r.statement_id),
        "booking_date": r.booking_date.isoformat(),
        "amount": {"amount": r.amount_minor, "currency": r.currency.strip()},
        "reference": r.reference,
        "counterparty_name": r.counterparty,
        "bank_reference": r.bank_reference,
        "status": r.status,
        "payment_id": str(r.payment_id) if r.payment_id else None,
        "customer_id": r.customer_id,
        "rule": r.rule,
    }


async def line_view(session: AsyncSession, tenant_id: str, line_id: uuid.UUID) -> dict[str, Any]:
    row = (
        await session.execute(
            text(
                f"""SELECT {_LINE_COLUMNS} FROM {SCHEMA}.statement_lines
                    WHERE tenant_id = :t AND line_id = :l"""
            ),
            {"t": tenant_id, "l": line_id},
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"statement line {line_id} not found", {"line_id": str(line_id)})
    return _line_dict(row)


async def list_lines(
    session: AsyncSession,
    tenant_id: str,
    *,
    statement_id: uuid.UUID | None,
    status: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> dict[str, Any]:
    """Lines by booking date; `after` is the last line id of the previous page."""
    rows = (
        await session.execute(
            text(
                f"""SELECT {_LINE_COLUMNS} FROM {SCHEMA}.statement_lines
                    WHERE tenant_id = :t
                      AND (CAST(:s AS uuid) IS NULL OR statement_id = :s)
                      AND (CAST(:st AS text) IS NULL OR status = :st)
                      AND (CAST(:after AS uuid) IS NULL OR (booking_date, line_id) > (
                          SELECT booking_date, line_id FROM {SCHEMA}.statement_lines
                          WHERE tenant_id = :t AND line_id = :after))
                    ORDER BY booking_date, line_id LIMIT :n"""
            ),
            {"t": tenant_id, "s": statement_id, "st": status, "after": after, "n": limit + 1},
        )
    ).all()
    items = [_line_dict(r) for r in rows[:limit]]
    proposals = await _pending_for_lines(session, tenant_id, [r.line_id for r in rows[:limit]])
    for item in items:
        item["proposals"] = proposals.get(item["line_id"], [])
    return {
        "items": items,
        "next_cursor": items[-1]["line_id"] if len(rows) > limit else None,
    }


async def _pending_for_lines(
    session: AsyncSession, tenant_id: str, line_ids: list[uuid.UUID]
) -> dict[str, list[dict[str, Any]]]:
    rows = await session.execute(
        text(
            f"""SELECT proposal_id, line_id, customer_id, rule, confidence, explanation,
                       allocations
                FROM {SCHEMA}.match_proposals
                WHERE tenant_id = :t AND line_id = ANY(:l) AND status = 'pending'
                ORDER BY confidence DESC, created_at"""
        ),
        {"t": tenant_id, "l": line_ids},
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        found.setdefault(str(r.line_id), []).append(proposal_row_view(r))
    return found


def proposal_row_view(r: Any) -> dict[str, Any]:
    return {
        "proposal_id": str(r.proposal_id),
        "customer_id": r.customer_id,
        "rule": r.rule,
        "confidence": str(r.confidence),
        "explanation": r.explanation,
        "allocations": json_column(r.allocations),
    }
