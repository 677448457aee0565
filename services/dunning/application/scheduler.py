"""The scheduler and mailer as service workers.

The scheduler runs each customer with open invoices near or past due, one transaction per
customer. Several instances can run: a customer being run elsewhere is skipped (a transaction
advisory lock), and even without the lock the case stream's version check lets only one run
record a step. A customer already run today is run again only once something its run reads has
changed (`customers.ran_on`, `ran_inputs`, `ran_case_version`): the same facts on the same day
decide nothing new.

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


_DUE = f"""SELECT DISTINCT tenant_id, customer_id FROM {SCHEMA}.invoices
            WHERE status = 'open' AND open_minor > 0 AND due_date <= :horizon
              AND (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)"""

# What a run reads besides its case, as one text per customer (NULLs keep their place in a row's
# text; a customer without a row reads as the row's defaults). Only approved steps: the pending
# approvals a run itself records must not make it look changed.
_INPUTS = f"""md5(ROW(
    (SELECT string_agg(ROW(i.invoice_id, i.number, i.currency, i.status, i.issue_date,
                           i.due_date, i.open_minor, i.disputed_minor)::text, ','
                       ORDER BY i.invoice_id)
     FROM {SCHEMA}.invoices i
     WHERE i.tenant_id = d.tenant_id AND i.customer_id = d.customer_id AND i.status <> 'draft'),
    COALESCE((SELECT ROW(c.segment, c.paid_count, c.on_time_count, c.days_late_sum)::text
              FROM {SCHEMA}.customers c
              WHERE c.tenant_id = d.tenant_id AND c.customer_id = d.customer_id),
             ROW(NULL::text, 0, 0, 0)::text),
    (SELECT string_agg(ROW(p.scope, p.version)::text, ',' ORDER BY p.scope)
     FROM {SCHEMA}.policies p WHERE p.tenant_id = d.tenant_id),
    (SELECT string_agg(ROW(a.invoice_id, a.step_id)::text, ',' ORDER BY a.invoice_id, a.step_id)
     FROM {SCHEMA}.approvals a
     WHERE a.tenant_id = d.tenant_id AND a.customer_id = d.customer_id
       AND a.status = 'approved'))::text)"""


async def due_customers(
    session: AsyncSession, today: date, tenant_id: str | None = None
) -> list[tuple[str, str]]:
    rows = await session.execute(
        text(f"{_DUE} ORDER BY tenant_id, customer_id"),
        {"horizon": today + timedelta(days=HORIZON_DAYS), "tenant": tenant_id},
    )
    return [(r.tenant_id, r.customer_id) for r in rows]


async def customers_to_run(
    session: AsyncSession, today: date, tenant_id: str | None = None
) -> list[tuple[str, str, str]]:
    """The due customers not yet run `today` with the inputs and case they have now, each with
    its inputs' fingerprint: the same day, a run on the same facts decides nothing new."""
    rows = await session.execute(
        text(
            f"""WITH due AS ({_DUE}),
                inputs AS (SELECT d.tenant_id, d.customer_id, {_INPUTS} AS inputs FROM due d)
                SELECT n.tenant_id, n.customer_id, n.inputs
                FROM inputs n
                LEFT JOIN {SCHEMA}.customers c USING (tenant_id, customer_id)
                LEFT JOIN {SCHEMA}.cases k USING (tenant_id, customer_id)
                WHERE c.ran_on IS DISTINCT FROM :today
                   OR c.ran_inputs IS DISTINCT FROM n.inputs
                   OR c.ran_case_version IS DISTINCT FROM COALESCE(k.version, 0)
                ORDER BY n.tenant_id, n.customer_id"""
        ),
        {"horizon": today + timedelta(days=HORIZON_DAYS), "tenant": tenant_id, "today": today},
    )
    return [(r.tenant_id, r.customer_id, r.inputs) for r in rows]


async def run_all(
    sessions: async_sessionmaker[AsyncSession], today: date, tenant_id: str | None = None
) -> int:
    """Run every due customer once (of one tenant with `tenant_id`); returns how many were
    run here. Skipped: a customer another instance is running, and one already run `today`
    whose inputs and case have not changed since (a restart or the next interval would
    otherwise walk every due customer of every tenant again)."""
    async with sessions() as session:
        customers = await customers_to_run(session, today, tenant_id)
    ran = 0
    for tenant_id, customer_id, inputs in customers:
        ctx = AppendContext(tenant_id=tenant_id, actor=SYSTEM, customer_id=customer_id)

        async def once(
            customer: str = customer_id, c: AppendContext = ctx, read: str = inputs
        ) -> bool:
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
                # The inputs read before the run: a change committed since is seen next time.
                await session.execute(
                    text(
                        f"""INSERT INTO {SCHEMA}.customers (tenant_id, customer_id, last_run_at,
                                ran_on, ran_inputs, ran_case_version)
                            VALUES (:t, :c, now(), :today, :inputs,
                                    COALESCE((SELECT version FROM {SCHEMA}.cases
                                              WHERE tenant_id = :t AND customer_id = :c), 0))
                            ON CONFLICT (tenant_id, customer_id) DO UPDATE
                            SET last_run_at = now(), ran_on = EXCLUDED.ran_on,
                                ran_inputs = EXCLUDED.ran_inputs,
                                ran_case_version = EXCLUDED.ran_case_version"""
                    ),
                    {"t": c.tenant_id, "c": customer, "today": today, "inputs": read},
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
