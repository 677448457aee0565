"""The scheduler and mailer as service workers.

The scheduler runs each customer with open invoices near or past due, one transaction per
customer. Several instances can run: a customer being run elsewhere is skipped (a transaction
advisory lock), and even without the lock the case stream's version check lets only one run
record a step.

Each run also queues the statements of account customers asked for (`statement_frequency`):
one outbox row per customer and closed period, whose unique period key makes every later run
in the same period (here or in another instance) a no-op.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dunning.adapters import SCHEMA
from services.dunning.adapters.email import SmtpSender
from services.dunning.adapters.reporting import StatementClient
from services.dunning.application import mailer
from services.dunning.application.cases import SYSTEM, now, run_customer
from services.dunning.domain.statements import FREQUENCIES, due_period
from shared.eventstore.store import AppendContext, retry_on_conflict
from shared.web.runtime import ServiceRuntime, every

#: Earliest step offset a policy may have (DunningStep.offset_days >= -60).
HORIZON_DAYS = 60


async def due_customers(
    session: AsyncSession, today: date, tenant_id: str | None = None
) -> list[tuple[str, str]]:
    rows = await session.execute(
        text(
            f"""SELECT DISTINCT tenant_id, customer_id FROM {SCHEMA}.invoices
                WHERE status = 'open' AND open_minor > 0 AND due_date <= :horizon
                  AND (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)
                ORDER BY tenant_id, customer_id"""
        ),
        {"horizon": today + timedelta(days=HORIZON_DAYS), "tenant": tenant_id},
    )
    return [(r.tenant_id, r.customer_id) for r in rows]


async def run_all(
    sessions: async_sessionmaker[AsyncSession], today: date, tenant_id: str | None = None
) -> int:
    """Run every due customer once (of one tenant with `tenant_id`); returns how many were
    run here (a customer another instance is running is skipped)."""
    async with sessions() as session:
        customers = await due_customers(session, today, tenant_id)
    ran = 0
    for tenant_id, customer_id in customers:
        ctx = AppendContext(tenant_id=tenant_id, actor=SYSTEM, customer_id=customer_id)

        async def once(customer: str = customer_id, c: AppendContext = ctx) -> bool:
            async with sessions() as session, session.begin():
                locked = (
                    await session.execute(
                        text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"),
                        {"k": f"{SCHEMA}:case:{c.tenant_id}:{customer}"},
                    )
                ).scalar_one()
                if not locked:
                    return False
                await run_customer(session, c, customer, today)
                await session.execute(
                    text(
                        f"""INSERT INTO {SCHEMA}.customers (tenant_id, customer_id, last_run_at)
                            VALUES (:t, :c, now())
                            ON CONFLICT (tenant_id, customer_id) DO UPDATE
                            SET last_run_at = now()"""
                    ),
                    {"t": c.tenant_id, "c": customer},
                )
                return True

        ran += await retry_on_conflict(once)
    return ran


async def queue_statements(
    sessions: async_sessionmaker[AsyncSession], today: date, tenant_id: str | None = None
) -> int:
    """Queue the statement due on ``today`` (a local date) for every customer who asked for
    them and has none for that period yet; returns how many were queued. The mailer finds the
    address (or records that there is none) and fetches the documents when it sends."""
    queued = 0
    async with sessions() as session, session.begin():
        for frequency in FREQUENCIES:
            period = due_period(today, frequency)
            if period is None:
                continue
            content: dict[str, object] = {
                "template": "statement",
                "frequency": frequency,
                "from_date": period.start.isoformat(),
                "to_date": period.end.isoformat(),
                "invoice_ids": [],
            }
            rows = await session.execute(
                text(
                    f"""INSERT INTO {SCHEMA}.outbox_messages (tenant_id, message_id,
                            customer_id, channel, status, content, kind, period_key)
                        SELECT tenant_id, gen_random_uuid(), customer_id, 'email', 'pending',
                               CAST(:content AS jsonb), 'statement', :key
                        FROM {SCHEMA}.customers
                        WHERE statement_frequency = :f
                          AND (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)
                        ON CONFLICT (tenant_id, customer_id, period_key)
                            WHERE period_key IS NOT NULL DO NOTHING
                        RETURNING message_id"""
                ),
                {
                    "content": json.dumps(content),
                    "key": period.key,
                    "f": frequency,
                    "tenant": tenant_id,
                },
            )
            queued += len(rows.all())
    return queued


def local_today(tz: str) -> date:
    """Today where the customers are: a week starts on their Monday, not UTC's."""
    return now().astimezone(ZoneInfo(tz)).date()


class DunningScheduler:
    name = "dunning scheduler"

    def __init__(self, interval_seconds: float, timezone: str = "UTC") -> None:
        self.interval_seconds = interval_seconds
        self.timezone = timezone

    async def run(self, runtime: ServiceRuntime) -> None:
        async def job() -> None:
            try:
                await run_all(runtime.sessions, now().date())
            finally:  # a failing dunning run does not hold up the statements
                await queue_statements(runtime.sessions, local_today(self.timezone))

        await every(runtime, self.interval_seconds, job, self.name)


class Mailer:
    name = "dunning mailer"

    def __init__(
        self,
        interval_seconds: float,
        sender: SmtpSender,
        config: mailer.MailerConfig,
        statements: StatementClient | None = None,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.sender = sender
        self.config = config
        self.statements = statements

    async def run(self, runtime: ServiceRuntime) -> None:
        async def job() -> None:
            await mailer.run_once(
                runtime.sessions, self.sender, self.config, statements=self.statements
            )

        try:
            await every(runtime, self.interval_seconds, job, self.name)
        finally:
            if self.statements is not None:
                await self.statements.aclose()
