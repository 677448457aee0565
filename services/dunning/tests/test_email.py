"""Dunning e-mail: templates, MIME structure, and SMTP delivery against the local server.

Every SMTP test runs :class:`LocalSmtpServer` in-process on a free port (no Postgres, no
Kafka), so the module runs everywhere and in well under a few seconds.
"""

from __future__ import annotations

import email.policy
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import aiosmtplib
import pytest

from services.dunning.adapters.email import (
    TEMPLATES,
    InvoiceLine,
    PermanentSendError,
    ReminderContent,
    RenderedEmail,
    SendError,
    SmtpConfig,
    SmtpSender,
    TransientSendError,
    _classify,
    build_message,
    describe_days,
    format_date,
    format_money,
    late_fee_totals,
    render,
    totals,
)
from services.dunning.adapters.smtp_server import LocalSmtpServer, free_port
from shared.money import Money

MESSAGE_ID = uuid.UUID("5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f")
SECRET = "hunter2-very-secret"
# LocalSmtpServer(credentials=...) offers AUTH without TLS (fine on localhost); aiosmtpd warns.
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
REPO_ROOT = Path(__file__).resolve().parents[3]


def eur(value: str) -> Money:
    return Money.from_decimal(value, "EUR")


def line(
    number: str = "INV-2025-0001",
    *,
    amount: Money | None = None,
    days_overdue: int = 12,
    late_fee: Money | None = None,
) -> InvoiceLine:
    due = date(2025, 4, 12) - timedelta(days=days_overdue)
    return InvoiceLine(
        number=number,
        issue_date=due - timedelta(days=30),
        due_date=due,
        amount_due=amount if amount is not None else eur("1234.56"),
        days_overdue=days_overdue,
        late_fee=late_fee,
    )


def make_content(**overrides: object) -> ReminderContent:
    content = ReminderContent(
        message_id=MESSAGE_ID,
        template="overdue",
        customer_name="Acme Widgets Ltd",
        to=("ap@acme.example",),
        seller_name="Ledgerline Demo GmbH",
        from_address="billing@seller.example",
        reply_to="ar@seller.example",
        invoices=(
            line("INV-2025-0001", amount=eur("1234.56"), days_overdue=12),
            line("INV-2025-0002", amount=eur("100.00"), days_overdue=40),
            line("INV-JP-7", amount=Money.of_minor(50_000, "JPY"), days_overdue=5),
        ),
        pay_link="https://pay.example/acme/c-1",
        sent_on=date(2025, 4, 12),
    )
    return replace(content, **overrides)  # type: ignore[arg-type]


def message_for(content: ReminderContent) -> EmailMessage:
    return build_message(content, render(content), now=datetime(2025, 4, 12, 9, 30, tzinfo=UTC))


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert isinstance(part, EmailMessage)
    assert part.get_content_type() == f"text/{subtype}"
    content = part.get_content()
    assert isinstance(content, str)
    return content


def config(port: int, **overrides: object) -> SmtpConfig:
    base = SmtpConfig(host="127.0.0.1", port=port, timeout_seconds=2.0, local_hostname="localhost")
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def smtp() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer(port=0) as server:
        yield server


# ---------------------------------------------------------------------- formatting


def test_money_uses_the_currency_decimals_and_thousands_separators() -> None:
    assert format_money(eur("1234.56")) == "1,234.56 EUR"
    assert format_money(eur("5")) == "5.00 EUR"
    assert format_money(Money.of_minor(1_234_567, "JPY")) == "1,234,567 JPY"
    assert format_money(Money.of_minor(1500, "KWD")) == "1.500 KWD"
    assert format_money(eur("-12.30")) == "-12.30 EUR"


def test_dates_and_days_read_naturally() -> None:
    assert format_date(date(2025, 3, 4)) == "4 Mar 2025"
    assert describe_days(12) == "12 days overdue"
    assert describe_days(1) == "1 day overdue"
    assert describe_days(0) == "due today"
    assert describe_days(-1) == "due in 1 day"
    assert describe_days(-7) == "due in 7 days"


def test_totals_are_per_currency_sorted_by_code() -> None:
    content = make_content(
        invoices=(
            line("A", amount=Money.of_minor(999, "USD")),
            line("B", amount=eur("10.00"), late_fee=eur("5.00")),
            line("C", amount=Money.of_minor(50_000, "JPY")),
            line("D", amount=eur("0.50"), late_fee=eur("1.25")),
        )
    )
    assert totals(content) == [
        eur("10.50"),
        Money.of_minor(50_000, "JPY"),
        Money.of_minor(999, "USD"),
    ]
    assert late_fee_totals(content) == [eur("6.25")]


def test_a_late_fee_must_be_in_the_invoice_currency() -> None:
    with pytest.raises(ValueError, match="late fee in USD"):
        line(late_fee=Money.of_minor(100, "USD"))


# ----------------------------------------------------------------------- templates

TONE_SUBJECTS = {
    "reminder": "Payment reminder from Ledgerline Demo GmbH",
    "overdue": "Overdue invoices from Ledgerline Demo GmbH",
    "firm": "Action required",
    "final_notice": "FINAL NOTICE",
    "escalation": "Account referred to collections",
}


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_lists_every_invoice_totals_and_pay_link(template: str) -> None:
    content = make_content(template=template)
    rendered = render(content)

    assert TONE_SUBJECTS[template] in rendered.subject
    assert "\n" not in rendered.subject
    assert "1,334.56 EUR + 50,000 JPY" in rendered.subject or template in ("reminder", "overdue")
    for part in (rendered.text, rendered.html):
        for invoice in content.invoices:
            assert invoice.number in part
            assert format_date(invoice.issue_date) in part
            assert format_date(invoice.due_date) in part
            assert format_money(invoice.amount_due) in part
            assert describe_days(invoice.days_overdue) in part
        assert "1,334.56 EUR" in part  # the EUR total
        assert "50,000 JPY" in part
        assert "50,000.00" not in part
        assert content.pay_link in part
        assert content.seller_name in part
        assert "Acme Widgets Ltd" in part
        assert "ar@seller.example" in part
    assert f'href="{content.pay_link}"' in rendered.html
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    # No external assets: the only URLs are the pay link and the mailto.
    assert "<img" not in rendered.html
    assert "<link" not in rendered.html
    assert "src=" not in rendered.html


def test_invoices_are_listed_oldest_due_first() -> None:
    text = render(make_content()).text
    positions = [text.index(number) for number in ("INV-2025-0002", "INV-2025-0001", "INV-JP-7")]
    assert positions == sorted(positions)


def test_the_tone_escalates() -> None:
    single = (line("INV-9", days_overdue=-3),)
    reminder = render(make_content(template="reminder", invoices=single))
    assert "friendly heads-up" in reminder.text
    assert "is due on 15 Apr 2025" in reminder.text
    assert "invoice INV-9 is due on 15 Apr 2025" in reminder.subject
    assert "due in 3 days" in reminder.html

    overdue = render(make_content(template="overdue", invoices=(line("INV-9"),)))
    assert "(12 days overdue)" in overdue.subject
    assert "polite reminder" in overdue.text

    firm = render(make_content(template="firm"))
    assert "Despite our earlier reminders" in firm.text
    assert "now 40 days overdue" in firm.text

    final = render(make_content(template="final_notice"))
    assert final.text.count("FINAL NOTICE") == 1
    assert "late fees" in final.text
    assert "collection agency" in final.text
    assert "collection agency" in final.html

    escalation = render(make_content(template="escalation"))
    assert "handed over to collections" in escalation.text
    assert "handed over to collections" in escalation.html


def test_late_fees_are_listed_per_invoice_and_summed() -> None:
    content = make_content(
        template="final_notice",
        invoices=(
            line("INV-1", amount=eur("1000.00"), late_fee=eur("40.00")),
            line("INV-2", amount=eur("200.00"), late_fee=eur("5.50")),
            line("INV-3", amount=Money.of_minor(7000, "JPY")),
        ),
    )
    rendered = render(content)
    assert "Late fees have been charged" in rendered.text
    assert "Late fee:    40.00 EUR" in rendered.text
    assert "Late fees:     45.50 EUR" in rendered.text
    assert "Late fee</th>" in rendered.html
    assert "45.50 EUR" in rendered.html
    without = render(make_content(template="final_notice"))
    assert "Late fee" not in without.text
    assert "Late fee" not in without.html


def test_html_escapes_customer_text_and_plain_text_keeps_it() -> None:
    content = make_content(
        customer_name="<script>alert('x')</script> & Co",
        invoices=(line('INV-<b>"1"</b>'),),
    )
    rendered = render(content)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in rendered.html
    assert "INV-&lt;b&gt;&#34;1&#34;&lt;/b&gt;" in rendered.html
    assert "<script>alert('x')</script> & Co" in rendered.text
    assert 'INV-<b>"1"</b>' in rendered.subject


def test_unknown_template_empty_invoices_and_unsafe_links_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown reminder template 'gentle'"):
        render(make_content(template="gentle"))
    with pytest.raises(ValueError, match="unknown reminder template"):
        render(make_content(template="../_layout"))
    with pytest.raises(ValueError, match="at least one invoice"):
        render(make_content(invoices=()))
    for link in ("javascript:alert(1)", "pay.example/acme", "https://pay.example/a b"):
        with pytest.raises(ValueError, match="pay link"):
            render(make_content(pay_link=link))


def test_subject_is_one_line_whatever_the_invoice_number_holds() -> None:
    rendered = render(make_content(invoices=(line("INV-1\r\nBcc: evil@example.com"),)))
    assert "\r" not in rendered.subject
    assert "\n" not in rendered.subject
    message = build_message(make_content(), rendered)
    assert message["Bcc"] is None


# ------------------------------------------------------------------------- message


def test_message_is_multipart_alternative_text_then_html() -> None:
    content = make_content(to=("ap@acme.example", "cfo@acme.example"))
    message = message_for(content)

    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert message["Subject"] == render(content).subject
    assert message["From"] == "Ledgerline Demo GmbH <billing@seller.example>"
    assert message["To"] == "ap@acme.example, cfo@acme.example"
    assert message["Reply-To"] == "ar@seller.example"
    assert message["Date"] == "Sat, 12 Apr 2025 09:30:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert "1,334.56 EUR" in body(message, "plain")
    assert "Acme Widgets Ltd" in body(message, "html")


def test_message_id_is_deterministic() -> None:
    content = make_content()
    first = message_for(content)
    later = build_message(
        content,
        render(content),
        now=datetime(2025, 4, 13, 8, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    expected = f"<{MESSAGE_ID}@ledgerline.invalid>"
    assert first["Message-ID"] == later["Message-ID"] == expected
    assert first["X-Ledgerline-Message-Id"] == str(MESSAGE_ID)
    assert later["Date"] == "Sun, 13 Apr 2025 08:00:00 +0200"
    other = message_for(make_content(message_id=uuid.uuid4()))
    assert other["Message-ID"] != expected


def test_message_round_trips_through_bytes() -> None:
    content = make_content(customer_name="Zoë Müller & Söhne <KG>", seller_name="Société Générale")
    message = message_for(content)
    parsed = BytesParser(policy=email.policy.default).parsebytes(message.as_bytes())
    assert isinstance(parsed, EmailMessage)
    assert parsed["From"].addresses[0].display_name == "Société Générale"
    assert "Zoë Müller & Söhne <KG>" in body(parsed, "plain")
    assert "Zoë Müller &amp; Söhne &lt;KG&gt;" in body(parsed, "html")


def test_message_without_reply_to_has_no_header() -> None:
    assert message_for(make_content(reply_to=None))["Reply-To"] is None


def test_message_refuses_bad_addresses_and_naive_dates() -> None:
    rendered = RenderedEmail(subject="s", text="t", html="<p>h</p>")
    with pytest.raises(ValueError, match="no recipient"):
        build_message(make_content(to=()), rendered)
    for bad in ("not-an-address", "a@b.example\r\nBcc: x@y.example", "two words@x.example"):
        with pytest.raises(ValueError, match="invalid e-mail address"):
            build_message(make_content(to=(bad,)), rendered)
    with pytest.raises(ValueError, match="invalid e-mail address"):
        build_message(make_content(from_address="billing"), rendered)
    with pytest.raises(ValueError, match="timezone-aware"):
        build_message(make_content(), rendered, now=datetime(2025, 4, 12, 9, 30))


def test_seller_name_cannot_inject_headers() -> None:
    message = message_for(make_content(seller_name="Evil\r\nBcc: victim@example.com"))
    assert message["Bcc"] is None
    assert "\n" not in str(message["From"])
    assert message["From"].addresses[0].addr_spec == "billing@seller.example"


# --------------------------------------------------------------------------- config


def test_password_is_never_in_repr_or_str() -> None:
    cfg = SmtpConfig(username="mailer", password=SECRET)
    for text in (repr(cfg), str(cfg), repr(SmtpSender(cfg))):
        assert SECRET not in text
        assert "mailer" in text


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="not both"):
        SmtpConfig(starttls=True, use_tls=True)
    with pytest.raises(ValueError, match="go together"):
        SmtpConfig(username="mailer")
    with pytest.raises(ValueError, match="go together"):
        SmtpConfig(password=SECRET)
    with pytest.raises(ValueError, match="timeout"):
        SmtpConfig(timeout_seconds=0)


# --------------------------------------------------------------------------- sending


async def test_send_delivers_both_parts_to_every_recipient(smtp: LocalSmtpServer) -> None:
    content = make_content(to=("ap@acme.example", "cfo@acme.example"))
    message = message_for(content)

    await SmtpSender(config(smtp.port)).send(message)

    [received] = smtp.wait_for(1, timeout=2)
    [envelope] = smtp.received
    assert envelope.mail_from == "billing@seller.example"
    assert envelope.rcpt_tos == ("ap@acme.example", "cfo@acme.example")
    assert received["Subject"] == message["Subject"]
    assert received["Message-ID"] == f"<{MESSAGE_ID}@ledgerline.invalid>"
    assert received["X-Ledgerline-Message-Id"] == str(MESSAGE_ID)
    assert received.get_content_type() == "multipart/alternative"
    # SMTP carries CRLF line ends; the content is otherwise unchanged.
    assert body(received, "plain").replace("\r\n", "\n") == body(message, "plain")
    assert body(received, "html").replace("\r\n", "\n") == body(message, "html")
    assert "INV-JP-7" in body(received, "html")


async def test_server_writes_one_eml_file_per_message(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    with LocalSmtpServer(port=0, maildir=maildir) as server:
        sender = SmtpSender(config(server.port))
        await sender.send(message_for(make_content()))
        await sender.send(message_for(make_content(message_id=uuid.uuid4())))
        first, second = server.received
    files = sorted(maildir.glob("*.eml"))
    assert [first.path, second.path] == files
    assert not list(maildir.glob(".*"))  # no temporary leftovers
    parsed = BytesParser(policy=email.policy.default).parsebytes(files[0].read_bytes())
    assert parsed["Return-Path"] == "<billing@seller.example>"
    assert parsed["X-Envelope-To"] == "ap@acme.example"
    assert parsed["Message-ID"] == f"<{MESSAGE_ID}@ledgerline.invalid>"


async def test_451_is_transient_and_a_retry_succeeds() -> None:
    with LocalSmtpServer(port=0, fail_first=1) as server:
        sender = SmtpSender(config(server.port))
        message = message_for(make_content())
        with pytest.raises(TransientSendError) as caught:
            await sender.send(message)
        assert caught.value.code == 451
        assert isinstance(caught.value.__cause__, aiosmtplib.SMTPDataError)
        assert server.messages == []

        await sender.send(message)  # the same message, same Message-ID
        assert len(server.wait_for(1)) == 1
        assert server.data_attempts == 2


async def test_550_for_every_recipient_is_permanent() -> None:
    with LocalSmtpServer(port=0, refuse_recipients=r"@bounce\.example$") as server:
        sender = SmtpSender(config(server.port))
        content = make_content(to=("gone@bounce.example", "left@bounce.example"))
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(message_for(content))
        assert caught.value.code == 550
        assert "gone@bounce.example" in str(caught.value)
        assert server.messages == []
        assert server.data_attempts == 0


async def test_550_for_some_recipients_still_delivers_to_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with LocalSmtpServer(port=0, refuse_recipients="gone@") as server:
        content = make_content(to=("ap@acme.example", "gone@acme.example"))
        await SmtpSender(config(server.port)).send(message_for(content))
        [envelope] = server.received
    assert envelope.rcpt_tos == ("ap@acme.example",)
    assert "gone@acme.example: 550" in caplog.text


async def test_connection_refused_is_transient() -> None:
    port = free_port()  # nothing listens there
    sender = SmtpSender(config(port, username="mailer", password=SECRET))
    with pytest.raises(TransientSendError) as caught:
        await sender.send(message_for(make_content()))
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert caught.value.code is None
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


async def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TransientSendError, match="Timeout"):
            await SmtpSender(config(port, timeout_seconds=0.2)).send(message_for(make_content()))
        assert time.monotonic() - started < 2


@AUTH_WITHOUT_TLS
async def test_login_with_the_right_password_delivers() -> None:
    with LocalSmtpServer(port=0, credentials={"mailer": SECRET}) as server:
        sender = SmtpSender(config(server.port, username="mailer", password=SECRET))
        await sender.send(message_for(make_content()))
        assert len(server.wait_for(1)) == 1


@AUTH_WITHOUT_TLS
async def test_rejected_login_never_reveals_the_password() -> None:
    with LocalSmtpServer(port=0, credentials={"mailer": "the-real-one"}) as server:
        sender = SmtpSender(config(server.port, username="mailer", password=SECRET))
        with pytest.raises(TransientSendError) as caught:
            await sender.send(message_for(make_content()))
        assert server.messages == []
    assert caught.value.code == 535
    error: BaseException | None = caught.value
    while error is not None:  # the whole chain, as a traceback would print it
        assert SECRET not in str(error)
        assert SECRET not in repr(error)
        error = error.__cause__ or error.__context__


@AUTH_WITHOUT_TLS
async def test_unauthenticated_mail_is_refused_when_login_is_required() -> None:
    with LocalSmtpServer(port=0, credentials={"mailer": SECRET}) as server:
        with pytest.raises(TransientSendError) as caught:  # our configuration is wrong
            await SmtpSender(config(server.port)).send(message_for(make_content()))
        assert caught.value.code == 530
        assert server.messages == []


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@x.example"),
                    aiosmtplib.SMTPRecipientRefused(450, "mailbox busy", "b@x.example"),
                ]
            ),
            TransientSendError,
            550,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(452, "too many recipients", "a@x.example")]
            ),
            TransientSendError,
            452,
        ),
        (
            aiosmtplib.SMTPSenderRefused(553, "sender not owned", "b@s.example"),
            PermanentSendError,
            553,
        ),
        (aiosmtplib.SMTPSenderRefused(421, "closing", "b@s.example"), TransientSendError, 421),
        (
            aiosmtplib.SMTPSenderRefused(530, "auth required", "b@s.example"),
            TransientSendError,
            530,
        ),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), TransientSendError, 535),
        (aiosmtplib.SMTPDataError(554, "spam"), PermanentSendError, 554),
        (aiosmtplib.SMTPHeloError(501, "bad helo"), TransientSendError, 501),
        (aiosmtplib.SMTPServerDisconnected("gone"), TransientSendError, None),
        (aiosmtplib.SMTPReadTimeoutError("slow"), TransientSendError, None),
        (aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported"), PermanentSendError, None),
        (aiosmtplib.SMTPNotSupported("STARTTLS not supported"), TransientSendError, None),
        (ConnectionResetError("reset"), TransientSendError, None),
        (ValueError("No recipient headers provided in message"), PermanentSendError, None),
    ],
)
def test_failures_are_classified(error: Exception, kind: type[SendError], code: int | None) -> None:
    mapped = _classify(error, "SMTP server h:25")
    assert type(mapped) is kind
    assert mapped.code == code
    assert "SMTP server h:25" in str(mapped)


# ---------------------------------------------------------------------- the server


def test_server_lifecycle_and_wait_for() -> None:
    server = LocalSmtpServer(port=0)
    assert not server.running
    server.start()
    try:
        assert server.running
        assert server.port != 0
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
        with pytest.raises(TimeoutError, match="0 of 1"):
            server.wait_for(1, timeout=0.05)
        with pytest.raises(OSError):  # the port is taken: fails at once, not after a timeout
            LocalSmtpServer(port=server.port, ready_timeout=30).start()
    finally:
        server.stop()
    server.stop()
    assert not server.running


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    maildir = tmp_path / "mail"
    proc = subprocess.Popen(  # noqa: S603
        [
            *(sys.executable, "-m", "services.dunning.adapters.smtp_server"),
            *("--host", "127.0.0.1", "--port", str(port), "--maildir", str(maildir)),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        deadline = time.monotonic() + 10
        while not _accepts(port):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "the SMTP server did not start"
            time.sleep(0.05)
        with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=5) as client:
            client.send_message(message_for(make_content()))
        assert len(list(maildir.glob("*.eml"))) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
