"""The dashboard page, served by the real reporting service over HTTP and rendered in Debian's
headless Chromium: its script calls the reports with the token from the URL fragment and draws
the aging chart, the DSO trend and the top overdue customers. A screenshot is kept."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
import uvicorn

from services.reporting.api.app import create_app
from services.reporting.config import ReportingSettings
from services.reporting.tests.browser import chromium_available, render
from services.reporting.tests.conftest import Ledger
from shared.auth import mint_token
from shared.settings import AuthSettings

D = date.fromisoformat
SCREENSHOT = Path(os.environ.get("LEDGERLINE_STATE_DIR", "/var/tmp/ledgerline")) / "dashboard.png"  # noqa: S108


@pytest.fixture
async def server() -> AsyncIterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ReportingSettings(run_relay=False, run_consumers=False))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    http = uvicorn.Server(config)
    task = asyncio.create_task(http.serve())
    for _ in range(100):
        if http.started:
            break
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    http.should_exit = True
    await task


def attribute_values(dom: str, tag: str, css_class: str, attribute: str) -> list[str]:
    values = []
    for element in re.findall(rf"<{tag}\b[^>]*>", dom):
        if re.search(rf'class="[^"]*\b{css_class}\b', element):
            found = re.search(rf'{attribute}="([^"]*)"', element)
            if found:
                values.append(found.group(1))
    return values


async def test_dashboard_renders_the_reports_in_chromium(
    server: str, ledger: Ledger, tenant: str
) -> None:
    if not chromium_available():
        pytest.fail("Chromium is not installed: `make browser` (Debian package chromium)")
    await ledger.deliver(
        ledger.customer_event("c1", "Acme <b>GmbH</b>"), ledger.customer_event("c2", "Globex")
    )
    acme, issued_acme = ledger.issue("c1", 120_000, D("2026-08-01"), D("2026-08-31"))
    _, issued_globex = ledger.issue("c2", 45_000, D("2026-10-20"), D("2026-11-19"))
    _, not_due = ledger.issue("c2", 30_000, D("2026-11-10"), D("2026-12-10"))
    await ledger.deliver(issued_acme, issued_globex, not_due)
    await ledger.pay(acme, 20_000, D("2026-09-15"))
    token = mint_token(
        AuthSettings(), subject="analyst", tenant_id=tenant, scopes=["reporting:read"]
    )
    url = f"{server}/dashboard#token={token}&as_of=2026-11-24"

    dom = await asyncio.to_thread(render, url, screenshot=SCREENSHOT)

    assert 'data-state="ready"' in dom, dom[-2000:]
    # aging as of Nov 24: Acme 1,000.00 at 85 days past due, Globex 450.00 at 5, 300.00 current
    bars = dict(
        zip(
            attribute_values(dom, "rect", "bar", "data-bucket"),
            attribute_values(dom, "rect", "bar", "data-amount"),
            strict=True,
        )
    )
    assert bars == {
        "current": "30000",
        "1-30": "45000",
        "31-60": "0",
        "61-90": "100000",
        "90+": "0",
    }
    assert re.search(r'<path\b[^>]*class="dso-line"', dom)
    rows = attribute_values(dom, "tr", "customer-row", "data-customer-id")
    assert rows == ["c1", "c2"]  # most overdue first
    assert "Acme &lt;b&gt;GmbH&lt;/b&gt;" in dom  # names are text, never markup
    assert SCREENSHOT.stat().st_size > 10_000


async def test_dashboard_shows_an_error_for_a_bad_token(server: str) -> None:
    if not chromium_available():
        pytest.fail("Chromium is not installed: `make browser` (Debian package chromium)")
    dom = await asyncio.to_thread(render, f"{server}/dashboard#token=not-a-jwt")
    assert 'data-state="error"' in dom or 'data-state="token-required"' in dom
    assert "malformed bearer token" in dom
