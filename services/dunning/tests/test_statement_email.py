"""Statement e-mails and portal links without a database: rendering, the MIME message with its
attachments, the token kept out of reprs and errors, and how the reporting client classifies
failures (an in-process stand-in transport only for status codes the real service rarely gives;
the real endpoint is exercised in test_statements.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

import httpx
import pytest

from services.dunning.adapters.email import (
    StatementAttachment,
    StatementContent,
    build_message,
    render,
    render_statement,
)
from services.dunning.adapters.reporting import StatementClient, StatementUnavailable
from services.dunning.tests.test_email import make_content
from shared.portal_links import PortalLinkSettings, issue_link, link_url, verify_link
from shared.service_tokens import ServiceTokens
from shared.settings import AuthSettings

PORTAL = PortalLinkSettings(base_url="https://portal.example")
PDF = b"%PDF-1.4\n% a statement\n"
CSV = b"date,kind,amount\n2026-10-01,invoice,12.00\n"


def portal_link(tenant: str = "t1", customer: str = "c-1") -> str:
    _, token = issue_link(PORTAL, tenant, customer)
    return link_url(PORTAL, token)


def statement(**overrides: object) -> StatementContent:
    content = StatementContent(
        message_id=uuid.UUID("00000000-0000-4000-8000-000000000042"),
        customer_name="Acme <Widgets>",
        to=("ap@acme.example",),
        seller_name="Ledgerline Demo GmbH",
        from_address="billing@seller.example",
        reply_to="ar@seller.example",
        frequency="monthly",
        period_start=date(2026, 10, 1),
        period_end=date(2026, 10, 31),
        pay_link=portal_link(),
        sent_on=date(2026, 11, 2),
        attachments=(
            StatementAttachment("statement-c-1.pdf", "application/pdf", PDF),
            StatementAttachment("statement-c-1.csv", "text/csv", CSV),
        ),
    )
    return replace(content, **overrides)  # type: ignore[arg-type]


def test_statement_renders_period_link_and_attachment_names() -> None:
    content = statement()
    rendered = render_statement(content)
    assert rendered.subject == (
        "Your monthly statement from Ledgerline Demo GmbH: 1 Oct 2026 to 31 Oct 2026"
    )
    for part in (rendered.text, rendered.html):
        assert content.pay_link in part
        assert "statement-c-1.pdf" in part and "statement-c-1.csv" in part
    assert f'href="{content.pay_link}"' in rendered.html
    assert "Acme &lt;Widgets&gt;" in rendered.html and "Acme <Widgets>" in rendered.text
    assert "weekly" in render_statement(statement(frequency="weekly")).subject


def test_statement_message_carries_both_documents() -> None:
    content = statement()
    message = build_message(content, render_statement(content))
    assert message.get_content_type() == "multipart/mixed"
    assert message["X-Ledgerline-Template"] == "statement"
    files = {a.get_filename(): a for a in message.iter_attachments()}
    assert files["statement-c-1.pdf"].get_content_type() == "application/pdf"
    assert files["statement-c-1.pdf"].get_content() == PDF
    assert files["statement-c-1.csv"].get_content_type() == "text/csv"
    text_part = message.get_body(("plain",))
    assert text_part is not None and content.pay_link in text_part.get_content()


def test_reminder_without_attachments_stays_multipart_alternative() -> None:
    content = make_content(pay_link=portal_link())
    message = build_message(content, render(content))
    assert message.get_content_type() == "multipart/alternative"


def test_the_token_is_in_no_repr_and_no_error() -> None:
    link = portal_link()
    token = link.rsplit("/", 1)[1]
    assert token not in repr(statement(pay_link=link))
    assert token not in repr(make_content(pay_link=link))
    unsafe = f"javascript:{token}"
    with pytest.raises(ValueError, match="pay link") as refused:
        render_statement(statement(pay_link=unsafe))
    assert token not in str(refused.value)


def test_portal_link_names_its_tenant_and_customer() -> None:
    link = verify_link(PORTAL, portal_link("t9", "c-7").rsplit("/", 1)[1])
    assert (link.tenant_id, link.customer_id) == ("t9", "c-7")


def test_period_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="period"):
        render_statement(statement(period_start=date(2026, 11, 1)))


# ---- the reporting client's classification ---------------------------------------------------


def client_answering(status: int, content: bytes, content_type: str) -> StatementClient:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=content, headers={"content-type": content_type})

    transport = httpx.MockTransport(answer)
    client = StatementClient(
        "http://reporting.test",
        ServiceTokens(AuthSettings()),
        client=httpx.AsyncClient(transport=transport),
    )
    client.seen = seen  # type: ignore[attr-defined]
    return client


async def fetch(client: StatementClient, fmt: str = "pdf") -> bytes:
    document = await client.fetch("t1", "c-1", date(2026, 10, 1), date(2026, 10, 31), fmt)  # type: ignore[arg-type]
    return document.data


async def test_fetch_asks_for_the_period_with_a_tenant_token() -> None:
    client = client_answering(200, PDF, "application/pdf")
    assert await fetch(client) == PDF
    [request] = client.seen  # type: ignore[attr-defined]
    assert request.url.path == "/v1/customers/c-1/statement"
    assert dict(request.url.params) == {
        "from_date": "2026-10-01",
        "to_date": "2026-10-31",
        "format": "pdf",
    }
    assert request.headers["authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    ("status", "content", "content_type", "transient"),
    [
        (503, b"down", "text/plain", True),
        (401, b"{}", "application/json", True),  # a key out of step: fixed by an operator
        (404, b"{}", "application/json", True),  # reporting not upgraded yet
        (422, b"{}", "application/json", False),  # this request can never succeed
        (200, b"<html>", "text/html", True),  # not the document asked for
        (200, b"not a pdf", "application/pdf", True),
        (200, b"", "application/pdf", True),
    ],
)
async def test_failures_say_whether_a_retry_may_help(
    status: int, content: bytes, content_type: str, transient: bool
) -> None:
    with pytest.raises(StatementUnavailable) as failed:
        await fetch(client_answering(status, content, content_type))
    assert failed.value.transient is transient


async def test_unreachable_reporting_is_transient() -> None:
    client = StatementClient("http://127.0.0.1:1", ServiceTokens(AuthSettings()))
    try:
        with pytest.raises(StatementUnavailable) as failed:
            await fetch(client)
    finally:
        await client.aclose()
    assert failed.value.transient
    assert "Bearer" not in failed.value.reason
