"""The portal in headless Chromium (Debian's package) against the real processes: a customer opens
its e-mailed link, disputes part of an invoice, promises to pay another, and pays two by card on
the sandbox gateway's hosted page; the payment comes back through the signed webhook, is
allocated to exactly those invoices, and the page shows them paid. A screenshot of every page
goes to ``build/screenshots/portal/`` (or ``$LEDGERLINE_SCREENSHOTS``) for review.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from services.processes import ServiceProcess, listening, sandbox_gateway, wait_ready
from services.registry import settings_of
from tests.portal_stack import back_office, ok, onboard, today

pytestmark = pytest.mark.integration

SERVICES = ("credit", "invoice", "payments", "dunning", "reporting", "portal")
CHROMIUM = os.environ.get("LEDGERLINE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(
    os.environ.get(
        "LEDGERLINE_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build/screenshots/portal"
    )
)
SECRET = "whsec_browser_test_0123456789"
GATEWAY = "http://127.0.0.1:8107"


@pytest.fixture(scope="module")
def tenant() -> str:
    return f"tb{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stack(tenant: str) -> Iterator[dict[str, str]]:
    """The six services and the sandbox gateway as processes; the gateway's webhooks are
    accepted for this test's tenant."""
    ports = [settings_of(n).http_port for n in SERVICES] + [8107]
    busy = [p for p in ports if listening(p)]
    assert not busy, f"ports {busy} in use: stop `ar services run` before this test"
    env = {
        "LEDGERLINE_PAYMENTS_WEBHOOK_SECRETS": json.dumps({tenant: [SECRET]}),
        "LEDGERLINE_SANDBOX_GATEWAY_WEBHOOK_SECRETS": json.dumps({tenant: SECRET}),
        "LEDGERLINE_DUNNING_RUN_SCHEDULER": "false",
    }
    logs = Path(tempfile.mkdtemp(prefix="portal-browser-"))
    processes = [ServiceProcess(n, log_dir=logs, env=env) for n in SERVICES]
    gateway: subprocess.Popen[bytes] | None = None
    try:
        for process in processes:
            process.start()
        gateway = sandbox_gateway(logs, env=env)
        problems = wait_ready(processes, 120)
        assert not problems, f"not ready: {problems}; logs in {logs}"
        for _ in range(100):
            if listening(8107):
                break
            time.sleep(0.2)
        yield {n: p.url for n, p in zip(SERVICES, processes, strict=True)}
    finally:
        for process in processes:
            process.stop()
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=20)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


async def a_customer_owing_three_invoices(
    urls: dict[str, str], tenant: str
) -> tuple[dict[str, str], dict[str, str], str, date]:
    """Its invoices by number, the back office's headers, the customer's portal link, and the
    day its invoices' ages count from."""
    headers = back_office(tenant)
    cid = f"acme-{uuid.uuid4().hex[:6]}"
    async with (
        httpx.AsyncClient(base_url=urls["invoice"], timeout=30) as invoice,
        httpx.AsyncClient(base_url=urls["credit"], timeout=30) as credit,
        httpx.AsyncClient(headers=headers, timeout=30) as api,
    ):
        days, onboarded_on = ((12_000, 50), (34_550, 20), (8_000, 3)), today()
        invoices = await onboard(
            invoice, credit, headers, cid, "Acme Tools GmbH", days, onboarded_on
        )
        link = ok(
            await api.post(f"{urls['portal']}/v1/portal-links", json={"customer_id": cid}), 201
        )
        for _ in range(300):  # dunning and payments learn of the invoices over Kafka
            case = await api.get(f"{urls['dunning']}/v1/customers/{cid}/dunning")
            known = [
                await api.get(f"{urls['payments']}/v1/invoices/{i}/open-amount")
                for i in invoices.values()
            ]
            if (
                case.status_code == 200
                and len(case.json()["invoices"]) == len(invoices)
                and all(k.status_code == 200 for k in known)
            ):
                break
            await asyncio.sleep(0.2)
    return invoices, headers, link["url"], onboarded_on


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def unlabelled_fields(page: Page) -> list[str]:
    """Form fields a screen reader could not name."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
              .filter(e => e.type !== 'hidden')
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map(e => e.name || e.id)"""
    )
    return found


async def test_a_customer_disputes_promises_and_pays_in_the_browser(
    stack: dict[str, str], tenant: str, browser: Browser
) -> None:
    invoices, headers, url, onboarded_on = await a_customer_owing_three_invoices(stack, tenant)
    first, second, third = list(invoices)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()

    before = today()
    await page.goto(url)
    rendered_on = {before, today()}
    assert page.url == f"{stack['portal']}/portal"  # the token left the address bar
    assert await page.get_attribute("html", "lang") == "en"
    assert await unlabelled_fields(page) == []
    # issued 50 days before onboarding, on net 30: 20 days overdue that day
    overdue = {f"{(d - onboarded_on).days + 20} days overdue" for d in rendered_on}
    main = await page.inner_text("main")
    assert any(text in main for text in overdue), overdue
    await shot(page, "01-account")

    await page.select_option("#dispute-invoice", invoices[second])
    await page.fill("#dispute-amount", "45.50")
    await page.fill("#dispute-reason", "Two of the drills arrived broken")
    await page.click("#dispute-button")
    await page.wait_for_url("**/portal?notice=disputed")
    assert "Your dispute is recorded" in await page.inner_text("[role=status]")
    assert "EUR 45.50 disputed" in await page.inner_text("main")
    await shot(page, "02-disputed")

    await page.check(f"#pick-{third}")
    await page.fill("#promise-date", (today() + timedelta(days=14)).isoformat())
    await page.click("#promise-button")
    await page.wait_for_url("**/portal?notice=promised")
    assert "Your promise to pay is recorded" in await page.inner_text("[role=status]")
    await shot(page, "03-promised")

    await page.check(f"#pick-{first}")
    await page.check(f"#pick-{third}")
    await page.click("#pay-button")
    await page.wait_for_url(f"{GATEWAY}/checkout/*")
    assert "200.00 EUR" in await page.inner_text("body")  # 120.00 + 80.00
    assert await unlabelled_fields(page) == []
    await shot(page, "04-gateway")
    await page.fill("#card-number", "4242 4242 4242 4242")
    await page.fill("#card-expiry", f"12/{(today().year + 2) % 100:02d}")
    await page.fill("#card-cvc", "123")
    await page.fill("#card-name", "Acme Accounts Payable")
    await page.click("#pay-button")
    await page.wait_for_url("**/portal?notice=paid*")
    assert "Your payment was received" in await page.inner_text("[role=status]")
    await shot(page, "05-paid")

    for _ in range(150):  # the invoice service learns of the allocation through Kafka
        text = await page.inner_text("main")
        if await page.locator(f"#pick-{first}").count() == 0:
            break
        await asyncio.sleep(0.2)
        await page.reload()
    assert await page.locator(f"#pick-{first}").count() == 0, text
    assert await page.locator(f"#pick-{third}").count() == 0
    assert await page.locator(f"#pick-{second}").count() == 1
    assert "EUR 200.00" in await page.inner_text("#payments-h + div")
    await shot(page, "06-after-payment")

    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = await phone.new_page()
    await small.goto(url)
    overflow = await small.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    await shot(small, "07-phone")
    await phone.close()
    await context.close()

    async with httpx.AsyncClient(headers=headers, timeout=30) as api:
        audit = f"{stack['invoice']}/v1/audit/events?event_type=DisputeOpened"
        disputes = ok(await api.get(audit))["events"]
        assert [d["actor"].split(":")[0] for d in disputes] == ["portal"]
        paid = ok(await api.get(f"{stack['invoice']}/v1/invoices/{invoices[first]}"))
        assert paid["status"] == "paid"
        payments = ok(await api.get(f"{stack['payments']}/v1/payments"))["items"]
        assert [p["amount"]["amount"] for p in payments] == [20_000]
        assert sorted(a["invoice_id"] for a in payments[0]["allocations"]) == sorted(
            [invoices[first], invoices[third]]
        )
    taken = await asyncio.to_thread(lambda: sorted(p.name for p in SHOTS.glob("0*.png")))
    assert taken == [
        "01-account.png",
        "02-disputed.png",
        "03-promised.png",
        "04-gateway.png",
        "05-paid.png",
        "06-after-payment.png",
        "07-phone.png",
    ]
