"""`ar audit`: prove the event stores untouched (hash chain), and seal on demand."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console
from rich.table import Table

from ar.common import console, engines, selected, service_settings
from shared.audit.chain import KINDS, ChainReport, seal_now, verify_chain

app = typer.Typer(help="The event stores' hash chains.", no_args_is_help=True)


def _anchors(expect: list[str], names: list[str]) -> dict[str, dict[int, bytes]]:
    """`--expect invoice=120:ab12…` -> {"invoice": {120: bytes}}."""
    anchors: dict[str, dict[int, bytes]] = {n: {} for n in names}
    for item in expect:
        try:
            service, rest = item.split("=", 1)
            seq, digest = rest.split(":", 1)
            anchors[service][int(seq)] = bytes.fromhex(digest)
        except (ValueError, KeyError):
            raise typer.BadParameter(
                f"--expect takes SERVICE=SEQ:HASH of a selected service, not {item!r}"
            ) from None
    return anchors


@app.command("verify")
def verify(
    service: list[str] = typer.Option(None, "--service", "-s", help="Only these services."),
    expect: list[str] = typer.Option(
        None, "--expect", help="An anchor kept from an earlier run: SERVICE=SEQ:HASH."
    ),
    max_unsealed_age: float = typer.Option(
        None, help="Fail when an event older than this many seconds is still unsealed."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recompute every service's hash chain from its events. Exit 0 when intact, 2 when an
    event or link was changed, deleted or slipped in. Keep the printed anchors elsewhere and
    pass them back with --expect: that also catches a chain rebuilt from scratch."""
    names = selected(service)
    anchors = _anchors(expect or [], names)

    async def run() -> list[ChainReport]:
        reports = []
        async with engines(names, "audit") as opened:
            for name, engine in opened.items():
                async with engine.connect() as conn:
                    reports.append(
                        await verify_chain(
                            conn,
                            service_settings(name).schema_name,
                            anchors=anchors[name],
                            max_unsealed_age_seconds=max_unsealed_age,
                        )
                    )
        return reports

    reports = asyncio.run(run())
    broken = [r for r in reports if not r.intact]
    if as_json:
        typer.echo(json.dumps([_as_dict(r) for r in reports], indent=2))
    else:
        _print(reports)
    if broken:
        raise typer.Exit(2)


def _as_dict(r: ChainReport) -> dict[str, object]:
    return {
        "schema": r.schema,
        "intact": r.intact,
        "links": r.links,
        "anchor": r.head.anchor if r.head else None,
        "unsealed": r.unsealed,
        "oldest_unsealed": r.oldest_unsealed.isoformat() if r.oldest_unsealed else None,
        "problems": [
            {"kind": p.kind, "seq": p.seq, "event_id": p.event_id, "detail": p.detail}
            for p in r.problems
        ],
    }


def _print(reports: list[ChainReport]) -> None:
    table = Table(title="Event hash chains")
    for column in ("schema", "state", "links", "unsealed"):
        table.add_column(column)
    for r in reports:
        state = "[green]intact[/]" if r.intact else f"[red]{len(r.problems)} problems[/]"
        table.add_row(r.schema, state, str(r.links), str(r.unsealed))
    Console().print(table)
    typer.echo("anchors (keep them elsewhere; pass them back with --expect):")
    for r in reports:
        if r.head:
            typer.echo(f"  --expect {r.schema}={r.head.anchor}")
    for r in reports:
        for p in r.problems[:50]:
            where = f"link {p.seq}" if p.seq else "store"
            console.print(
                f"[red]{r.schema}[/] {where}: {p.kind} — {KINDS[p.kind]}"
                + (f"; event {p.event_id}" if p.event_id else "")
                + f" ({p.detail})"
            )
        if len(r.problems) > 50:
            console.print(f"[red]{r.schema}[/]: … {len(r.problems) - 50} more")


@app.command("seal")
def seal(
    service: list[str] = typer.Option(None, "--service", "-s", help="Only these services."),
) -> None:
    """Seal every committed event now (the services do it continuously while they run)."""
    names = selected(service)

    async def run() -> dict[str, int | None]:
        async with engines(names, "audit") as opened:
            return {
                name: await seal_now(engine, service_settings(name).schema_name)
                for name, engine in opened.items()
            }

    for name, n in asyncio.run(run()).items():
        console.print(
            f"{name}: a running service is sealing" if n is None else f"{name}: {n} events sealed"
        )
