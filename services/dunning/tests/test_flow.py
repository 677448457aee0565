"""Dunning end to end on the real Postgres and a real SMTP server: invoices learned from events,
the scheduler, the mailer, and the outcomes recorded on the case."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dunning.adapters.email import SmtpConfig, SmtpSender
from services.dunning.adapters.smtp_server import LocalSmtpServer
from services.dunning.application import mailer, scheduler
from services.dunning.tests.conftest import Feed, auth, customer, issued
from shared.contracts.invoice import DisputeOpened, InvoicePaid, PaymentApplied
from shared.money import Money

pytestmark = pytest.mark.integration
TODAY = datetime.now(UTC).date()
ALWAYS = mailer.MailerConfig(quiet_start=time(0, 0), quiet_end=time(0, 0), retry_base_seconds=0)


def sender(server: LocalSmtpServer) -> SmtpSender:
    return SmtpSender(SmtpConfig(host="127.0.0.1", port=server.port))


async def outbox(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[Any]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                """SELECT message_id, status, attempts, content FROM dunning.outbox_messages
                   WHERE tenant_id = :t ORDER BY created_at"""
            ),
            {"t": tenant},
        )
        return list(rows)


async def history(api: httpx.AsyncClient, tenant: str, customer_id: str) -> list[str]:
    r = await api.get(f"/v1/customers/{customer_id}/dunning", headers=auth(tenant))
    assert r.status_code == 200, r.text
    return [h["event_type"] for h in r.json()["history"]]


async def test_one_grouped_email_per_customer_sent_once(
    api: httpx.AsyncClient,
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
    smtp: LocalSmtpServer,
) -> None:
    await feed(tenant, customer("c1", name="Acme <Ltd>"), "c1")
    a = issued("c1", 12_000, TODAY - timedelta(days=8), number="INV-2026-000101")
    b = issued("c1", 3_000, TODAY - timedelta(days=1), number="INV-2026-000102")
    later = issued("c1", 9_000, TODAY + timedelta(days=20), number="INV-2026-000103")
    for inv in (a, b, later):
        await feed(tenant, inv, "c1")
    assert await scheduler.run_all(dunning_sessions, TODAY, tenant) == 1
    [row] = await outbox(dunning_sessions, tenant)
    assert row.status == "pending"
    outcome = await mailer.run_once(dunning_sessions, sender(smtp), ALWAYS, tenant)
    assert outcome["sent"] == 1
    [message] = smtp.wait_for(1)
    body = message.get_body(("plain",))
    assert body is not None
    text_body = body.get_content()
    assert "INV-2026-000101" in text_body and "INV-2026-000102" in text_body
    assert "INV-2026-000103" not in text_body  # not due yet
    assert message["Message-ID"] == f"<{row.message_id}@ledgerline.invalid>"
    html = message.get_body(("html",))
    assert html is not None and "Acme &lt;Ltd&gt;" in html.get_content()
    assert await history(api, tenant, "c1") == ["ReminderScheduled", "ReminderSent"]
    async with dunning_sessions() as session:
        scheduled, sent = (
            await session.execute(
                text(
                    """SELECT event_id, correlation_id, causation_id, actor FROM dunning.events
                       WHERE tenant_id = :t AND event_type IN ('ReminderScheduled', 'ReminderSent')
                       ORDER BY stream_version"""
                ),
                {"t": tenant},
            )
        ).all()
    # delivery is traced back to the run that scheduled it
    assert scheduled.correlation_id is not None
    assert (sent.correlation_id, sent.causation_id) == (
        scheduled.correlation_id,
        scheduled.event_id,
    )
    view = (await api.get("/v1/customers/c1/dunning", headers=auth(tenant))).json()
    ahead = [(s["number"], s["step_id"]) for s in view["schedule"]]
    assert ("INV-2026-000103", "pre_due_reminder") in ahead and (
        "INV-2026-000101",
        "firm",
    ) not in ahead
    # The next runs record nothing new: steps done, and the minimum interval.
    assert await scheduler.run_all(dunning_sessions, TODAY, tenant) == 1
    assert len(await outbox(dunning_sessions, tenant)) == 1
    assert (await mailer.run_once(dunning_sessions, sender(smtp), ALWAYS, tenant))["sent"] == 0
    assert len(smtp.messages) == 1


async def test_paid_before_its_turn_the_message_is_cancelled(
    api: httpx.AsyncClient,
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
    smtp: LocalSmtpServer,
) -> None:
    await feed(tenant, customer("c1"), "c1")
    inv = issued("c1", 5_000, TODAY - timedelta(days=2))
    await feed(tenant, inv, "c1")
    await scheduler.run_all(dunning_sessions, TODAY, tenant)
    paid = PaymentApplied(
        invoice_id=inv.invoice_id,
        allocation_id=uuid.uuid4(),
        payment_id=uuid.uuid4(),
        amount=Money.of_minor(5_000, "EUR"),
        applied_on=TODAY,
        discount_taken=Money.zero("EUR"),
    )
    await feed(tenant, paid, "c1")
    await feed(tenant, InvoicePaid(invoice_id=inv.invoice_id, paid_on=TODAY), "c1")
    await mailer.run_once(dunning_sessions, sender(smtp), ALWAYS, tenant)
    assert smtp.messages == []
    assert [r.status for r in await outbox(dunning_sessions, tenant)] == ["cancelled"]
    assert await history(api, tenant, "c1") == ["ReminderScheduled", "ReminderCancelled"]
    r = await api.get("/v1/customers/c1/dunning", headers=auth(tenant))
    assert r.json()["behaviour"]["invoices_paid"] == 1


async def test_a_fully_disputed_invoice_is_not_dunned(
    tenant: str, feed: Feed, dunning_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await feed(tenant, customer("c1"), "c1")
    inv = issued("c1", 5_000, TODAY - timedelta(days=10))
    await feed(tenant, inv, "c1")
    dispute = DisputeOpened(
        invoice_id=inv.invoice_id,
        dispute_id=uuid.uuid4(),
        amount=Money.of_minor(5_000, "EUR"),
        reason="wrong goods",
        opened_on=TODAY,
    )
    await feed(tenant, dispute, "c1")
    await feed(tenant, dispute, "c1")  # redelivered: counted once
    await scheduler.run_all(dunning_sessions, TODAY, tenant)
    assert await outbox(dunning_sessions, tenant) == []


async def test_transient_failures_retry_and_refusals_fail(
    api: httpx.AsyncClient,
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await feed(tenant, customer("ok", email="ap@ok.example"), "ok")
    await feed(tenant, customer("bad", email="nobody@refused.example"), "bad")
    for c in ("ok", "bad"):
        await feed(tenant, issued(c, 1_000, TODAY - timedelta(days=3)), c)
    await scheduler.run_all(dunning_sessions, TODAY, tenant)
    with LocalSmtpServer(port=0, fail_first=1, refuse_recipients=r"refused\.example") as server:
        first = await mailer.run_once(dunning_sessions, sender(server), ALWAYS, tenant)
        second = await mailer.run_once(dunning_sessions, sender(server), ALWAYS, tenant)
        assert first["retry"] + first["failed"] + first["sent"] == 2
        assert first["sent"] + second["sent"] == 1
        assert first["failed"] + second["failed"] == 1
        assert len(server.messages) == 1
    assert "ReminderFailed" in await history(api, tenant, "bad")
    assert "ReminderSent" in await history(api, tenant, "ok")


async def test_quiet_hours_hold_messages(
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
    smtp: LocalSmtpServer,
) -> None:
    await feed(tenant, customer("c1"), "c1")
    await feed(tenant, issued("c1", 1_000, TODAY - timedelta(days=3)), "c1")
    await scheduler.run_all(dunning_sessions, TODAY, tenant)
    now = datetime.now(UTC)
    quiet = mailer.MailerConfig(
        timezone="UTC",
        quiet_start=(now - timedelta(hours=1)).time().replace(microsecond=0),
        quiet_end=(now + timedelta(hours=1)).time().replace(microsecond=0),
    )
    await mailer.run_once(dunning_sessions, sender(smtp), quiet, tenant)
    assert smtp.messages == []
    async with dunning_sessions() as session:
        not_before = (
            await session.execute(
                text("SELECT not_before FROM dunning.outbox_messages WHERE tenant_id = :t"),
                {"t": tenant},
            )
        ).scalar_one()
    assert not_before > now + timedelta(minutes=50)


async def test_concurrent_schedulers_record_each_step_once(
    api: httpx.AsyncClient,
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
) -> None:
    for n in range(5):
        await feed(tenant, customer(f"c{n}"), f"c{n}")
        await feed(tenant, issued(f"c{n}", 1_000, TODAY - timedelta(days=3)), f"c{n}")
    await asyncio.gather(*(scheduler.run_all(dunning_sessions, TODAY, tenant) for _ in range(4)))
    rows = await outbox(dunning_sessions, tenant)
    assert len(rows) == 5
    for n in range(5):
        assert await history(api, tenant, f"c{n}") == ["ReminderScheduled"]


async def test_policies_promises_pauses_preview_and_escalation_export(
    api: httpx.AsyncClient,
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
) -> None:
    h = auth(tenant)
    policy: dict[str, Any] = {
        "name": "strict",
        "steps": [
            {"step_id": "nudge", "offset_days": 1, "template": "overdue"},
            {
                "step_id": "fee",
                "offset_days": 5,
                "template": "firm",
                "late_fee": {"kind": "flat", "flat": {"amount": 1_000, "currency": "EUR"}},
            },
            {"step_id": "collect", "offset_days": 10, "template": "escalation", "escalate": True},
        ],
        "min_interval_days": 0,
    }
    r = await api.put("/v1/policies/segment:strict", json=policy, headers=h)
    assert r.status_code == 200, r.text
    bad = await api.put(
        "/v1/policies/tenant",
        json={  # two escalations
            **policy,
            "steps": [
                *policy["steps"],
                {"step_id": "again", "offset_days": 20, "template": "escalation", "escalate": True},
            ],
        },
        headers=h,
    )
    assert bad.status_code == 422
    assert (
        await api.put("/v1/customers/c1/dunning-settings", json={"segment": "strict"}, headers=h)
    ).status_code == 200
    await feed(tenant, customer("c1", name="=HYPERLINK(1)"), "c1")
    inv = issued("c1", 20_000, TODAY - timedelta(days=12))
    await feed(tenant, inv, "c1")
    preview = (await api.get("/v1/customers/c1/dunning/preview", headers=h)).json()
    kinds = [e["event_type"] for e in preview["events"]]
    assert preview["policy"] == "strict" and kinds == [
        "LateFeeAssessed",
        "ReminderScheduled",
        "AccountEscalated",
    ]
    today_preview = (await api.get("/v1/dunning/preview", headers=h)).json()
    assert [c["customer_id"] for c in today_preview["customers"]] == ["c1"]
    # A promise pauses it; the preview then shows nothing.
    promise = await api.post(
        "/v1/customers/c1/promises",
        json={
            "invoice_ids": [str(inv.invoice_id)],
            "amount": {"amount": 20_000, "currency": "EUR"},
            "promised_date": (TODAY + timedelta(days=5)).isoformat(),
        },
        headers=h,
    )
    assert promise.status_code == 201, promise.text
    assert (await api.get("/v1/customers/c1/dunning/preview", headers=h)).json()["events"] == []
    # A pause of the customer, resumed.
    paused = await api.post("/v1/customers/c1/dunning/pause", json={"reason": "talking"}, headers=h)
    pause_id = paused.json()["pauses"][0]["pause_id"]
    resumed = await api.post(
        "/v1/customers/c1/dunning/resume", json={"pause_id": pause_id, "reason": "done"}, headers=h
    )
    assert resumed.status_code == 200 and resumed.json()["pauses"] == []
    # Without the promise (another customer on the same policy), the run escalates.
    await api.put("/v1/customers/c2/dunning-settings", json={"segment": "strict"}, headers=h)
    await feed(tenant, customer("c2", name="=cmd|' /C calc'!A0"), "c2")
    other = issued("c2", 7_000, TODAY - timedelta(days=12), number="INV-2026-000777")
    await feed(tenant, other, "c2")
    await scheduler.run_all(dunning_sessions, TODAY, tenant)
    escalations = (await api.get("/v1/escalations", headers=h)).json()["items"]
    [esc] = [e for e in escalations if e["customer_id"] == "c2"]
    assert esc["amount_due"] == {"amount": 7_000, "currency": "EUR"}
    export = await api.get(f"/v1/escalations/{esc['escalation_id']}/export", headers=h)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = export.text.strip().splitlines()
    assert lines[0].startswith("customer_id,customer_name") and "INV-2026-000777" in lines[1]
    assert "'=cmd" in lines[1]  # formula injection neutralised
    assert (await api.get("/v1/customers/c2/dunning", headers=h)).json()["escalated_invoices"] == [
        str(other.invoice_id)
    ]
    gone = await api.request(
        "DELETE", "/v1/policies/segment:strict", json={"reason": "trial over"}, headers=h
    )
    assert gone.status_code == 200
    assert (await api.get("/v1/policies/segment:strict", headers=h)).status_code == 404


async def test_steps_that_need_approval_wait_for_a_person(
    api: httpx.AsyncClient,
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
) -> None:
    h = auth(tenant)
    policy = {
        "name": "careful",
        "steps": [
            {
                "step_id": "final",
                "offset_days": 3,
                "template": "final_notice",
                "needs_approval": True,
            }
        ],
    }
    assert (await api.put("/v1/policies/tenant", json=policy, headers=h)).status_code == 200
    await feed(tenant, customer("c1"), "c1")
    inv = issued("c1", 1_000, TODAY - timedelta(days=4))
    await feed(tenant, inv, "c1")
    await scheduler.run_all(dunning_sessions, TODAY, tenant)
    assert await outbox(dunning_sessions, tenant) == []
    [pending] = (await api.get("/v1/approvals", headers=h)).json()["items"]
    assert pending["step_id"] == "final"
    r = await api.post(f"/v1/approvals/{inv.invoice_id}/final/approve", headers=h)
    assert r.status_code == 200, r.text
    await scheduler.run_all(dunning_sessions, TODAY, tenant)
    assert [row.content["template"] for row in await outbox(dunning_sessions, tenant)] == [
        "final_notice"
    ]


async def test_tenants_and_scopes(api: httpx.AsyncClient, tenant: str, feed: Feed) -> None:
    await feed(tenant, customer("c1"), "c1")
    await feed(tenant, issued("c1", 1_000, TODAY), "c1")
    mine = (await api.get("/v1/customers/c1/dunning", headers=auth(tenant))).json()
    assert len(mine["invoices"]) == 1
    theirs = (await api.get("/v1/customers/c1/dunning", headers=auth("other"))).json()
    assert theirs["invoices"] == []
    denied = await api.put(
        "/v1/policies/tenant",
        json={"name": "x", "steps": []},
        headers=auth(tenant, ("dunning:read",)),
    )
    assert denied.status_code == 403
    assert (await api.get("/v1/policies")).status_code == 401


async def test_a_customer_is_run_again_the_same_day_only_after_what_its_run_reads_changed(
    api: httpx.AsyncClient,
    tenant: str,
    feed: Feed,
    dunning_sessions: async_sessionmaker[AsyncSession],
) -> None:
    h = auth(tenant)

    async def runs(day: date = TODAY) -> tuple[int, int]:
        """How many customers one run ran, then how many the next run of the same day ran."""
        return (
            await scheduler.run_all(dunning_sessions, day, tenant),
            await scheduler.run_all(dunning_sessions, day, tenant),
        )

    careful = {
        "name": "careful",
        "steps": [
            {"step_id": "nudge", "offset_days": 1, "template": "overdue"},
            {
                "step_id": "final",
                "offset_days": 3,
                "template": "final_notice",
                "needs_approval": True,
            },
        ],
        "min_interval_days": 0,
    }
    assert (await api.put("/v1/policies/tenant", json=careful, headers=h)).status_code == 200
    await feed(tenant, customer("c1"), "c1")
    inv = issued("c1", 4_000, TODAY - timedelta(days=4))
    await feed(tenant, inv, "c1")
    # The first run records the nudge and asks for the final step's approval (a row the run
    # writes itself); the second finds nothing changed.
    assert await runs() == (1, 0)
    [pending] = (await api.get("/v1/approvals", headers=h)).json()["items"]
    assert pending["step_id"] == "final"
    assert await history(api, tenant, "c1") == ["ReminderScheduled"]

    # Each thing a run reads, changed, runs the customer once more the same day.
    r = await api.post(f"/v1/approvals/{inv.invoice_id}/final/approve", headers=h)
    assert r.status_code == 200, r.text
    assert await runs() == (1, 0)
    assert await history(api, tenant, "c1") == ["ReminderScheduled", "ReminderScheduled"]
    await feed(tenant, issued("c1", 1_000, TODAY - timedelta(days=2)), "c1")  # an invoice
    assert await runs() == (1, 0)
    settings = {"segment": "vip"}
    assert (
        await api.put("/v1/customers/c1/dunning-settings", json=settings, headers=h)
    ).status_code == 200
    assert await runs() == (1, 0)
    assert (await api.put("/v1/policies/segment:vip", json=careful, headers=h)).status_code == 200
    assert await runs() == (1, 0)
    paused = await api.post("/v1/customers/c1/dunning/pause", json={"reason": "call"}, headers=h)
    assert paused.status_code == 200, paused.text  # the case changed
    assert await runs() == (1, 0)
    # Another customer's change leaves this one alone; the next day runs it again.
    await feed(tenant, customer("c2"), "c2")
    await feed(tenant, issued("c2", 2_000, TODAY - timedelta(days=1)), "c2")
    assert await runs() == (1, 0)
    assert await runs(TODAY + timedelta(days=1)) == (2, 0)
