"""`ar events`: replay events for audit, state as of an instant, and causal traces."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import IO, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.tree import Tree

from ar.common import console, engines, instant, progress, selected, service_settings
from ar.views import customer_view, invoice_view
from services.registry import SERVICES
from shared.audit.replay import (
    CsvWriter,
    EventFilter,
    count_events,
    event_record,
    kafka_events,
    store_events,
)
from shared.audit.trace import TracedEvent, trace
from shared.events.envelope import EventEnvelope
from shared.topics import SERVICE_AGGREGATES, event_topic

app = typer.Typer(help="Replay events for audit; trace a request across services.")


class Source(StrEnum):
    store = "store"
    kafka = "kafka"


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@app.command("replay")
def replay(
    service: list[str] = typer.Option(None, "--service", "-s", help="Only these services."),
    tenant: str = typer.Option(None, help="Only this tenant's events."),
    all_tenants: bool = typer.Option(False, "--all-tenants", help="Every tenant's events."),
    stream: str = typer.Option(None, help="One stream, e.g. invoice-<uuid>."),
    customer: str = typer.Option(None, help="One customer's events (or, with --as-of, state)."),
    event_type: list[str] = typer.Option(None, "--type", help="Only these event types."),
    since: str = typer.Option(None, help="Recorded at or after (ISO date/time, UTC if no zone)."),
    until: str = typer.Option(None, help="Recorded before."),
    source: Source = typer.Option(Source.store, help="The services' event stores, or Kafka."),
    fmt: Format = typer.Option(Format.jsonl, "--format", help="JSON lines or CSV."),
    output: typer.FileTextWrite = typer.Option(None, "--output", "-o", help="Default: stdout."),
    as_of: str = typer.Option(
        None, "--as-of", help="Print the state of --invoice or --customer at this instant."
    ),
    invoice: str = typer.Option(None, help="With --as-of: the invoice id."),
) -> None:
    """Events as recorded, filtered, in the order each service stored them — or with --as-of, the state
    of one invoice or customer rebuilt from the events recorded up to that instant."""
    if (tenant is None) == (not all_tenants):
        raise typer.BadParameter("give exactly one of --tenant or --all-tenants")
    out: IO[str] = output or sys.stdout
    if as_of is not None:
        if tenant is None or (invoice is None) == (customer is None):
            raise typer.BadParameter("--as-of needs --tenant and one of --invoice or --customer")
        cut = instant(as_of, end_of_day=True)
        assert cut is not None
        view = asyncio.run(_state_as_of(tenant, cut, invoice, customer))
        out.write(json.dumps(view, indent=2) + "\n")
        return
    if invoice is not None:
        raise typer.BadParameter("--invoice only goes with --as-of; use --stream invoice-<id>")
    event_filter = EventFilter(
        tenant_id=tenant,
        stream_id=stream,
        customer_id=customer,
        event_types=tuple(event_type or ()),
        since=instant(since),
        until=instant(until),
    )
    names = selected(service)
    with progress(transient=True) as bar:
        task = bar.add_task(f"reading events from {source.value}", total=None)
        written = asyncio.run(_replay(names, event_filter, source, _writer(fmt, out), bar, task))
    console.print(f"{written} events")


def _writer(fmt: Format, out: IO[str]) -> Callable[[dict[str, Any]], None]:
    if fmt is Format.csv:
        return CsvWriter(out).write

    def write_line(record: dict[str, Any]) -> None:
        out.write(json.dumps(record, separators=(",", ":")) + "\n")

    return write_line


async def _replay(
    names: list[str],
    event_filter: EventFilter,
    source: Source,
    write: Callable[[dict[str, Any]], None],
    bar: Progress,
    task: Any,
) -> int:
    written = 0
    if source is Source.kafka:
        topics = {
            event_topic(name, aggregate): name
            for name in names
            for aggregate in SERVICE_AGGREGATES[name]
        }
        kafka = service_settings(names[0]).kafka
        async for message in kafka_events(
            kafka,
            list(topics),
            on_total=lambda n: bar.update(task, total=n),
            on_read=lambda n: bar.advance(task, n),
        ):
            if message.envelope is None or not event_filter.matches(message.envelope):
                continue
            write(
                event_record(
                    topics[message.topic],
                    message.envelope,
                    kafka={
                        "topic": message.topic,
                        "partition": message.partition,
                        "offset": message.offset,
                    },
                )
            )
            written += 1
        return written
    async with engines(names, "replay") as opened:
        totals = {}
        for name, engine in opened.items():
            async with engine.connect() as conn:
                totals[name] = await count_events(
                    conn, service_settings(name).schema_name, event_filter
                )
        bar.update(task, total=sum(totals.values()))
        for name, engine in opened.items():
            async with engine.connect() as conn:
                schema = service_settings(name).schema_name
                async for envelope in store_events(conn, schema, event_filter):
                    write(event_record(name, envelope))
                    written += 1
                    bar.advance(task)
    return written


async def _state_as_of(
    tenant: str, cut: datetime, invoice: str | None, customer: str | None
) -> dict[str, Any]:
    if invoice is not None:
        try:
            invoice_id = uuid.UUID(invoice)
        except ValueError:
            raise typer.BadParameter(f"not an invoice id: {invoice!r}") from None
        streams = await _read_streams(
            ["invoice"], tenant, cut, EventFilter(stream_id=f"invoice-{invoice_id}")
        )
        events = streams.get(f"invoice-{invoice_id}", [])
        if not events:
            console.print(f"[red]invoice {invoice_id} did not exist at {cut.isoformat()}[/]")
            raise typer.Exit(1)
        return {"as_of": cut.isoformat(), **invoice_view(events)}
    assert customer is not None
    names = [n for n in SERVICES if n != "reporting"]
    streams = await _read_streams(names, tenant, cut, EventFilter(customer_id=customer))
    for stream_id, service in (
        (f"customer-{tenant}:{customer}", "invoice"),
        (f"credit_account-{tenant}:{customer}", "credit"),
        (f"dunning_case-{tenant}:{customer}", "dunning"),
    ):  # these streams are the customer's even where an event names no customer
        streams.update(
            await _read_streams([service], tenant, cut, EventFilter(stream_id=stream_id))
        )
    return customer_view(customer, streams, cut)


async def _read_streams(
    names: list[str], tenant: str, cut: datetime, base: EventFilter
) -> dict[str, list[EventEnvelope]]:
    event_filter = EventFilter(
        tenant_id=tenant, stream_id=base.stream_id, customer_id=base.customer_id, as_of=cut
    )
    streams: dict[str, list[EventEnvelope]] = {}
    async with engines(names, "as-of") as opened:
        for name, engine in opened.items():
            async with engine.connect() as conn:
                schema = service_settings(name).schema_name
                async for envelope in store_events(conn, schema, event_filter):
                    streams.setdefault(envelope.stream_id, []).append(envelope)
    for events in streams.values():
        events.sort(key=lambda e: e.stream_version)
    return streams


@app.command("trace")
def trace_command(
    correlation_id: str = typer.Argument(..., help="The X-Correlation-ID of the request."),
    tenant: str = typer.Option(None, help="Only this tenant's events."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a tree."),
) -> None:
    """Everything one request caused, across services: events, what they caused, and which
    consumer groups took each one in (or dead-lettered it)."""
    try:
        cid = uuid.UUID(correlation_id)
    except ValueError:
        raise typer.BadParameter(f"not a correlation id (UUID): {correlation_id!r}") from None

    async def run() -> Any:
        names = list(SERVICES)
        async with engines(names, "trace") as opened:
            conns = {n: await opened[n].connect() for n in names}
            try:
                schemas = {n: service_settings(n).schema_name for n in names}
                return await trace(conns, schemas, cid, tenant_id=tenant)
            finally:
                for conn in conns.values():
                    await conn.close()

    result = asyncio.run(run())
    if result.events == 0:
        console.print(f"[yellow]no events with correlation id {cid}[/]")
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    tree = Tree(f"correlation {cid}: {result.events} events in {', '.join(result.services)}")
    for root in result.roots:
        _add(tree, root)
    Console().print(tree)


def _add(parent: Tree, node: TracedEvent) -> None:
    e = node.envelope
    branch = parent.add(
        f"{e.recorded_at:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        + f"  [bold]{node.service}[/] {e.event_type}  {e.stream_id} v{e.stream_version}"
        + f"  by {e.actor}"
    )
    for c in node.consumed_by:
        style = "green" if c.outcome == "processed" else "red"
        branch.add(
            f"[{style}]{c.outcome}[/] by {c.consumer_group} ({c.service}) at "
            + f"{c.at:%H:%M:%S.%f}"[:-3]
        )
    for child in node.caused:
        _add(branch, child)
