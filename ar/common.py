"""What the `ar` command groups share: service selection, engines, times, the operator."""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry import SERVICES, settings_of
from shared.db import make_engine
from shared.settings import ServiceSettings

console = Console(stderr=True)


def service_settings(name: str) -> ServiceSettings:
    try:
        return settings_of(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def selected(service: list[str] | None) -> list[str]:
    for name in service or ():
        service_settings(name)
    return list(service or SERVICES)


@asynccontextmanager
async def engines(names: list[str], purpose: str) -> AsyncIterator[dict[str, AsyncEngine]]:
    """One small engine per service, each as the service's own role (it owns its schema)."""
    opened = {
        name: make_engine(
            service_settings(name).dsn(), pool_size=2, application_name=f"ar-{purpose}"
        )
        for name in names
    }
    try:
        yield opened
    finally:
        for engine in opened.values():
            await engine.dispose()


def progress(*, transient: bool = False) -> Progress:
    """The progress bar of long `ar` work, on stderr so stdout stays the command's output."""
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeRemainingColumn(), console=console, transient=transient)


def instant(value: str | None, *, end_of_day: bool = False) -> datetime | None:
    """ISO date or date-time; no zone means UTC. A bare date is its start (or, for an as-of
    view, its end: "as of 1 March" includes everything recorded on 1 March)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date or date-time: {value!r}") from None
    if len(value) == 10 and end_of_day:  # a bare date
        parsed = datetime.combine(date.fromisoformat(value), time.max)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def operator(actor: str | None) -> str:
    """Who is doing it, for the record: `--actor` or the OS user."""
    if actor:
        return actor
    try:
        return f"user:{getpass.getuser()}"
    except Exception:
        return "user:operator"
