"""Each of the five services boots against the real stack, as its own database role."""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services import SERVICE_PORTS
from shared.db import make_engine
from shared.migrations import upgrade
from shared.settings import KafkaSettings, ServiceSettings
from shared.web.runtime import ServiceRuntime

pytestmark = pytest.mark.integration


def settings_of(name: str) -> ServiceSettings:
    module = importlib.import_module(f"services.{name}.config")
    settings: ServiceSettings = getattr(module, f"{name.capitalize()}Settings")()
    return settings


@pytest.fixture(params=list(SERVICE_PORTS))
async def service_app(
    request: pytest.FixtureRequest, kafka_settings: KafkaSettings
) -> AsyncIterator[FastAPI]:
    name: str = request.param
    settings = settings_of(name)
    await upgrade(name, settings.dsn())  # idempotent: already at head after `ar db migrate`
    module = importlib.import_module(f"services.{name}.api.app")
    app: FastAPI = module.create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_service_is_healthy_ready_and_documented(service_app: FastAPI) -> None:
    # Start-up's objects are out of the cyclic collector's sight (freeze_startup_heap).
    assert gc.get_freeze_count() > 0
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service_app), base_url="http://svc"
    ) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["problems"] == []
        spec = (await client.get("/openapi.json")).json()
        assert spec["info"]["title"].startswith("Ledgerline")
        assert "/readyz" in spec["paths"]


@pytest.mark.parametrize("name", list(SERVICE_PORTS))
async def test_service_role_owns_its_schema_and_nothing_else(name: str) -> None:
    settings = settings_of(name)
    engine = make_engine(settings.dsn(), pool_size=1)
    try:
        async with engine.connect() as conn:
            tables = set(
                (
                    await conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": name}
                    )
                ).scalars()
            )
            assert {"events", "inbox", "idempotency_keys", "relay_checkpoints"} <= tables
            other = next(s for s in SERVICE_PORTS if s != name)
            with pytest.raises(DBAPIError, match="permission denied"):
                await conn.execute(text(f"SELECT 1 FROM {other}.events LIMIT 1"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("name", list(SERVICE_PORTS))
async def test_analyze_collects_no_statistics_on_payloads_and_documents(name: str) -> None:
    """Every events.payload and every read model's `document` (jsonb nobody filters on) has a
    statistics target of 0; other columns keep the default. Statistics collected before the
    setting stay in pg_stats (only a superuser could delete them), unused, so the setting itself
    is what is checked."""
    settings = settings_of(name)
    await upgrade(name, settings.dsn())
    engine = make_engine(settings.dsn(), pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    """SELECT c.relname || '.' || a.attname AS col, a.attstattarget
                       FROM pg_attribute a
                       JOIN pg_class c ON c.oid = a.attrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = :schema AND c.relkind = 'r' AND a.attnum > 0
                         AND a.attname IN ('payload', 'document', 'stream_id')"""
                ),
                {"schema": name},
            )
            targets = {row.col: row.attstattarget for row in rows}
    finally:
        await engine.dispose()
    skipped = {col for col in targets if col.endswith((".payload", ".document"))}
    assert "events.payload" in skipped
    assert {col: targets[col] for col in skipped} == dict.fromkeys(skipped, 0)
    assert targets["events.stream_id"] == -1


async def test_bi_reader_reads_reporting_only_and_cannot_write() -> None:
    engine = make_engine(
        ServiceSettings(database_url="")
        .dsn()
        .replace("service_svc:service_svc", "bi_reader:bi_reader"),
        pool_size=1,
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT count(*) FROM reporting.events"))
            await conn.rollback()
            with pytest.raises(DBAPIError, match="permission denied"):
                await conn.execute(text("SELECT 1 FROM invoice.events LIMIT 1"))
            await conn.rollback()
            with pytest.raises(DBAPIError, match=r"read-only|permission denied"):
                await conn.execute(text("CREATE TABLE reporting.bi_scratch (x int)"))
    finally:
        await engine.dispose()


async def test_a_service_reuses_its_connections_under_its_usual_concurrency() -> None:
    """A pool smaller than a process's concurrency closes each connection opened beyond it as
    soon as it is returned: with 10, the issue benchmark's 16 clients opened 9 connections a
    second, about 10 ms of CPU each and a cold statement cache. Twenty-four units of work at
    once (16 requests, the relay, the sealer, the consumers), twice: the second round finds
    every connection it needs already open."""
    runtime = ServiceRuntime.create(settings_of("invoice"))
    at_once = 24

    async def backend() -> int:
        async with runtime.sessions() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid(), pg_sleep(0.05)"))).one()
            return int(pid[0])

    try:
        first = set(await asyncio.gather(*(backend() for _ in range(at_once))))
        second = set(await asyncio.gather(*(backend() for _ in range(at_once))))
    finally:
        await runtime.engine.dispose()
    assert len(first) == at_once  # each held its own connection
    assert second <= first, f"{len(second - first)} connections opened again"
