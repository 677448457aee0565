"""The customer portal against the real services: a link opens one customer's page and nothing
else; disputes and promises become the owning service's commands with the link as the actor;
forms need the link's CSRF token; revoked and expired links open nothing."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.dunning.config import DunningSettings
from shared.portal_links import csrf_token, issue_link, verify_link
from tests.portal_stack import Customer, Stack, ok, portal_stack, today

pytestmark = pytest.mark.integration


@asynccontextmanager
async def signed_in(
    stack: Stack, who: Customer
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """A browser that opened a new link of ``who`` (and so holds its session cookie)."""
    link = await stack.link(who)
    async with stack.browser() as browser:
        token = link["url"].rsplit("/", 1)[1]
        opened = await browser.get(f"/p/{token}")
        assert opened.status_code == 303 and opened.headers["location"] == "/portal"
        cookie = opened.headers["set-cookie"].lower()
        assert all(f in cookie for f in ("httponly", "samesite=lax", "path=/portal")), cookie
        yield browser, link


def form_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action``, as the page rendered them."""
    form = page[page.index(f'action="{action}"') :]
    form = form[: form.index("</form>")]
    return dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form))


async def events_by(stack: Stack, who: Customer, service: str, types: list[str]) -> list[Any]:
    path = f"/v1/audit/events?customer_id={who.customer_id}&" + "&".join(
        f"event_type={t}" for t in types
    )
    answer = ok(await stack.api[service].get(path, headers=who.headers))
    return answer["events"]  # type: ignore[no-any-return]


async def test_a_link_shows_its_customer_and_its_forms_act_for_it_alone() -> None:
    async with portal_stack() as stack:
        tenant = f"tp{uuid.uuid4().hex[:8]}"
        alice, bob = await stack.customer(tenant, "alice"), await stack.customer(tenant, "bob")
        async with signed_in(stack, alice) as (browser, link):
            before = today()
            page = await browser.get("/portal")
            rendered_on = {before, today()}
            assert page.status_code == 200
            assert page.headers["cache-control"] == "no-store"
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            for number in alice.invoices:
                assert number in page.text
            for number in bob.invoices:
                assert number not in page.text
            # 100.00 issued 60 days before onboarding, on net 30: 30 days overdue that day
            overdue = {f"{(d - alice.onboarded_on).days + 30} days overdue" for d in rendered_on}
            assert any(text in page.text for text in overdue), overdue
            assert "EUR 430.00" in page.text  # open in total
            assert "<h1>Alice: your account</h1>" in page.text

            mine, theirs = list(alice.invoices.values()), list(bob.invoices.values())
            pdf = await browser.get(f"/portal/invoices/{mine[0]}.pdf")
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
            assert (await browser.get(f"/portal/invoices/{theirs[0]}.pdf")).status_code == 404
            missing = await browser.get(f"/portal/invoices/{uuid.uuid4()}.pdf")
            assert missing.status_code == 404

            fields = form_fields(page.text, "/portal/disputes")
            dispute = {**fields, "invoice_id": mine[1], "amount": "40", "reason": "two broken"}
            # no token, another link's token, another site: refused, nothing recorded
            other, _ = issue_link(stack.portal_settings.links, tenant, alice.customer_id)
            foreign = csrf_token(stack.portal_settings.links, other)
            for bad, headers in (
                ({**dispute, "csrf": ""}, {}),
                ({**dispute, "csrf": foreign}, {}),
                (dispute, {"origin": "https://evil.example"}),
            ):
                refused = await browser.post("/portal/disputes", data=bad, headers=headers)
                assert refused.status_code == 403, refused.text
            # bob's invoice through alice's form: the same answer as an id nobody has
            for probe in (theirs[0], str(uuid.uuid4())):
                probed = await browser.post(
                    "/portal/disputes", data={**dispute, "invoice_id": probe}
                )
                assert probed.status_code == 404
                assert "no open invoice of yours with that id" in probed.text
            assert await events_by(stack, bob, "invoice", ["DisputeOpened"]) == []

            for _ in range(2):  # a double submit of one form is one dispute
                sent = await browser.post("/portal/disputes", data=dispute)
                assert sent.status_code == 303, sent.text
                assert sent.headers["location"] == "/portal?notice=disputed"
            opened = await events_by(stack, alice, "invoice", ["DisputeOpened"])
            assert len(opened) == 1
            assert opened[0]["actor"] == f"portal:{link['link_id']}"
            assert opened[0]["payload"]["amount"] == {"amount": 4_000, "currency": "EUR"}

            await stack.known_everywhere(alice)
            page = await browser.get("/portal?notice=disputed")
            assert "Your dispute is recorded" in page.text and "EUR 40.00 disputed" in page.text
            fields = form_fields(page.text, "/portal/pay")
            promise = {
                **fields,
                "invoice_id": [mine[0], mine[2]],
                "amount": "",
                "promised_date": (today() + timedelta(days=10)).isoformat(),
                "note": "after our payment run",
            }
            sent = await browser.post("/portal/promises", data=promise)
            assert sent.status_code == 303, sent.text
            page = await browser.get("/portal?notice=promised")
            assert page.text.count(f"Promised for {promise['promised_date']}") == 2
            promised = await events_by(stack, alice, "dunning", ["PromiseToPayRecorded"])
            assert [e["actor"] for e in promised] == [f"portal:{link['link_id']}"]
            assert promised[0]["payload"]["amount"] == {"amount": 18_000, "currency": "EUR"}
            late = {**promise, "promised_date": (today() - timedelta(days=1)).isoformat()}
            late["form_id"] = str(uuid.uuid4())
            refused = await browser.post("/portal/promises", data=late)
            assert refused.status_code == 422 and "between today" in refused.text

            statement = await browser.get(
                "/portal/statement",
                params={"from": today().replace(day=1).isoformat(), "format": "csv"},
            )
            assert statement.status_code == 200, statement.text
            assert statement.headers["content-type"].startswith("text/csv")


async def test_revoked_expired_and_forged_links_open_nothing() -> None:
    async with portal_stack() as stack:
        tenant, other_tenant = f"tp{uuid.uuid4().hex[:8]}", f"tq{uuid.uuid4().hex[:8]}"
        alice = await stack.customer(tenant, "alice")
        mallory = await stack.customer(other_tenant, "mallory")
        async with signed_in(stack, alice) as (browser, link):
            assert (await browser.get("/portal")).status_code == 200
            # another tenant cannot see, issue or revoke alice's links
            listed = f"/v1/customers/{alice.customer_id}/portal-links"
            theirs = ok(await stack.api["portal"].get(listed, headers=mallory.headers))
            assert theirs == {"items": []}
            foreign = {"customer_id": alice.customer_id}
            issued = await stack.api["portal"].post(
                "/v1/portal-links", json=foreign, headers=mallory.headers
            )
            assert issued.status_code == 404
            revoke = f"/v1/customers/{alice.customer_id}/portal-links/{link['link_id']}/revoke"
            why = {"reason": "mallory"}
            ok(await stack.api["portal"].post(revoke, json=why, headers=mallory.headers))
            assert (await browser.get("/portal")).status_code == 200

            ours = ok(await stack.api["portal"].get(listed, headers=alice.headers))
            assert [i["link_id"] for i in ours["items"]] == [link["link_id"]]
            ok(await stack.api["portal"].post(revoke, json=why, headers=alice.headers))
            refused = await browser.get("/portal")
            assert refused.status_code == 401 and "withdrawn" in refused.text
            token = link["url"].rsplit("/", 1)[1]
            assert (await stack.browser().get(f"/p/{token}")).status_code == 401
            revoked = await events_by(stack, alice, "portal", ["PortalLinkRevoked"])
            assert len(revoked) == 1  # mallory's revocation was its own tenant's, of nothing

        # revoking all of a customer's links closes every one issued until then
        async with signed_in(stack, alice) as (browser, _):
            everything = f"/v1/customers/{alice.customer_id}/portal-links/revoke"
            ok(await stack.api["portal"].post(everything, json=why, headers=alice.headers))
            assert (await browser.get("/portal")).status_code == 401

        # a link the dunning mailer put in an e-mail opens the portal, and is revoked by its id
        emailed, token = issue_link(DunningSettings().portal, tenant, alice.customer_id)
        async with stack.browser() as browser:
            assert (await browser.get(f"/p/{token}")).status_code == 303
            assert (await browser.get("/portal")).status_code == 200
            revoke = f"/v1/customers/{alice.customer_id}/portal-links/{emailed.link_id}/revoke"
            ok(await stack.api["portal"].post(revoke, json=why, headers=alice.headers))
            assert (await browser.get("/portal")).status_code == 401

        settings = stack.portal_settings.links
        past = datetime.now(UTC) - timedelta(days=31)
        _, expired = issue_link(settings, tenant, alice.customer_id, now=past)
        _, good = issue_link(settings, other_tenant, mallory.customer_id)
        signature = good.split(".")[1]
        forged = f"{expired.split('.')[0]}.{signature}"
        for token in (expired, forged, "x" * 60, good[:-2]):
            assert (await stack.browser().get(f"/p/{token}")).status_code == 401
        with pytest.raises(Exception):  # noqa: B017 - the forged token must not verify
            verify_link(settings, forged)
        assert (await stack.browser().get("/portal")).status_code == 401  # no cookie at all


async def test_paying_chosen_invoices_on_the_gateways_page_pays_exactly_those() -> None:
    """portal -> gateway's hosted page -> signed webhook -> PaymentReceived -> allocated to the
    chosen invoices -> the invoices are paid -> the portal shows it."""
    tenant = f"tp{uuid.uuid4().hex[:8]}"
    async with portal_stack(tenants=[tenant]) as stack:
        alice = await stack.customer(tenant, "alice")
        await stack.known_everywhere(alice)
        numbers = list(alice.invoices)
        chosen = [alice.invoices[numbers[0]], alice.invoices[numbers[2]]]  # 100.00 + 80.00
        async with signed_in(stack, alice) as (browser, link):
            page = await browser.get("/portal")
            fields = form_fields(page.text, "/portal/pay")
            handed = await browser.post("/portal/pay", data={**fields, "invoice_id": chosen})
            assert handed.status_code == 303, handed.text
            hosted = handed.headers["location"]
            assert hosted.startswith("http://gateway/checkout/cs_")
            checkout = await browser.get(hosted)
            assert checkout.status_code == 200 and "180.00 EUR" in checkout.text
            card = {
                "card_number": "4242 4242 4242 4242",
                "card_expiry": f"12/{(today().year + 2) % 100:02d}",
                "card_cvc": "123",
                "card_name": "Alice Example",
            }
            declined = await browser.post(hosted, data={**card, "card_number": "4000000000000002"})
            assert declined.status_code == 402
            paid = await browser.post(hosted, data=card)
            assert paid.status_code == 303, paid.text
            back = httpx.URL(paid.headers["location"])
            assert (back.host, back.path, back.params["notice"]) == ("portal", "/portal", "paid")
            checkout_id = back.params["checkout"]

            found = ok(
                await stack.api["payments"].get(
                    "/v1/payments", params={"checkout_id": checkout_id}, headers=alice.headers
                )
            )["items"]
            assert len(found) == 1
            payment = found[0]
            assert payment["amount"] == {"amount": 18_000, "currency": "EUR"}
            assert payment["details"]["last4"] == "4242"
            assert "4242424242424242" not in json.dumps(payment)
            assert sorted(a["invoice_id"] for a in payment["allocations"]) == sorted(chosen)

            async def shown() -> str:
                for _ in range(150):  # the invoice service learns of the allocation over Kafka
                    text = (await browser.get("/portal?notice=paid")).text
                    if all(f"pick-{numbers[i]}" not in text for i in (0, 2)):
                        return text
                    await asyncio.sleep(0.2)
                raise AssertionError("the paid invoices are still shown as open")

            text = await shown()
            assert "Your payment was received" in text
            assert f'id="pick-{numbers[1]}"' in text  # the one not chosen is still open
            assert "EUR 180.00" in text  # in the payments received
            invoice = ok(
                await stack.api["invoice"].get(f"/v1/invoices/{chosen[0]}", headers=alice.headers)
            )
            assert invoice["status"] == "paid"
            received = await events_by(stack, alice, "payments", ["PaymentReceived"])
            assert [e["actor"] for e in received] == ["gateway:stripe"]
            started = await events_by(stack, alice, "portal", ["PortalCheckoutStarted"])
            assert [e["actor"] for e in started] == [f"portal:{link['link_id']}"]
            assert started[0]["payload"]["checkout_id"] == checkout_id
            assert link["customer_id"] == alice.customer_id


async def test_the_link_token_never_reaches_the_access_log(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async with portal_stack() as stack:
        alice = await stack.customer(f"tp{uuid.uuid4().hex[:8]}", "alice")
        capfd.readouterr()
        async with signed_in(stack, alice) as (browser, link):
            token = link["url"].rsplit("/", 1)[1]
            assert (await browser.get(f"/p/{token}x")).status_code == 401
        records = [
            json.loads(line) for line in capfd.readouterr().err.splitlines() if line[:1] == "{"
        ]
        served = [r for r in records if r.get("service") == "portal" and r["logger"] != "httpx"]
        messages = [r["message"] for r in served]
        assert "GET /p/<redacted> 303" in messages and "GET /p/<redacted> 401" in messages
        assert not [m for m in messages if token[:40] in m]
