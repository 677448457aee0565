"""Statements of account and portal links end to end: the real Postgres, the real SMTP test
server, and the real reporting service in-process (its statement endpoint answering over
httpx.ASGITransport, its projections fed the same invoice events dunning learns from)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.dunning.adapters.email import SmtpConfig, SmtpSender
from services.dunning.adapters.reporting import StatementClient
from services.dunning.adapters.smtp_server import LocalSmtpServer
from services.dunning.application import mailer, scheduler
from services.dunning.domain.statements import due_period
from services.dunning.tests.conftest import Feed, auth, customer, issued
from services.reporting.api.app import create_app as reporting_app
from services.reporting.config import ReportingSettings
from services.reporting.projections.projector import Projector
from services.reporting.projections.tables import Tables
from shared.db import make_engine, make_sessionmaker
from shared.events.registry import EventPayload
from shared.migrations import upgrade
from shared.portal_links import PortalLinkSettings, verify_link
from shared.service_tokens import ServiceTokens
from shared.settings import AuthSettings
from shared.testing import app_client, envelope_of

pytestmark = pytest.mark.integration
TODAY = datetime.now(UTC).date()
PORTAL = PortalLinkSettings(
    base_url="https://portal.test", secret="statement-tests-portal-secret-0123456789"
)
ALWAYS = mailer.MailerConfig(
    quiet_start=time(0, 0), quiet_end=time(0, 0), retry_base_seconds=0, portal=PORTAL
)


def sender(server: LocalSmtpServer) -> SmtpSender:
    return SmtpSender(SmtpConfig(host="127.0.0.1", port=server.port))


@pytest.fixture(scope="module")
async def reporting_engine() -> AsyncIterator[AsyncEngine]:
    settings = ReportingSettings()
    await upgrade("reporting", settings.dsn())
    engine = make_engine(settings.dsn(), pool_size=3, application_name="dunning-statement-tests")
    yield engine
    await engine.dispose()


@pytest.fixture
async def statements() -> AsyncIterator[StatementClient]:
    """The real reporting app, in-process; dunning's client routed to it."""
    app = reporting_app(ReportingSettings(run_relay=False, run_consumers=False))
    async with app_client(app, "http://reporting") as http:
        yield StatementClient("http://reporting", ServiceTokens(AuthSettings()), client=http)


class Both:
    """Delivers an invoice-service event to dunning (its consumer) and to reporting (its
    projector), as Kafka would to both."""

    def __init__(self, feed: Feed, reporting: async_sessionmaker[AsyncSession], tenant: str):
        self.feed = feed
        self.reporting = reporting
        self.tenant = tenant
        self.projector = Projector(Tables("reporting"))

    async def __call__(self, event: EventPayload, customer_id: str, stream: str) -> None:
        await self.feed(self.tenant, event, customer_id)
        version = 2 if stream.startswith("invoice-") else 1  # InvoiceDrafted came first
        envelope = envelope_of(
            self.tenant, event, stream_id=stream, customer_id=customer_id, stream_version=version
        )
        async with self.reporting() as session, session.begin():
            await self.projector.apply(session, envelope)


@pytest.fixture
def both(feed: Feed, reporting_engine: AsyncEngine, tenant: str) -> Both:
    return Both(feed, make_sessionmaker(reporting_engine), tenant)


async def customer_with_invoice(both: Both, customer_id: str) -> str:
    """A customer with one invoice issued inside last month; returns its number."""
    period = due_period(TODAY, "monthly")
    assert period is not None
    number = f"INV-ST-{uuid.uuid4().int % 10**6:06d}"
    await both(customer(customer_id), customer_id, f"customer-{customer_id}")
    invoice = issued(customer_id, 12_345, period.end + timedelta(days=10), number=number)
    await both(invoice, customer_id, f"invoice-{invoice.invoice_id}")
    return number


async def opt_in(api: httpx.AsyncClient, tenant: str, customer_id: str, frequency: str) -> None:
    r = await api.put(
        f"/v1/customers/{customer_id}/dunning-settings",
        json={"statement_frequency": frequency},
        headers=auth(tenant),
    )
    assert r.status_code == 200, r.text
    assert r.json()["statement_frequency"] == frequency


async def outbox(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[Any]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                """SELECT message_id, customer_id, kind, status, period_key, portal_link_id,
                          portal_link_expires_at, last_error, attempts
                   FROM dunning.outbox_messages WHERE tenant_id = :t ORDER BY created_at"""
            ),
            {"t": tenant},
        )
        return list(rows)


def attachments(message: EmailMessage) -> dict[str, EmailMessage]:
    return {str(part.get_filename()): part for part in message.iter_attachments()}


def portal_token(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    words = str(body.get_content()).split()
    [url] = [w for w in words if w.startswith(f"{PORTAL.base_url}/p/")]
    return url.removeprefix(f"{PORTAL.base_url}/p/")


async def history(api: httpx.AsyncClient, tenant: str, customer_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/customers/{customer_id}/dunning", headers=auth(tenant))
    assert r.status_code == 200, r.text
    return list(r.json()["history"])


async def test_monthly_statement_once_per_period_with_both_documents_and_a_portal_link(
    api: httpx.AsyncClient,
    tenant: str,
    both: Both,
    dunning_sessions: async_sessionmaker[AsyncSession],
    smtp: LocalSmtpServer,
    statements: StatementClient,
) -> None:
    number = await customer_with_invoice(both, "c1")
    await customer_with_invoice(both, "c-none")  # never opted in
    await customer_with_invoice(both, "c-off")
    await opt_in(api, tenant, "c1", "monthly")
    await opt_in(api, tenant, "c-off", "weekly")
    await opt_in(api, tenant, "c-off", "none")  # opted out again
    view = (await api.get("/v1/customers/c1/dunning", headers=auth(tenant))).json()
    assert view["settings"] == {"segment": None, "statement_frequency": "monthly"}

    assert await scheduler.queue_statements(dunning_sessions, TODAY, tenant) == 1
    assert await scheduler.queue_statements(dunning_sessions, TODAY, tenant) == 0  # same period
    outcome = await mailer.run_once(
        dunning_sessions, sender(smtp), ALWAYS, tenant, statements=statements
    )
    assert outcome["sent"] == 1, await outbox(dunning_sessions, tenant)
    [message] = smtp.wait_for(1)
    period = due_period(TODAY, "monthly")
    assert period is not None
    assert message["To"] == "ap@acme.example"
    assert period.start.strftime("%b %Y") in message["Subject"]
    files = attachments(message)
    assert len(files) == 2, files
    [pdf] = [p for name, p in files.items() if name.endswith(".pdf")]
    [csv] = [p for name, p in files.items() if name.endswith(".csv")]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF")
    assert csv.get_content_type() == "text/csv"
    assert number in csv.get_content()  # the invoice of the period, from reporting's figures

    link = verify_link(PORTAL, portal_token(message))
    assert (link.tenant_id, link.customer_id) == (tenant, "c1")
    [row] = await outbox(dunning_sessions, tenant)
    assert (row.kind, row.status, row.period_key) == ("statement", "sent", period.key)
    assert row.portal_link_id == link.link_id  # revocable by ops
    assert row.portal_link_expires_at == link.expires_at

    sent = [h for h in await history(api, tenant, "c1") if h["event_type"] == "ReminderSent"]
    assert [h["payload"]["kind"] for h in sent] == ["statement"]
    assert sent[0]["payload"]["message_id"] == str(row.message_id)
    listed = (await api.get("/v1/messages", headers=auth(tenant))).json()["items"]
    assert listed[0]["kind"] == "statement"
    assert listed[0]["portal_link_id"] == str(link.link_id)
    assert listed[0]["period"] == {
        "frequency": "monthly",
        "from_date": period.start.isoformat(),
        "to_date": period.end.isoformat(),
    }

    # A later run in the same period sends nothing; "none" customers never get anything.
    assert await scheduler.queue_statements(dunning_sessions, TODAY, tenant) == 0
    again = await mailer.run_once(
        dunning_sessions, sender(smtp), ALWAYS, tenant, statements=statements
    )
    assert again["sent"] == 0
    assert len(smtp.messages) == 1
    assert {r.customer_id for r in await outbox(dunning_sessions, tenant)} == {"c1"}

    # The next month is a new period: one more statement, once.
    next_month = (TODAY.replace(day=1) + timedelta(days=32)).replace(day=1)
    assert await scheduler.queue_statements(dunning_sessions, next_month, tenant) == 1
    assert await scheduler.queue_statements(dunning_sessions, next_month, tenant) == 0


async def test_weekly_statement_and_no_address_recorded_like_reminders(
    api: httpx.AsyncClient,
    tenant: str,
    both: Both,
    dunning_sessions: async_sessionmaker[AsyncSession],
    smtp: LocalSmtpServer,
    statements: StatementClient,
) -> None:
    await customer_with_invoice(both, "weekly")
    await opt_in(api, tenant, "weekly", "weekly")
    await opt_in(api, tenant, "mute", "monthly")  # known by its settings only: no address
    assert await scheduler.queue_statements(dunning_sessions, TODAY, tenant) == 2
    outcome = await mailer.run_once(
        dunning_sessions, sender(smtp), ALWAYS, tenant, statements=statements
    )
    assert outcome["sent"] == 1  # the other is failed when claimed, as reminders are
    [message] = smtp.wait_for(1)
    assert "weekly statement" in message["Subject"]
    assert len(attachments(message)) == 2
    rows = {r.customer_id: r for r in await outbox(dunning_sessions, tenant)}
    week = due_period(TODAY, "weekly")
    assert week is not None and rows["weekly"].period_key == week.key
    assert rows["mute"].status == "failed"
    assert rows["mute"].last_error == "no e-mail address known for the customer"
    failed = [h for h in await history(api, tenant, "mute") if h["event_type"] == "ReminderFailed"]
    assert [h["payload"]["kind"] for h in failed] == ["statement"]


async def test_reporting_unreachable_retries_and_never_sends_without_the_documents(
    api: httpx.AsyncClient,
    tenant: str,
    both: Both,
    dunning_sessions: async_sessionmaker[AsyncSession],
    smtp: LocalSmtpServer,
    statements: StatementClient,
) -> None:
    await customer_with_invoice(both, "c1")
    await opt_in(api, tenant, "c1", "monthly")
    await scheduler.queue_statements(dunning_sessions, TODAY, tenant)
    down = StatementClient("http://127.0.0.1:1", ServiceTokens(AuthSettings()))
    try:
        outcome = await mailer.run_once(
            dunning_sessions, sender(smtp), ALWAYS, tenant, statements=down
        )
    finally:
        await down.aclose()
    assert outcome["retry"] == 1 and outcome["sent"] == 0
    [row] = await outbox(dunning_sessions, tenant)
    assert row.status == "pending" and "cannot fetch" in row.last_error
    first_link = row.portal_link_id
    assert smtp.messages == []
    # A mailer without a reporting client leaves statements alone.
    idle = await mailer.run_once(dunning_sessions, sender(smtp), ALWAYS, tenant)
    assert idle["sent"] == idle["retry"] == 0
    # Reporting is back: the retry sends it, with the same revocable link id.
    outcome = await mailer.run_once(
        dunning_sessions, sender(smtp), ALWAYS, tenant, statements=statements
    )
    assert outcome["sent"] == 1
    [message] = smtp.wait_for(1)
    assert len(attachments(message)) == 2
    [row] = await outbox(dunning_sessions, tenant)
    assert row.attempts == 2 and row.portal_link_id == first_link
    assert verify_link(PORTAL, portal_token(message)).link_id == first_link


async def test_quiet_hours_hold_statements_back(
    api: httpx.AsyncClient,
    tenant: str,
    both: Both,
    dunning_sessions: async_sessionmaker[AsyncSession],
    smtp: LocalSmtpServer,
    statements: StatementClient,
) -> None:
    await customer_with_invoice(both, "c1")
    await opt_in(api, tenant, "c1", "monthly")
    await scheduler.queue_statements(dunning_sessions, TODAY, tenant)
    hour = datetime.now(UTC)
    quiet = mailer.MailerConfig(
        timezone="UTC",
        quiet_start=(hour - timedelta(hours=1)).time().replace(microsecond=0),
        quiet_end=(hour + timedelta(hours=1)).time().replace(microsecond=0),
        portal=PORTAL,
    )
    outcome = await mailer.run_once(
        dunning_sessions, sender(smtp), quiet, tenant, statements=statements
    )
    assert outcome["sent"] == 0
    [row] = await outbox(dunning_sessions, tenant)
    assert row.status == "pending" and row.portal_link_id is None
    assert smtp.messages == []


async def test_reminders_carry_a_verifiable_portal_link_recorded_with_the_message(
    api: httpx.AsyncClient,
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
    smtp: LocalSmtpServer,
) -> None:
    await feed(tenant, customer("c1"), "c1")
    await feed(tenant, issued("c1", 5_000, TODAY - timedelta(days=3)), "c1")
    assert await scheduler.run_all(dunning_sessions, TODAY, tenant) == 1
    assert (await mailer.run_once(dunning_sessions, sender(smtp), ALWAYS, tenant))["sent"] == 1
    [message] = smtp.wait_for(1)
    token = portal_token(message)
    link = verify_link(PORTAL, token)
    assert (link.tenant_id, link.customer_id) == (tenant, "c1")
    html = message.get_body(("html",))
    assert html is not None and f'href="{PORTAL.base_url}/p/{token}"' in html.get_content()
    [row] = await outbox(dunning_sessions, tenant)
    assert (row.kind, row.portal_link_id) == ("reminder", link.link_id)
    # The token is nowhere in what dunning stores: not the outbox, not the events.
    async with dunning_sessions() as session:
        stored = (
            await session.execute(
                text(
                    """SELECT count(*) FROM dunning.events
                       WHERE tenant_id = :t AND payload::text LIKE :tok"""
                ),
                {"t": tenant, "tok": f"%{token[-20:]}%"},
            )
        ).scalar_one()
        in_outbox = (
            await session.execute(
                text(
                    """SELECT count(*) FROM dunning.outbox_messages
                       WHERE tenant_id = :t AND (content::text LIKE :tok
                           OR coalesce(last_error, '') LIKE :tok)"""
                ),
                {"t": tenant, "tok": f"%{token[-20:]}%"},
            )
        ).scalar_one()
    assert stored == in_outbox == 0


async def test_statement_frequency_is_validated(api: httpx.AsyncClient, tenant: str) -> None:
    for body in ({"statement_frequency": "daily"}, {"statement_frequency": "weekly", "x": 1}):
        r = await api.put("/v1/customers/c1/dunning-settings", json=body, headers=auth(tenant))
        assert r.status_code == 422, r.text
    view = (await api.get("/v1/customers/c1/dunning", headers=auth(tenant))).json()
    assert view["settings"]["statement_frequency"] == "none"
