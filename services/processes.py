"""The services as operating-system processes (uvicorn), started, killed and restarted.

One place for `ar services run`, the benchmarks (which must go through real sockets and real
processes) and the crash tests (which SIGKILL them). Each process listens where its settings say
(`LEDGERLINE_<SERVICE>_HTTP_HOST`/`_HTTP_PORT`) and appends its output to `<log_dir>/<name>.log`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from services.registry import settings_of


def default_log_dir() -> Path:
    return Path(os.environ.get("LEDGERLINE_STATE_DIR", "/var/tmp/ledgerline")) / "logs"  # noqa: S108


@dataclass
class ServiceProcess:
    """One service under uvicorn; `start` again after `kill` is a restart."""

    name: str
    log_dir: Path = field(default_factory=default_log_dir)
    env: Mapping[str, str] | None = None
    detach: bool = False
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        settings = settings_of(self.name)
        return f"http://{settings.http_host}:{settings.http_port}"

    def argv(self) -> list[str]:
        settings = settings_of(self.name)
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"services.{self.name}.api.app:create_app",
            "--host",
            settings.http_host,
            "--port",
            str(settings.http_port),
            "--no-access-log",
        ]

    def start(self) -> None:
        if self.alive:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc = _spawn(self.argv(), self.log_dir / f"{self.name}.log", self.env, self.detach)
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when the machine or the OOM killer takes it."""
        if self.proc is not None and self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if self.proc is None or not self.alive:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def problem(self) -> str | None:
        """None when /readyz answers 200, else why not."""
        if self.proc is not None and not self.alive:
            return f"exited with {self.proc.returncode}"
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=2)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if response.status_code == 200:
            return None
        try:
            return "; ".join(response.json().get("problems", [])) or str(response.status_code)
        except ValueError:
            return str(response.status_code)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts connections there (another instance would answer for ours)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_ready(processes: Iterable[ServiceProcess], timeout: float) -> dict[str, str]:
    """Poll until every process is ready or `timeout` seconds pass; returns the problems left."""
    deadline = time.monotonic() + timeout
    pending = {p.name: p for p in processes}
    problems = dict.fromkeys(pending, "not started")
    while pending:
        for name, process in list(pending.items()):
            problem = process.problem()
            if problem is None:
                del pending[name], problems[name]
            else:
                problems[name] = problem
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    return problems


def smtp_server(log_dir: Path, detach: bool = False) -> subprocess.Popen[bytes]:
    """The project's local SMTP server; dunning's e-mail lands in `<state>/mail` as .eml files."""
    argv = [
        sys.executable,
        "-m",
        "services.dunning.adapters.smtp_server",
        "--port",
        os.environ.get("LEDGERLINE_DUNNING_SMTP_PORT", "2525"),
        "--maildir",
        str(log_dir.parent / "mail"),
    ]
    log_dir.mkdir(parents=True, exist_ok=True)
    return _spawn(argv, log_dir / "smtp.log", None, detach)


def sandbox_gateway(
    log_dir: Path, detach: bool = False, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The sandbox payment gateway the portal hands card payments to (port 8107): it stands in
    for Stripe locally and calls the payments service's signed webhook."""
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "services.portal.gateway.sandbox:app",
        "--host",
        os.environ.get("LEDGERLINE_SANDBOX_GATEWAY_HTTP_HOST", "127.0.0.1"),
        "--port",
        os.environ.get("LEDGERLINE_SANDBOX_GATEWAY_HTTP_PORT", "8107"),
        "--no-access-log",
    ]
    log_dir.mkdir(parents=True, exist_ok=True)
    return _spawn(argv, log_dir / "sandbox-gateway.log", env, detach)


def _spawn(
    argv: list[str], log_path: Path, env: Mapping[str, str] | None, detach: bool
) -> subprocess.Popen[bytes]:
    log: IO[bytes] = open(log_path, "ab")
    try:
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
            start_new_session=detach,
        )
    finally:
        log.close()
