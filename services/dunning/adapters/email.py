"""Dunning e-mail: templates, rendering, the MIME message, and sending it over SMTP.

One message goes to a customer per dunning run and lists *all* of their invoices the run is
about, so the pipeline is

    ReminderContent --render()--> RenderedEmail --build_message()--> EmailMessage
                                                  --SmtpSender.send()--> the relay

* :func:`render` is pure. The Jinja2 templates live in ``services/dunning/templates``: for
  each tone ``<name>.subject.j2``, ``<name>.txt.j2`` and ``<name>.html.j2``, sharing a text
  and an HTML layout and the invoice listing. Autoescaping is on for ``*.html.j2`` only, so
  customer-provided text (customer name, invoice numbers) is escaped in HTML and left alone
  in the plain-text part and the subject; ``StrictUndefined`` turns a typo in a template
  into an error instead of an empty string in a customer's mailbox.
* ``pay_link`` is the customer's signed portal link (it holds a bearer token): it is left out of
  reprs and error messages, so it reaches the customer's mailbox and nothing else.
* A statement of account (:class:`StatementContent`, :func:`render_statement`) uses the
  ``statement.*`` templates and goes out with the reporting service's PDF and CSV attached.
* :func:`build_message` gives the message a Message-ID derived from ``message_id`` alone,
  so a retried send is the *same* message and MTAs and mail clients can de-duplicate it.
* :class:`SmtpSender` maps every failure to :class:`TransientSendError` (try again later)
  or :class:`PermanentSendError` (retrying the same message cannot succeed); see
  :meth:`SmtpSender.send` for the exact rules. The SMTP password never appears in a repr,
  an exception message or a log line.
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Final
from urllib.parse import urlsplit

import aiosmtplib
import jinja2

from shared.money import Money, sum_money

__all__ = [
    "MESSAGE_ID_DOMAIN",
    "TEMPLATES",
    "InvoiceLine",
    "PermanentSendError",
    "ReminderContent",
    "RenderedEmail",
    "SendError",
    "SmtpConfig",
    "SmtpSender",
    "StatementAttachment",
    "StatementContent",
    "TransientSendError",
    "build_message",
    "describe_days",
    "format_date",
    "format_money",
    "late_fee_totals",
    "message_id_header",
    "render",
    "render_statement",
    "totals",
]

log = logging.getLogger(__name__)

#: The tones, mildest first. A policy step's ``template`` must be one of these.
TEMPLATES: Final[tuple[str, ...]] = ("reminder", "overdue", "firm", "final_notice", "escalation")

#: Right-hand side of every Message-ID; ``.invalid`` (RFC 2606) can never be a real host.
MESSAGE_ID_DOMAIN: Final = "ledgerline.invalid"


# ------------------------------------------------------------------------- content


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice of the reminder. ``days_overdue`` is negative before the due date
    (``-3``: due in 3 days). ``amount_due`` is the open amount; ``late_fee`` is a fee charged
    with this step, shown next to the invoice and summed separately (never added to
    ``amount_due`` here)."""

    number: str
    issue_date: date
    due_date: date
    amount_due: Money
    days_overdue: int
    late_fee: Money | None = None

    def __post_init__(self) -> None:
        if self.late_fee is not None and self.late_fee.currency != self.amount_due.currency:
            raise ValueError(
                f"invoice {self.number}: late fee in {self.late_fee.currency} but amount due "
                f"in {self.amount_due.currency}"
            )


@dataclass(frozen=True)
class ReminderContent:
    """Everything one reminder e-mail says, for one customer and all their listed invoices."""

    message_id: uuid.UUID
    template: str
    customer_name: str
    to: tuple[str, ...]
    seller_name: str
    from_address: str
    reply_to: str | None
    invoices: tuple[InvoiceLine, ...]
    pay_link: str = field(repr=False)  # the portal link: a bearer token
    sent_on: date


@dataclass(frozen=True)
class StatementAttachment:
    filename: str
    content_type: str  # "application/pdf", "text/csv"
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class StatementContent:
    """A statement of account for one closed period, with its documents attached."""

    message_id: uuid.UUID
    customer_name: str
    to: tuple[str, ...]
    seller_name: str
    from_address: str
    reply_to: str | None
    frequency: str  # "weekly" | "monthly"
    period_start: date
    period_end: date
    pay_link: str = field(repr=False)  # the portal link: a bearer token
    sent_on: date
    attachments: tuple[StatementAttachment, ...] = ()
    template: str = "statement"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


# ---------------------------------------------------------------------- formatting

_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip


def format_money(amount: Money) -> str:
    """``1,234.56 EUR``, ``50,000 JPY``, ``1.500 KWD``: exactly the currency's decimals."""
    return f"{amount.to_decimal():,.{amount.exponent}f} {amount.currency}"


def format_date(value: date) -> str:
    """``14 Mar 2025``: unambiguous for every reader and independent of the process locale."""
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def describe_days(days_overdue: int) -> str:
    """``12 days overdue``, ``1 day overdue``, ``due today``, ``due in 3 days``."""
    if days_overdue == 0:
        return "due today"
    n = abs(days_overdue)
    unit = "day" if n == 1 else "days"
    return f"{n} {unit} overdue" if days_overdue > 0 else f"due in {n} {unit}"


def _by_currency(amounts: Iterable[Money]) -> list[Money]:
    groups: dict[str, list[Money]] = {}
    for amount in amounts:
        groups.setdefault(amount.currency, []).append(amount)
    return [sum_money(groups[code], code) for code in sorted(groups)]


def totals(content: ReminderContent) -> list[Money]:
    """The amount due per currency, sorted by currency code (late fees not included)."""
    return _by_currency(line.amount_due for line in content.invoices)


def late_fee_totals(content: ReminderContent) -> list[Money]:
    """The late fees of this message per currency, sorted by currency code (empty: none)."""
    return _by_currency(line.late_fee for line in content.invoices if line.late_fee is not None)


# ----------------------------------------------------------------------- rendering


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("services.dunning", "templates"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["money"] = format_money
    env.filters["day"] = format_date
    env.filters["days"] = describe_days
    return env


def _check_pay_link(link: str) -> None:
    # The link ends up in an href: only http(s), so it can never be a javascript: URL. The
    # error names the scheme only: the link's path is a bearer token, and errors are stored.
    parts = urlsplit(link)
    if parts.scheme not in ("https", "http") or not parts.netloc or any(c.isspace() for c in link):
        raise ValueError(
            f"pay link must be an absolute http(s) URL without spaces (scheme {parts.scheme!r})"
        )


def _context(content: ReminderContent) -> dict[str, Any]:
    invoices = sorted(content.invoices, key=lambda line: (line.due_date, line.number))
    due = totals(content)
    fees = {fee.currency: fee for fee in late_fee_totals(content)}
    return {
        "template": content.template,
        "customer_name": content.customer_name,
        "seller_name": content.seller_name,
        "reply_to": content.reply_to,
        "pay_link": content.pay_link,
        "sent_on": content.sent_on,
        "invoices": invoices,
        "count": len(invoices),
        "first": invoices[0],
        "most_overdue": max(line.days_overdue for line in invoices),
        "totals": due,
        "totals_text": " + ".join(format_money(total) for total in due),
        # One row per currency: the amount due and the late fees charged in it, if any.
        "summary": [{"due": total, "fees": fees.get(total.currency)} for total in due],
        "late_fee_totals": list(fees.values()),
        "has_late_fees": bool(fees),
    }


def render(content: ReminderContent) -> RenderedEmail:
    """Render subject, plain text and HTML of ``content.template``.

    Raises ``ValueError`` for an unknown template, no invoices, or a pay link that is not an
    absolute http(s) URL.
    """
    if content.template not in TEMPLATES:
        raise ValueError(
            f"unknown reminder template {content.template!r}; known: {', '.join(TEMPLATES)}"
        )
    if not content.invoices:
        raise ValueError("a reminder must list at least one invoice")
    _check_pay_link(content.pay_link)
    env = _environment()
    context = _context(content)
    raw_subject = env.get_template(f"{content.template}.subject.j2").render(context)
    # One line, whatever the template or an invoice number contains: a header can't fold.
    subject = " ".join(raw_subject.split())
    text = env.get_template(f"{content.template}.txt.j2").render(context)
    html = env.get_template(f"{content.template}.html.j2").render(context, subject=subject)
    return RenderedEmail(subject=subject, text=text, html=html)


def render_statement(content: StatementContent) -> RenderedEmail:
    """Render subject, plain text and HTML of a statement e-mail; ``ValueError`` for a portal
    link that is not an absolute http(s) URL or a period that ends before it starts."""
    _check_pay_link(content.pay_link)
    if content.period_end < content.period_start:
        raise ValueError("a statement period must not end before it starts")
    env = _environment()
    context = {
        "customer_name": content.customer_name,
        "seller_name": content.seller_name,
        "reply_to": content.reply_to,
        "pay_link": content.pay_link,
        "sent_on": content.sent_on,
        "frequency": content.frequency,
        "period_start": content.period_start,
        "period_end": content.period_end,
        "attachments": [a.filename for a in content.attachments],
    }
    raw_subject = env.get_template("statement.subject.j2").render(context)
    subject = " ".join(raw_subject.split())
    text = env.get_template("statement.txt.j2").render(context)
    html = env.get_template("statement.html.j2").render(context, subject=subject)
    return RenderedEmail(subject=subject, text=text, html=html)


# ------------------------------------------------------------------------- message


def message_id_header(message_id: uuid.UUID) -> str:
    """The RFC 5322 Message-ID of a reminder: a pure function of its id."""
    return f"<{message_id}@{MESSAGE_ID_DOMAIN}>"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _address(addr_spec: str, display_name: str = "") -> Address:
    """A validated mailbox: exactly one ``local@domain``; ``ValueError`` otherwise."""
    if any(c.isspace() for c in addr_spec):
        raise ValueError(f"invalid e-mail address {addr_spec!r}")
    try:
        address = Address(display_name=_one_line(display_name), addr_spec=addr_spec)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"invalid e-mail address {addr_spec!r}") from exc
    if not address.username or not address.domain:
        raise ValueError(f"invalid e-mail address {addr_spec!r}: need local@domain")
    return address


def build_message(
    content: ReminderContent | StatementContent,
    rendered: RenderedEmail,
    *,
    now: datetime | None = None,
) -> EmailMessage:
    """The MIME message: ``multipart/alternative`` with the text part first, then HTML (in a
    ``multipart/mixed`` with the documents, for a statement with attachments).

    ``now`` (timezone-aware, default: the current time) only sets the Date header; the
    Message-ID is ``<{message_id}@ledgerline.invalid>`` and ``X-Ledgerline-Message-Id``
    carries the bare id, so retries of one reminder are recognisably the same message.
    Raises ``ValueError`` for no recipient or an invalid address.
    """
    if not content.to:
        raise ValueError(f"reminder {content.message_id} has no recipient address")
    when = datetime.now(UTC) if now is None else now
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("now must be timezone-aware")

    message = EmailMessage(policy=email.policy.default)
    message["Subject"] = _one_line(rendered.subject)
    message["From"] = _address(content.from_address, content.seller_name)
    message["To"] = tuple(_address(addr) for addr in content.to)
    if content.reply_to:
        message["Reply-To"] = _address(content.reply_to)
    message["Date"] = email.utils.format_datetime(when)
    message["Message-ID"] = message_id_header(content.message_id)
    message["X-Ledgerline-Message-Id"] = str(content.message_id)
    message["X-Ledgerline-Template"] = content.template
    # RFC 3834: machine-generated, so vacation auto-responders should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    for attachment in content.attachments if isinstance(content, StatementContent) else ():
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message


# ------------------------------------------------------------------------- sending


class SendError(Exception):
    """A message was not accepted. ``code`` is the SMTP reply code, if the server gave one."""

    def __init__(self, reason: str, *, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientSendError(SendError):
    """Try again later: connection refused or timed out, TLS or login failed, a 4xx reply."""


class PermanentSendError(SendError):
    """Retrying this message cannot succeed: a 5xx refusal of its recipients, sender or
    content, or an address that cannot be sent at all."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to submit mail. ``password`` is left out of ``repr`` and ``str``."""

    host: str = "127.0.0.1"
    port: int = 2525
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    use_tls: bool = False
    timeout_seconds: float = 10.0
    #: Name sent in EHLO; ``None`` lets aiosmtplib use the host's FQDN (a DNS lookup).
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.starttls and self.use_tls:
            raise ValueError("use either starttls (upgrade after connect) or use_tls, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password go together")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")


#: Replies about *our* login (RFC 4954: 530 auth required, 534 mechanism too weak, 535
#: credentials invalid, 538 encryption required): the configuration is wrong, not the
#: message, so they are transient; the message goes out once an operator fixes it.
_LOGIN_CODES: Final = frozenset({530, 534, 535, 538})


def _is_permanent_code(code: int) -> bool:
    return 500 <= code < 600 and code not in _LOGIN_CODES


def _classify(exc: Exception, where: str) -> SendError:
    """Map an aiosmtplib/socket failure to a send error; the message names no credential."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in exc.recipients]
        detail = "; ".join(
            f"{refused.recipient}: {refused.code} {refused.message}" for refused in exc.recipients
        )
        reason = f"{where} refused every recipient ({detail})"
        first_code = codes[0] if codes else None
        if codes and all(_is_permanent_code(code) for code in codes):
            return PermanentSendError(reason, code=first_code)
        return TransientSendError(reason, code=first_code)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return TransientSendError(
            f"{where} rejected the SMTP login ({exc.code} {exc.message})", code=exc.code
        )
    if isinstance(exc, aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPDataError):
        what = "sender" if isinstance(exc, aiosmtplib.SMTPSenderRefused) else "message"
        reason = f"{where} refused the {what} ({exc.code} {exc.message})"
        if _is_permanent_code(exc.code):
            return PermanentSendError(reason, code=exc.code)
        return TransientSendError(reason, code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # Greeting, HELO/EHLO and the like: the server, not this message, is the problem.
        return TransientSendError(f"{where} answered {exc.code} {exc.message}", code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) and "SMTPUTF8" in exc.message:
        return PermanentSendError(f"{where}: {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPException):
        return TransientSendError(f"{where}: {type(exc).__name__}: {exc.message}")
    if isinstance(exc, OSError):  # refused, reset, unreachable, TimeoutError, ssl.SSLError
        return TransientSendError(f"cannot reach {where}: {type(exc).__name__}: {exc}")
    # ValueError: aiosmtplib found no sender/recipient or an address it cannot send.
    return PermanentSendError(f"cannot send to {where}: {exc}")


class SmtpSender:
    """Submits messages to one SMTP server, a new connection per message."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    def __repr__(self) -> str:
        return f"SmtpSender({self._config!r})"

    async def send(self, message: EmailMessage) -> None:
        """Send ``message`` to the recipients in its To/Cc/Bcc headers.

        Returns once the server accepted it for at least one recipient (recipients it
        refused while accepting others are logged, not raised). Failures map as follows:

        * :class:`PermanentSendError`: every recipient refused with 5xx; sender or content
          refused with 5xx; an address aiosmtplib cannot send (``ValueError``); a non-ASCII
          address the server cannot take (no SMTPUTF8).
        * :class:`TransientSendError`: everything else: connection refused, reset or timed
          out, TLS failure, 4xx replies, a missing or rejected login (530/534/535/538, whatever
          the command), an unexpected greeting/EHLO reply.

        Either exception chains the original one as ``__cause__``.
        """
        cfg = self._config
        where = f"SMTP server {cfg.host}:{cfg.port}"
        try:
            refused, _reply = await aiosmtplib.send(
                message,
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.use_tls,
                start_tls=cfg.starttls,
                timeout=cfg.timeout_seconds,
                local_hostname=cfg.local_hostname,
            )
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            raise _classify(exc, where) from exc
        if refused:
            log.warning(
                "%s accepted message %s but refused some recipients: %s",
                where,
                message["Message-ID"],
                "; ".join(f"{addr}: {resp.code} {resp.message}" for addr, resp in refused.items()),
            )
