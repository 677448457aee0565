"""Alembic plumbing shared by the services' migration folders.

Each service has `services/<name>/migrations/` with its own revisions and a version table in its
own schema; `env.py` there is three lines that call `run_env`. Migrations run as the service's
own login role, which owns its schema (created by deploy/postgres/bootstrap.sql).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import checked_schema
from shared.eventstore.schema import audit_ddl, drop_audit_ddl, drop_kernel_ddl, kernel_ddl

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str, schema: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.attributes["schema"] = checked_schema(schema or service)
    return cfg


async def upgrade(
    service: str, dsn: str, *, schema: str | None = None, revision: str = "head"
) -> None:
    """Bring a service schema to `revision` from inside a running event loop."""
    await _run(service, dsn, schema, "upgrade", revision)


async def downgrade(
    service: str, dsn: str, *, schema: str | None = None, revision: str = "base"
) -> None:
    await _run(service, dsn, schema, "downgrade", revision)


async def _run(service: str, dsn: str, schema: str | None, name: str, revision: str) -> None:
    cfg = alembic_config(service, schema)
    engine = create_async_engine(dsn)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_command, cfg, name, revision)
    finally:
        await engine.dispose()


def _run_command(connection: Connection, cfg: Config, name: str, revision: str) -> None:
    cfg.attributes["connection"] = connection
    getattr(command, name)(cfg, revision)


def run_env() -> None:
    """Body of every service's migrations/env.py (online mode, on the connection handed in)."""
    cfg = context.config
    schema = cfg.attributes["schema"]
    connection: Connection | None = cfg.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `ar db migrate` (shared.migrations.upgrade)")
    connection.execute(text(f"SET LOCAL search_path TO {checked_schema(schema)}"))
    context.configure(
        connection=connection,
        version_table_schema=schema,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def apply_kernel(op: Any, schema: str) -> None:
    for statement in kernel_ddl(schema):
        op.execute(statement)


def drop_kernel(op: Any, schema: str) -> None:
    for statement in drop_kernel_ddl(schema):
        op.execute(statement)


def apply_audit(op: Any, schema: str) -> None:
    for statement in audit_ddl(schema):
        op.execute(statement)


def drop_audit(op: Any, schema: str) -> None:
    for statement in drop_audit_ddl(schema):
        op.execute(statement)


def set_statistics(op: Any, schema: str, target: int, *columns: str) -> None:
    """ANALYZE's statistics target for `table.column`s: 0 collects none, -1 the server's default.

    For jsonb columns that no query filters on: the events' payloads and the read models' copies
    of an aggregate's state (`document`). Their statistics were up to a third of an events table's
    analyze and four fifths of `credit.accounts`', which autovacuum runs on a core the slowest
    issue calls were waiting for (docs/benchmarks.md, "Kafka's bursts were its JIT compiler")."""
    s = checked_schema(schema)
    for column in columns:
        table, name = (checked_schema(part) for part in column.split("."))
        op.execute(f"ALTER TABLE {s}.{table} ALTER COLUMN {name} SET STATISTICS {int(target)}")


def current_schema() -> str:
    """The schema the running migration targets (a test can point a service at a scratch schema)."""
    return str(context.config.attributes["schema"])
