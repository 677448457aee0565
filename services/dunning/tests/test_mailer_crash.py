"""Kill the mailer mid-delivery (SIGKILL while the SMTP server is still answering): the
customer gets the e-mail at most once, and the unknown outcome is recorded, not hidden."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dunning.adapters.email import SmtpConfig, SmtpSender
from services.dunning.adapters.smtp_server import LocalSmtpServer, free_port
from services.dunning.application import mailer, scheduler
from services.dunning.tests.conftest import Feed, customer, issued

pytestmark = pytest.mark.integration
TODAY = datetime.now(UTC).date()

MAILER_PROCESS = """
import asyncio, sys
from datetime import time
from services.dunning.adapters.email import SmtpConfig, SmtpSender
from services.dunning.application import mailer
from services.dunning.config import DunningSettings
from shared.db import make_engine, make_sessionmaker

async def main(port: int, tenant: str) -> None:
    engine = make_engine(DunningSettings().dsn(), pool_size=2, application_name="mailer-crash")
    config = mailer.MailerConfig(quiet_start=time(0, 0), quiet_end=time(0, 0), lease_seconds=2)
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=120))
    await mailer.run_once(make_sessionmaker(engine), sender, config, tenant)

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


class SlowServer:
    """Takes the whole message, then keeps the client waiting for the final reply."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.content)
        await asyncio.sleep(60)
        return "250 OK"


async def test_a_mailer_killed_mid_delivery_never_sends_twice(
    tenant: str, feed: Feed, dunning_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await feed(tenant, customer("c1"), "c1")
    await feed(tenant, issued("c1", 4_000, TODAY - timedelta(days=2)), "c1")
    await scheduler.run_all(dunning_sessions, TODAY, tenant)
    slow = SlowServer()
    port = free_port("127.0.0.1")
    controller = Controller(slow, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", MAILER_PROCESS, str(port), tenant, env=dict(os.environ)
        )
        deadline = time.monotonic() + 30
        while not slow.received and time.monotonic() < deadline and proc.returncode is None:
            await asyncio.sleep(0.05)
        assert slow.received, "the mailer never reached DATA"
        proc.kill()  # SIGKILL: no cleanup, no finally blocks
        await asyncio.wait_for(proc.wait(), timeout=10)
    finally:
        controller.stop()
    async with dunning_sessions() as session:
        status = (
            await session.execute(
                text("SELECT status FROM dunning.outbox_messages WHERE tenant_id = :t"),
                {"t": tenant},
            )
        ).scalar_one()
    assert status == "sending"
    await asyncio.sleep(2.5)  # the dead worker's lease runs out
    config = mailer.MailerConfig(quiet_start=datetime.min.time(), quiet_end=datetime.min.time())
    with LocalSmtpServer(port=0) as healthy:
        sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=healthy.port))
        first = await mailer.run_once(dunning_sessions, sender, config, tenant)
        again = await mailer.run_once(dunning_sessions, sender, config, tenant)
        assert (first["recovered"], first["sent"]) == (1, 0)
        assert again == {"recovered": 0, "sent": 0, "retry": 0, "failed": 0}
        assert healthy.messages == []
    assert len(slow.received) == 1
    async with dunning_sessions() as session:
        events = (
            await session.execute(
                text(
                    """SELECT event_type, payload FROM dunning.events
                       WHERE tenant_id = :t ORDER BY stream_version"""
                ),
                {"t": tenant},
            )
        ).all()
    assert [e.event_type for e in events] == ["ReminderScheduled", "ReminderFailed"]
    assert events[1].payload["outcome_unknown"] is True
