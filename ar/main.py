"""`ar` command line: migrations, Kafka topics, dev tokens, running the services, projections;
events, audit, dlq and ledger live in their own modules."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ar import audit, dlq, events, ledger, portal
from ar.common import console, progress, selected, service_settings
from services.processes import ServiceProcess, sandbox_gateway, smtp_server, wait_ready
from shared.auth import mint_token
from shared.logs import setup_logging
from shared.messaging.kafka import ensure_topics
from shared.migrations import upgrade
from shared.topics import all_event_topics

app = typer.Typer(help="Ledgerline operations.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
kafka_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
auth_app = typer.Typer(help="Development tokens.", no_args_is_help=True)
services_app = typer.Typer(help="Run and check the services.", no_args_is_help=True)
projections_app = typer.Typer(help="The reporting projections.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(kafka_app, name="kafka")
app.add_typer(auth_app, name="auth")
app.add_typer(services_app, name="services")
app.add_typer(projections_app, name="projections")
app.add_typer(events.app, name="events")
app.add_typer(audit.app, name="audit")
app.add_typer(dlq.app, name="dlq")
app.add_typer(ledger.app, name="ledger")
app.add_typer(portal.app, name="portal")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LOG_LEVELS)}")
    return value.upper()


@app.callback()
def main(
    log_level: str = typer.Option(
        "WARNING",
        envvar="LEDGERLINE_LOG_LEVEL",
        callback=_log_level,
        help="What the commands log to stderr, as JSON lines like the services'.",
    ),
) -> None:
    """Ledgerline operations."""
    if not logging.getLogger().handlers:  # a program of its own; called from one (tests), its
        setup_logging("ar", log_level)  # host's logging is left as it is


@db_app.command("migrate")
def db_migrate(
    service: list[str] = typer.Option(None, "--service", "-s", help="Only these services."),
) -> None:
    """Upgrade each service's schema to the latest revision, as the service's own role."""
    for name in selected(service):
        settings = service_settings(name)
        asyncio.run(upgrade(name, settings.dsn()))
        console.print(f"[green]migrated[/] {name}")


@kafka_app.command("topics")
def kafka_topics(
    partitions: int = typer.Option(3, min=1, max=256),
    replication_factor: int = typer.Option(
        1, min=1, max=16, help="1 on the local single broker; 3 on a production cluster."
    ),
) -> None:
    """Create every event topic and its DLQ (infinite retention) if missing; existing topics
    are left as they are."""
    settings = service_settings("invoice").kafka
    created = asyncio.run(
        ensure_topics(
            settings,
            all_event_topics(),
            partitions=partitions,
            replication_factor=replication_factor,
        )
    )
    console.print(f"[green]topics ready[/] ({len(created)} created)")


@auth_app.command("token")
def auth_token(
    tenant: str = typer.Option(..., help="Tenant the token is scoped to."),
    scope: list[str] = typer.Option(..., "--scope", help="Repeat for each scope."),
    subject: str = typer.Option("dev-client", help="Client or user id (the event actor)."),
    ttl: int = typer.Option(3600, help="Seconds until expiry.", min=1, max=7 * 24 * 3600),
) -> None:
    """Mint a development bearer token signed with the local key (never for production)."""
    settings = service_settings("invoice").auth
    typer.echo(
        mint_token(settings, subject=subject, tenant_id=tenant, scopes=scope, ttl_seconds=ttl)
    )


@services_app.command("run")
def services_run(
    service: list[str] = typer.Option(None, "--service", "-s"),
    ready_timeout: float = typer.Option(60.0, help="Seconds to wait for every /readyz."),
    detach: bool = typer.Option(False, help="Start, wait until ready, then return."),
) -> None:
    """Start the services with uvicorn, wait until ready, print their URLs; Ctrl-C stops them."""
    processes = [ServiceProcess(name, detach=detach) for name in selected(service)]
    log_dir = processes[0].log_dir
    for process in processes:
        process.start()
    helpers = []  # the local stand-ins for the outside world: an SMTP server, a card gateway
    if "dunning" in selected(service) and os.environ.get("LEDGERLINE_LOCAL_SMTP", "1") != "0":
        helpers.append(smtp_server(log_dir, detach))
    if "portal" in selected(service) and os.environ.get("LEDGERLINE_LOCAL_GATEWAY", "1") != "0":
        helpers.append(sandbox_gateway(log_dir, detach))
    problems = wait_ready(processes, ready_timeout)
    table = Table(title="Ledgerline services")
    for column in ("service", "url", "docs", "state"):
        table.add_column(column)
    for process in processes:
        table.add_row(
            process.name, process.url, f"{process.url}/docs", problems.get(process.name, "ready")
        )
    Console().print(table)

    def stop_all() -> None:
        for process in processes:
            process.stop()
        for helper in helpers:
            helper.terminate()

    if problems:
        stop_all()
        console.print(f"[red]not ready:[/] {problems} (logs in {log_dir})")
        raise typer.Exit(1)
    if detach:
        return
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop and all(p.alive for p in processes):
        time.sleep(0.5)
    stop_all()


@services_app.command("check")
def services_check(
    service: list[str] = typer.Option(None, "--service", "-s"),
    timeout: float = typer.Option(5.0),
) -> None:
    """Exit 0 when every selected service's /readyz answers 200."""
    problems = wait_ready([ServiceProcess(name) for name in selected(service)], timeout)
    for name in selected(service):
        console.print(f"{name}: {problems.get(name, 'ready')}")
    if problems:
        raise typer.Exit(1)


@projections_app.command("rebuild")
def projections_rebuild(
    verify_only: bool = typer.Option(
        False, "--verify-only", help="Rebuild and compare with the live tables; do not swap."
    ),
    batch_size: int = typer.Option(2000, min=1, max=50_000, help="Events per transaction."),
) -> None:
    """Replay every reporting topic from offset 0 into shadow tables, then swap them in
    atomically (live reads keep working). Prints the checksums of both sides."""
    from services.reporting.application.rebuild import Rebuild, RebuildError
    from services.reporting.consumers import TOPICS
    from shared.db import make_engine

    settings = service_settings("reporting")

    async def rebuild(report: Callable[[int, int], None]) -> Any:
        engine = make_engine(settings.dsn(), pool_size=2, application_name="ar-projections")
        try:
            job = Rebuild(
                engine,
                settings.kafka,
                settings.schema_name,
                TOPICS,
                batch_size=batch_size,
                progress=report,
            )
            return await job.run(swap=not verify_only)
        finally:
            await engine.dispose()

    with progress() as bar:
        task = bar.add_task("replaying events", total=None)
        try:
            result = asyncio.run(
                rebuild(lambda done, total: bar.update(task, completed=done, total=total))
            )
        except RebuildError as exc:
            console.print(f"[red]rebuild failed:[/] {exc}")
            raise typer.Exit(1) from None
    table = Table(title="Reporting projections")
    for column in ("table", "live", "rebuilt"):
        table.add_column(column)
    for name, rebuilt in result.rebuilt_checksums.items():
        table.add_row(name, result.live_checksums.get(name, "-"), rebuilt)
    Console().print(table)
    console.print(
        f"{result.records} events read, {result.applied} applied, "
        f"{result.skipped} of types the projection ignores, "
        f"{result.undecodable} undecodable, {result.failed} failed, {result.seconds:.1f}s"
    )
    if result.differences:
        verb = "replaced" if result.swapped else "would be replaced"
        console.print(
            f"[yellow]live tables differed from the events[/] ({verb}): {result.differences}"
        )
    console.print(
        "[green]swapped in[/]" if result.swapped else "verify only: live tables unchanged"
    )
    if verify_only and result.differences:
        raise typer.Exit(3)


if __name__ == "__main__":
    app()
