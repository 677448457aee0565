"""The mailer: sends queued reminder e-mails at most once, and says so when it cannot know.

A message moves pending -> sending -> sent | failed | cancelled. Claiming commits `sending`
with a lease *before* the SMTP conversation; the outcome is committed after it. A worker that
dies in between (crash, kill -9, deploy) leaves a `sending` row whose lease runs out: it is
then recorded as ReminderFailed with `outcome_unknown` and never re-sent, because the customer
may already have it. No double e-mails; nothing silently lost either (a person sees it).
Transient SMTP failures go back to pending with a growing delay; permanent ones fail at once.
Claims use SKIP LOCKED, so several mailers share the queue without sending one message twice.

At claim time the message is rebuilt from the current facts: invoices paid, credited or
disputed since it was scheduled drop out, and a message with nothing left is cancelled. Quiet
hours (in the tenant's time zone) move `not_before` to the end of the window.

Every e-mail carries the customer's signed portal link (`pay_link` in the templates), issued at
claim time; its `link_id` is committed with the claim, before the e-mail can exist, so ops can
revoke it. A retry keeps the link id (a new token, the same revocable id). The token itself is
never stored or logged: it is in the e-mail and nowhere else.

Statements (`kind = 'statement'`) take the same path; their PDF and CSV are fetched from the
reporting service just before sending. A failed fetch is retried like a transient SMTP failure,
and a statement never goes out without both documents.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dunning.adapters import SCHEMA
from services.dunning.adapters.email import (
    InvoiceLine,
    PermanentSendError,
    ReminderContent,
    RenderedEmail,
    SmtpSender,
    StatementAttachment,
    StatementContent,
    TransientSendError,
    build_message,
    render,
    render_statement,
)
from services.dunning.adapters.reporting import StatementClient, StatementUnavailable
from services.dunning.application.cases import case_stream, load_case, now, save_case
from services.dunning.domain.policy import next_send_time
from shared.contracts.dunning import (
    MessageKind,
    ReminderCancelled,
    ReminderFailed,
    ReminderSent,
)
from shared.db import json_column
from shared.events.registry import EventPayload
from shared.eventstore.store import AppendContext, retry_on_conflict
from shared.money import Money
from shared.portal_links import PortalLinkSettings, issue_link, link_url

log = logging.getLogger(__name__)
ACTOR = "system:dunning-mailer"


@dataclasses.dataclass(frozen=True)
class MailerConfig:
    seller_name: str = "Ledgerline Demo Seller"
    from_address: str = "billing@ledgerline.invalid"
    reply_to: str | None = None
    portal: PortalLinkSettings = dataclasses.field(default_factory=PortalLinkSettings)
    timezone: str = "UTC"
    quiet_start: time = time(20, 0)
    quiet_end: time = time(8, 0)
    lease_seconds: float = 120.0
    max_attempts: int = 5
    retry_base_seconds: float = 60.0
    batch_size: int = 20


@dataclasses.dataclass(frozen=True)
class Claimed:
    tenant_id: str
    customer_id: str
    message_id: uuid.UUID
    content: ReminderContent | StatementContent
    attempts: int

    @property
    def kind(self) -> MessageKind:
        return "statement" if isinstance(self.content, StatementContent) else "reminder"


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: str,
    customer_id: str,
    event: ReminderSent | ReminderFailed,
    status_sql: str,
    params: dict[str, Any],
) -> None:
    """Append the outcome to the case and update the outbox row, in one transaction."""

    async def attempt() -> None:
        async with sessions() as session, session.begin():
            ctx = await _outcome_context(session, tenant_id, customer_id, event.message_id)
            state, version = await load_case(session, tenant_id, customer_id)
            await save_case(session, state, version, [event], ctx)
            await session.execute(text(status_sql), params)

    await retry_on_conflict(attempt)


async def _outcome_context(
    session: AsyncSession, tenant_id: str, customer_id: str, message_id: uuid.UUID
) -> AppendContext:
    """A reminder's outcome belongs to the run that scheduled it: the same correlation id, and
    caused by its ReminderScheduled, so `ar events trace` shows scheduling and delivery as one."""
    scheduled = (
        await session.execute(
            text(
                f"""SELECT event_id, correlation_id FROM {SCHEMA}.events
                    WHERE stream_id = :stream AND tenant_id = :tenant
                      AND event_type = 'ReminderScheduled' AND payload->>'message_id' = :message
                    ORDER BY stream_version DESC LIMIT 1"""
            ),
            {
                "stream": case_stream(tenant_id, customer_id),
                "tenant": tenant_id,
                "message": str(message_id),
            },
        )
    ).first()
    return AppendContext(
        tenant_id=tenant_id,
        actor=ACTOR,
        customer_id=customer_id,
        correlation_id=scheduled.correlation_id if scheduled else None,
        causation_id=scheduled.event_id if scheduled else None,
    )


async def recover_stale(
    sessions: async_sessionmaker[AsyncSession], at: datetime, tenant_id: str | None = None
) -> int:
    """`sending` rows whose worker died: outcome unknown, recorded, never re-sent."""
    async with sessions() as session, session.begin():
        rows = (
            await session.execute(
                text(
                    f"""SELECT tenant_id, customer_id, message_id, kind
                        FROM {SCHEMA}.outbox_messages
                        WHERE status = 'sending' AND lease_until < :at
                          AND (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)
                        FOR UPDATE SKIP LOCKED LIMIT 100"""
                ),
                {"at": at, "tenant": tenant_id},
            )
        ).all()
    for r in rows:
        event = ReminderFailed(
            message_id=r.message_id,
            reason="the mailer stopped during delivery; it may have been sent, so it is not "
            "sent again",
            failed_at=at,
            outcome_unknown=True,
            kind=r.kind,
        )
        await _record(
            sessions,
            r.tenant_id,
            r.customer_id,
            event,
            f"""UPDATE {SCHEMA}.outbox_messages SET status = 'failed',
                    last_error = 'outcome unknown: worker stopped during delivery'
                WHERE tenant_id = :t AND message_id = :m AND status = 'sending'""",
            {"t": r.tenant_id, "m": r.message_id},
        )
    return len(rows)


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    config: MailerConfig,
    at: datetime,
    tenant_id: str | None = None,
    *,
    statements: bool = True,
) -> list[Claimed]:
    """Claim due messages (statements only with ``statements``: a mailer that cannot fetch
    them leaves them to one that can) and issue each its portal link."""
    claimed: list[Claimed] = []
    async with sessions() as session, session.begin():
        rows = (
            await session.execute(
                text(
                    f"""SELECT tenant_id, customer_id, message_id, content, attempts, kind,
                               portal_link_id
                        FROM {SCHEMA}.outbox_messages
                        WHERE status = 'pending' AND not_before <= :at
                          AND (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)
                          AND (CAST(:statements AS boolean) OR kind <> 'statement')
                        ORDER BY not_before FOR UPDATE SKIP LOCKED LIMIT :n"""
                ),
                {"at": at, "n": config.batch_size, "tenant": tenant_id, "statements": statements},
            )
        ).all()
        for r in rows:
            send_at = next_send_time(at, config.timezone, config.quiet_start, config.quiet_end)
            if send_at > at:
                await _set(session, r, "pending", not_before=send_at)
                continue
            # A retry keeps the link id: whichever attempt reached the customer, it is revocable.
            link, token = issue_link(
                config.portal, r.tenant_id, r.customer_id, now=at, link_id=r.portal_link_id
            )
            content, problem = await _content(
                session, r, config, at, link_url(config.portal, token)
            )
            if content is None:
                await _cancel(session, r, problem, at)
                continue
            await _set(
                session,
                r,
                "sending",
                lease_until=at + timedelta(seconds=config.lease_seconds),
                attempts=r.attempts + 1,
                portal_link_id=link.link_id,
                portal_link_expires_at=link.expires_at,
            )
            claimed.append(
                Claimed(r.tenant_id, r.customer_id, r.message_id, content, r.attempts + 1)
            )
    return claimed


async def _set(session: AsyncSession, row: Any, status: str, **columns: Any) -> None:
    sets = ", ".join(["status = :status", *(f"{k} = :{k}" for k in columns)])
    await session.execute(
        text(
            f"""UPDATE {SCHEMA}.outbox_messages SET {sets}
                WHERE tenant_id = :t AND message_id = :m"""
        ),
        {"t": row.tenant_id, "m": row.message_id, "status": status, **columns},
    )


async def _cancel(session: AsyncSession, row: Any, reason: str, at: datetime) -> None:
    """Nothing left to say (or nobody to say it to): recorded in the claiming transaction."""
    failed = reason.startswith("no e-mail")
    event: EventPayload = (
        ReminderFailed(message_id=row.message_id, reason=reason, failed_at=at, kind=row.kind)
        if failed
        else ReminderCancelled(
            message_id=row.message_id, reason=reason, cancelled_at=at, kind=row.kind
        )
    )
    ctx = await _outcome_context(session, row.tenant_id, row.customer_id, row.message_id)
    state, version = await load_case(session, row.tenant_id, row.customer_id)
    await save_case(session, state, version, [event], ctx)
    await _set(session, row, "failed" if failed else "cancelled", last_error=reason)


async def _content(
    session: AsyncSession, row: Any, config: MailerConfig, at: datetime, portal_link: str
) -> tuple[ReminderContent | StatementContent | None, str]:
    raw = json_column(row.content)
    customer = (
        await session.execute(
            text(
                f"""SELECT name, email, statement_frequency FROM {SCHEMA}.customers
                    WHERE tenant_id = :t AND customer_id = :c"""
            ),
            {"t": row.tenant_id, "c": row.customer_id},
        )
    ).one_or_none()
    if customer is None or not customer.email:
        return None, "no e-mail address known for the customer"
    if row.kind == "statement":
        if customer.statement_frequency != raw["frequency"]:
            return None, (
                f"the customer's statements are now {customer.statement_frequency!r}, "
                f"not {raw['frequency']!r}"
            )
        return (
            StatementContent(
                message_id=row.message_id,
                customer_name=customer.name or row.customer_id,
                to=(customer.email,),
                seller_name=config.seller_name,
                from_address=config.from_address,
                reply_to=config.reply_to,
                frequency=raw["frequency"],
                period_start=date.fromisoformat(raw["from_date"]),
                period_end=date.fromisoformat(raw["to_date"]),
                pay_link=portal_link,
                sent_on=at.date(),
            ),
            "",
        )
    invoices = await session.execute(
        text(
            f"""SELECT number, issue_date, due_date, currency, open_minor, disputed_minor
                FROM {SCHEMA}.invoices
                WHERE tenant_id = :t AND invoice_id = ANY(:ids) AND status = 'open'
                ORDER BY due_date, number"""
        ),
        {"t": row.tenant_id, "ids": [uuid.UUID(i) for i in raw["invoice_ids"]]},
    )
    lines = tuple(
        InvoiceLine(
            number=i.number,
            issue_date=i.issue_date,
            due_date=i.due_date,
            amount_due=Money.of_minor(i.open_minor - i.disputed_minor, i.currency.strip()),
            days_overdue=(at.date() - i.due_date).days,
        )
        for i in invoices
        if i.open_minor - i.disputed_minor > 0
    )
    if not lines:
        return None, "nothing due any more (paid, credited or disputed since it was scheduled)"
    return (
        ReminderContent(
            message_id=row.message_id,
            template=raw["template"],
            customer_name=customer.name or row.customer_id,
            to=(customer.email,),
            seller_name=config.seller_name,
            from_address=config.from_address,
            reply_to=config.reply_to,
            invoices=lines,
            pay_link=portal_link,
            sent_on=at.date(),
        ),
        "",
    )


async def _statement_documents(
    statements: StatementClient, message: Claimed, content: StatementContent
) -> StatementContent:
    """The statement with its PDF and CSV attached; :class:`StatementUnavailable` otherwise."""
    attachments = []
    stem = "statement-{}-{}-{}".format(
        "".join(c if c.isalnum() or c in "-." else "_" for c in message.customer_id),
        content.period_start.isoformat(),
        content.period_end.isoformat(),
    )
    for fmt in ("pdf", "csv"):
        document = await statements.fetch(
            message.tenant_id,
            message.customer_id,
            content.period_start,
            content.period_end,
            fmt,
        )
        attachments.append(
            StatementAttachment(f"{stem}.{fmt}", document.content_type, document.data)
        )
    return dataclasses.replace(content, attachments=tuple(attachments))


async def _retry(
    sessions: async_sessionmaker[AsyncSession],
    message: Claimed,
    config: MailerConfig,
    error: str,
) -> str:
    """Back to pending with a doubling delay, or failed once the attempts are used up."""
    if message.attempts >= config.max_attempts:
        return await _failed(
            sessions, message, f"gave up after {message.attempts} attempts: {error}"
        )
    delay = config.retry_base_seconds * 2 ** (message.attempts - 1)
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                f"""UPDATE {SCHEMA}.outbox_messages SET status = 'pending',
                        not_before = :nb, last_error = :e, lease_until = NULL
                    WHERE tenant_id = :t AND message_id = :m"""
            ),
            {
                "t": message.tenant_id,
                "m": message.message_id,
                "nb": now() + timedelta(seconds=delay),
                "e": error[:500],
            },
        )
    return "retry"


async def deliver(
    sessions: async_sessionmaker[AsyncSession],
    sender: SmtpSender,
    message: Claimed,
    config: MailerConfig,
    statements: StatementClient | None = None,
) -> str:
    """Send one claimed message and record the outcome: "sent", "retry" or "failed"."""
    params = {"t": message.tenant_id, "m": message.message_id}
    content = message.content
    rendered: RenderedEmail
    try:
        if isinstance(content, StatementContent):
            rendered = render_statement(content)  # before fetching: a bad link fails at once
            if statements is None:
                raise StatementUnavailable("no reporting client configured", transient=True)
            content = await _statement_documents(statements, message, content)
        else:
            rendered = render(content)
        email = build_message(content, rendered)
    except StatementUnavailable as exc:
        if exc.transient:
            return await _retry(sessions, message, config, exc.reason)
        return await _failed(sessions, message, f"statement refused: {exc.reason}")
    except ValueError as exc:  # a bad address or template: no retry will fix it
        return await _failed(sessions, message, f"cannot build the message: {exc}")
    try:
        await sender.send(email)
    except TransientSendError as exc:
        return await _retry(sessions, message, config, str(exc))
    except PermanentSendError as exc:
        return await _failed(sessions, message, f"refused: {exc}")
    event = ReminderSent(
        message_id=message.message_id,
        to=list(message.content.to),
        sent_at=now(),
        kind=message.kind,
    )
    await _record(
        sessions,
        message.tenant_id,
        message.customer_id,
        event,
        f"""UPDATE {SCHEMA}.outbox_messages SET status = 'sent', sent_at = now(),
                lease_until = NULL
            WHERE tenant_id = :t AND message_id = :m""",
        params,
    )
    return "sent"


async def _failed(sessions: async_sessionmaker[AsyncSession], message: Claimed, reason: str) -> str:
    event = ReminderFailed(
        message_id=message.message_id, reason=reason[:1000], failed_at=now(), kind=message.kind
    )
    await _record(
        sessions,
        message.tenant_id,
        message.customer_id,
        event,
        f"""UPDATE {SCHEMA}.outbox_messages SET status = 'failed', last_error = :e,
                lease_until = NULL
            WHERE tenant_id = :t AND message_id = :m""",
        {"t": message.tenant_id, "m": message.message_id, "e": reason[:500]},
    )
    return "failed"


async def run_once(
    sessions: async_sessionmaker[AsyncSession],
    sender: SmtpSender,
    config: MailerConfig,
    tenant_id: str | None = None,
    *,
    statements: StatementClient | None = None,
) -> dict[str, int]:
    """One pass: record crashed deliveries, then claim and send what is due (one tenant's
    queue with `tenant_id`). Statements are claimed only with a `statements` client."""
    at = now()
    recovered = await recover_stale(sessions, at, tenant_id)
    outcomes = {"recovered": recovered, "sent": 0, "retry": 0, "failed": 0}
    claimed = await claim(sessions, config, at, tenant_id, statements=statements is not None)
    for message in claimed:
        outcomes[await deliver(sessions, sender, message, config, statements)] += 1
    return outcomes
