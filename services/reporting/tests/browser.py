"""Render a page in Debian's headless Chromium, for tests of the reporting dashboard.

Not a test module: a helper the dashboard test imports. `render(url)` returns the page's DOM
after its scripts ran, optionally with a PNG screenshot.

What was checked by experiment (Chromium 156, Debian bookworm, /usr/bin/chromium wrapper):

* `--headless --dump-dom URL` alone prints the DOM at the load event, before any `fetch()` has
  answered (the dashboard still said data-state="loading").
* Adding `--virtual-time-budget=MS` is enough. Virtual time is paused while network fetches
  are pending, so same-origin fetches to a localhost server complete and their `.then` handlers
  run before the DOM is printed, even when the server takes longer than the budget. A 4 s
  server delay with a 1 s budget still gave data-state="ready" after about 4.8 s of wall time.
  The budget only bounds timers and animations (setTimeout etc.), which it fast-forwards. No
  extra flag (such as --run-all-compositor-stages-before-draw) and no DevTools protocol
  session is needed.
* `--screenshot=PATH` honours the budget the same way, but it is a separate Chromium run.
  Headless mode cannot dump the DOM and take a screenshot in one go, so the page loads twice.
* Chromium exits with status 0 even when the page fails to load. stdout is then empty and
  stderr has "Page load failed: net::ERR_CONNECTION_REFUSED". A screenshot it cannot write only
  logs "Failed to write file". Both are turned into RuntimeError here.
* stderr is always noisy in a container: D-Bus connection errors, and a shell warning from
  the wrapper's /etc/chromium.d/dev-shm snippet. These lines are harmless and are dropped from
  the error message's tail.
* `--no-sandbox` is required when running as root (CI). `--disable-dev-shm-usage` avoids
  crashes when /dev/shm is small (as in Docker).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"

_TIMEOUT_S = 60
_STDERR_TAIL_LINES = 25
# Chromium logs these (and still exits 0) when the navigation or the screenshot failed.
_FAILURE_MARKERS = ("Page load failed", "Failed to write file")
# Harmless stderr noise in containers, dropped from error messages.
_NOISE_MARKERS = ("dbus/", "unexpected operator")


def chromium_available() -> bool:
    """True when the Chromium binary exists and is executable."""
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def render(
    url: str,
    *,
    screenshot: Path | None = None,
    window: tuple[int, int] = (1280, 1000),
    budget_ms: int = 10_000,
) -> str:
    """The page's DOM after its scripts ran (chromium --headless --dump-dom with
    --virtual-time-budget), and optionally a PNG screenshot (a second chromium run with
    --screenshot=...). Runs with a throwaway --user-data-dir (tempfile), --no-sandbox (CI runs as
    root), --disable-gpu, --hide-scrollbars, --no-first-run, --disable-dev-shm-usage,
    --disable-extensions; a 60 s subprocess timeout; raises RuntimeError with chromium's stderr
    tail when it fails."""
    width, height = window
    common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-crash-reporter",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={budget_ms}",
    ]
    dom = _run_chromium([*common, "--dump-dom", url], what=f"dump the DOM of {url}")
    if not dom.strip():
        raise RuntimeError(f"chromium printed no DOM for {url}")
    if screenshot is not None:
        target = screenshot.resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # never mistake an old file for this run's screenshot
        _run_chromium([*common, f"--screenshot={target}", url], what=f"screenshot {url}")
        if not target.is_file() or target.stat().st_size == 0:
            raise RuntimeError(f"chromium wrote no screenshot to {target}")
    return dom


def _run_chromium(args: list[str], *, what: str) -> str:
    """Run chromium with a fresh profile and return its stdout. Raises RuntimeError on a non-zero
    exit, a timeout, or a failure that Chromium only logs."""
    with tempfile.TemporaryDirectory(
        prefix="ledgerline-chromium-", ignore_cleanup_errors=True
    ) as profile:
        cmd = [CHROMIUM, f"--user-data-dir={profile}", *args]
        # Own process group, so a timeout can end the renderer/GPU/zygote children too.
        proc = subprocess.Popen(  # noqa: S603 - fixed binary, arguments built here
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = proc.communicate()
            raise RuntimeError(
                f"chromium did not finish within {_TIMEOUT_S} s trying to {what}\n{_tail(stderr)}"
            ) from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"chromium exited with status {proc.returncode} trying to {what}\n{_tail(stderr)}"
        )
    if any(marker in stderr for marker in _FAILURE_MARKERS):
        raise RuntimeError(f"chromium failed to {what}\n{_tail(stderr)}")
    return stdout


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(stderr: str) -> str:
    lines = [
        line
        for line in stderr.splitlines()
        if line.strip() and not any(noise in line for noise in _NOISE_MARKERS)
    ]
    if not lines:
        return "(chromium wrote nothing useful to stderr)"
    return "chromium stderr (last lines):\n" + "\n".join(lines[-_STDERR_TAIL_LINES:])
