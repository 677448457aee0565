"""`ar dlq`: the messages consumer groups gave up on — list, inspect, re-drive, discard."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ar.common import console, engines, operator, selected, service_settings
from services.registry import consumer_specs
from shared.audit import dlq
from shared.consumer import dlq_headers
from shared.db import make_sessionmaker
from shared.errors import LedgerlineError

app = typer.Typer(help="Dead letters: list, inspect, re-drive, discard.", no_args_is_help=True)


def _ref(ref: str) -> tuple[str, int]:
    """`payments:12` -> ("payments", 12): a dead letter's id is per service."""
    service, _, number = ref.partition(":")
    try:
        service_settings(service)
        return service, int(number)
    except (ValueError, typer.BadParameter):
        raise typer.BadParameter(f"a dead letter is SERVICE:ID (as listed), not {ref!r}") from None


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/]")
    return typer.Exit(1)


@app.command("list")
def list_command(
    service: list[str] = typer.Option(None, "--service", "-s"),
    group: str = typer.Option(None, help="Only this consumer group."),
    status: str = typer.Option("open", help="open, redriven, discarded or all."),
    limit: int = typer.Option(200, min=1, max=100_000, help="Per service, newest first."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Dead letters of the selected services (open ones by default), newest first."""
    names = selected(service)

    async def run() -> list[tuple[str, dlq.DeadLetter]]:
        found = []
        async with engines(names, "dlq") as opened:
            for name, engine in opened.items():
                async with engine.connect() as conn:
                    letters = await dlq.list_dead_letters(
                        conn,
                        service_settings(name).schema_name,
                        status=None if status == "all" else status,
                        group=group,
                        limit=limit,
                        newest_first=True,
                    )
                found += [(name, letter) for letter in letters]
        return found

    try:
        found = asyncio.run(run())
    except LedgerlineError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([_as_dict(n, d) for n, d in found], indent=2, default=str))
        return
    table = Table(title=f"Dead letters ({status})")
    for column in ("ref", "group", "event", "origin", "failed at", "error", "status"):
        table.add_column(column)
    for name, d in found:
        table.add_row(
            f"{name}:{d.id}",
            d.consumer_group,
            d.event_type or "(undecodable)",
            f"{d.topic}[{d.kafka_partition}]@{d.kafka_offset}",
            f"{d.failed_at:%Y-%m-%d %H:%M:%S}",
            f"{d.error_type}: {d.error_message[:60]}",
            d.status,
        )
    Console().print(table)


def _as_dict(service: str, d: dlq.DeadLetter) -> dict[str, Any]:
    return {"ref": f"{service}:{d.id}", **d.__dict__}


@app.command("inspect")
def inspect(ref: str = typer.Argument(..., help="SERVICE:ID as listed.")) -> None:
    """One dead letter in full: the register row, the DLQ headers and the message itself."""
    name, letter_id = _ref(ref)
    settings = service_settings(name)

    async def run() -> dict[str, Any]:
        async with engines([name], "dlq") as opened, opened[name].connect() as conn:
            letter = await dlq.get_dead_letter(conn, settings.schema_name, letter_id)
        record = await dlq.fetch_message(settings.kafka, letter)
        try:
            message: Any = json.loads(record.value or b"")
        except ValueError:
            message = (record.value or b"").decode(errors="replace")
        return {
            **_as_dict(name, letter),
            "headers": dlq_headers(record),
            "message": message,
        }

    try:
        typer.echo(json.dumps(asyncio.run(run()), indent=2, default=str))
    except LedgerlineError as exc:
        raise _fail(exc) from None


@app.command("redrive")
def redrive(
    refs: list[str] = typer.Argument(None, help="SERVICE:ID … as listed."),
    all_open: bool = typer.Option(False, "--all", help="Every open dead letter selected."),
    service: list[str] = typer.Option(None, "--service", "-s", help="With --all."),
    group: str = typer.Option(None, help="With --all: only this consumer group."),
    actor: str = typer.Option(None, help="Who re-drives (default: the OS user)."),
) -> None:
    """Apply dead letters again with their group's handler, once the cause is fixed.
    Idempotent: re-driving twice, or an event the group processed since, changes nothing."""
    if bool(refs) == all_open:
        raise typer.BadParameter("give dead letter refs or --all, not both")
    who = operator(actor)

    async def run() -> int:
        targets = [_ref(r) for r in refs or []]
        names = sorted({n for n, _ in targets}) if targets else selected(service)
        failures = 0
        async with engines(names, "dlq") as opened:
            for name in names:
                settings = service_settings(name)
                sessions = make_sessionmaker(opened[name])
                if all_open:
                    async with sessions() as s:
                        letters = await dlq.list_dead_letters(s, settings.schema_name, group=group)
                    targets += [(name, d.id) for d in letters]
                handlers = {spec.group_id: spec.handler for spec in consumer_specs(name, settings)}
                for _, letter_id in (t for t in targets if t[0] == name):
                    try:
                        outcome = await dlq.redrive(
                            sessions,
                            settings.schema_name,
                            letter_id,
                            handlers=handlers,
                            kafka=settings.kafka,
                            actor=who,
                        )
                        console.print(f"{name}:{letter_id}: {outcome}")
                    except (dlq.RedriveFailed, LedgerlineError) as exc:
                        failures += 1
                        console.print(f"[red]{name}:{letter_id}: {exc}[/]")
        return failures

    if asyncio.run(run()):
        raise typer.Exit(1)


@app.command("discard")
def discard(
    ref: str = typer.Argument(..., help="SERVICE:ID as listed."),
    reason: str = typer.Option(..., help="Why it will never be applied (kept on record)."),
    actor: str = typer.Option(None, help="Who discards (default: the OS user)."),
) -> None:
    """Close a dead letter without applying it; the reason, the operator and the time are kept."""
    name, letter_id = _ref(ref)
    settings = service_settings(name)

    async def run() -> dlq.DeadLetter:
        async with engines([name], "dlq") as opened:
            return await dlq.discard(
                make_sessionmaker(opened[name]),
                settings.schema_name,
                letter_id,
                reason=reason,
                actor=operator(actor),
            )

    try:
        letter = asyncio.run(run())
    except LedgerlineError as exc:
        raise _fail(exc) from None
    console.print(f"{ref}: discarded by {letter.resolved_by}: {letter.resolution}")
