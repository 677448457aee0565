"""A local SMTP server for development and tests: accepts everything, delivers nowhere.

:class:`LocalSmtpServer` wraps aiosmtpd's threaded ``Controller`` (its own thread and event
loop), so it is used synchronously: ``start()``/``stop()`` or ``with LocalSmtpServer(...)``,
from sync code and from async tests alike. Every accepted message is kept in memory, parsed
with ``email.policy.default`` (:attr:`LocalSmtpServer.messages`, with envelope data in
:attr:`LocalSmtpServer.received`), and optionally written as one ``.eml`` file per message
to a directory. For tests of failure handling it can refuse recipients matching a pattern
with 550 and answer 451 to the first N messages; it can also require AUTH (PLAIN/LOGIN,
without TLS: it is for localhost only).

Run it for local development (``make run``)::

    python -m services.dunning.adapters.smtp_server --host 127.0.0.1 --port 2525 --maildir DIR

It serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import errno
import itertools
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["LocalSmtpServer", "ReceivedMessage", "free_port", "main"]

log = logging.getLogger(__name__)

REFUSED_REPLY: Final = "550 5.1.1 Recipient address rejected: mailbox unavailable"
TRY_LATER_REPLY: Final = "451 4.3.0 Temporary local problem, try again later"
SERVER_NAME: Final = "ledgerline-smtp.localhost"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _ensure_bindable(host: str, port: int) -> None:
    """Raise ``OSError`` now if ``host:port`` is taken, rather than let the controller thread
    fail and ``start()`` wait out its whole ready timeout."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Same option asyncio's create_server sets: TIME_WAIT leftovers don't count, but a
        # listening socket still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message with its SMTP envelope."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    path: Path | None  # the .eml file, when a maildir is configured


class _Handler:
    """aiosmtpd handler hooks; runs on the controller's event loop thread."""

    def __init__(self, owner: LocalSmtpServer) -> None:
        self._owner = owner

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self._owner.refuses(address):
            return REFUSED_REPLY
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._owner._take_failure():
            return TRY_LATER_REPLY
        raw = envelope.original_content
        if raw is None:
            content = envelope.content
            raw = content.encode("utf-8") if isinstance(content, str) else content or b""
        mail_from = envelope.mail_from or ""
        rcpt_tos = tuple(envelope.rcpt_tos)
        path = None
        if self._owner.maildir is not None:
            path = await asyncio.to_thread(
                self._owner._write_eml, self._owner.maildir, mail_from, rcpt_tos, raw
            )
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        self._owner._store(ReceivedMessage(mail_from, rcpt_tos, message, raw, path))
        log.info(
            "accepted %s from %s to %s%s",
            message.get("Message-ID", "(no Message-ID)"),
            mail_from,
            ", ".join(rcpt_tos),
            f" -> {path}" if path else "",
        )
        return "250 2.0.0 OK: queued"


class LocalSmtpServer:
    """An in-process SMTP server on ``host:port`` (``port=0``: a free port, see :attr:`port`).

    * ``maildir``: write every accepted message to ``<maildir>/<time>-<seq>.eml`` (created
      if missing), with ``Return-Path`` and ``X-Envelope-To`` lines prepended.
    * ``refuse_recipients``: a regular expression; recipients it matches (``re.search``)
      get ``550`` at RCPT. A message whose recipients are all refused is not delivered.
    * ``fail_first``: answer ``451`` at DATA to the first N messages.
    * ``credentials``: login -> password; when given, AUTH is required before MAIL.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2525,
        *,
        maildir: str | os.PathLike[str] | None = None,
        refuse_recipients: str | re.Pattern[str] | None = None,
        fail_first: int = 0,
        credentials: Mapping[str, str] | None = None,
        ready_timeout: float = 5.0,
    ) -> None:
        if fail_first < 0:
            raise ValueError("fail_first must not be negative")
        self.host = host
        self._requested_port = port
        self._port = port
        self.maildir = Path(maildir) if maildir is not None else None
        self._refuse = re.compile(refuse_recipients) if refuse_recipients is not None else None
        self._fail_first = fail_first
        self._credentials = dict(credentials) if credentials is not None else None
        self._ready_timeout = ready_timeout
        self._lock = threading.Lock()
        self._received: list[ReceivedMessage] = []
        self._data_attempts = 0
        self._sequence = itertools.count(1)
        self._controller: Controller | None = None

    def __repr__(self) -> str:
        state = "running" if self._controller is not None else "stopped"
        return f"LocalSmtpServer({self.host}:{self._port}, {state})"

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The port it listens on (the chosen one once started with ``port=0``)."""
        return self._port

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("LocalSmtpServer is already running")
        port = free_port(self.host) if self._requested_port == 0 else self._requested_port
        _ensure_bindable(self.host, port)
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
        smtp_options: dict[str, Any] = {"server_hostname": SERVER_NAME}
        if self._credentials is not None:
            smtp_options.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=False
            )
        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=port,
            ready_timeout=self._ready_timeout,
            **smtp_options,
        )
        controller.start()
        self._controller = controller
        self._port = port
        log.info("local SMTP server listening on %s:%d", self.host, port)

    def stop(self) -> None:
        """Stop listening; received messages stay readable. Stopping twice is harmless."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- inspection

    @property
    def received(self) -> list[ReceivedMessage]:
        """Accepted messages with their envelopes, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    @property
    def messages(self) -> list[EmailMessage]:
        """Accepted messages, oldest first (a copy)."""
        return [item.message for item in self.received]

    @property
    def data_attempts(self) -> int:
        """How many messages reached DATA, including those answered with 451."""
        with self._lock:
            return self._data_attempts

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """Block until at least ``count`` messages arrived; ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if len(messages) >= count:
                return messages
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{len(messages)} of {count} message(s) arrived within {timeout:g}s"
                )
            time.sleep(0.01)

    # ------------------------------------------------------ handler callbacks

    def refuses(self, address: str) -> bool:
        return self._refuse is not None and self._refuse.search(address) is not None

    def _take_failure(self) -> bool:
        with self._lock:
            self._data_attempts += 1
            return self._data_attempts <= self._fail_first

    def _store(self, item: ReceivedMessage) -> None:
        with self._lock:
            self._received.append(item)

    def _write_eml(
        self, directory: Path, mail_from: str, rcpt_tos: Sequence[str], raw: bytes
    ) -> Path:
        with self._lock:
            seq = next(self._sequence)
        name = f"{time.time_ns()}-{os.getpid()}-{seq:06d}.eml"
        envelope = f"Return-Path: <{mail_from}>\r\nX-Envelope-To: {', '.join(rcpt_tos)}\r\n"
        target = directory / name
        partial = directory / f".{name}.tmp"
        partial.write_bytes(envelope.encode("utf-8") + raw)
        partial.replace(target)  # readers never see a half-written file
        return target

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        expected = self._credentials or {}
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if login in expected and expected[login] == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


# ------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.dunning.adapters.smtp_server",
        description="Local SMTP server for development: keeps every message, delivers none.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", help="write each message to DIR/<time>-<seq>.eml")
    parser.add_argument("--refuse", metavar="REGEX", help="answer 550 to matching recipients")
    parser.add_argument(
        "--fail-first", type=int, default=0, metavar="N", help="answer 451 to the first N messages"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = LocalSmtpServer(
        args.host,
        args.port,
        maildir=args.maildir,
        refuse_recipients=args.refuse,
        fail_first=args.fail_first,
    )
    try:
        server.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 2 if exc.errno == errno.EADDRINUSE else 1
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        server.stop()
    log.info("stopped after accepting %d message(s)", len(server.received))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
