"""Helpers for the services' tests (never imported by production code)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import mint_token
from shared.db import make_engine
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload
from shared.messaging.kafka import Publisher, delete_topics, ensure_topics, envelope_headers
from shared.migrations import upgrade
from shared.settings import AuthSettings, KafkaSettings


def bearer(tenant: str, scopes: Iterable[str], subject: str = "erp") -> dict[str, str]:
    """Headers with a development token for `tenant` holding `scopes`."""
    token = mint_token(AuthSettings(), subject=subject, tenant_id=tenant, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def service_engine(
    service: str, dsn: str, *, pool_size: int = 10
) -> AsyncIterator[AsyncEngine]:
    """An engine on the service's schema (migrated to head first), as the service's own role."""
    await upgrade(service, dsn)
    engine = make_engine(dsn, pool_size=pool_size, application_name=f"{service}-tests")
    try:
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def app_client(app: FastAPI, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` in this process, with the app's lifespan (pools, workers) running."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


def envelope_of(
    tenant_id: str,
    payload: EventPayload,
    *,
    stream_id: str,
    customer_id: str | None,
    stream_version: int = 1,
    correlation_id: uuid.UUID | None = None,
) -> EventEnvelope:
    """An event as a consumer receives it from another service's topic."""
    now = datetime.now(UTC)
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=payload.event_type,
        schema_version=payload.schema_version,
        stream_id=stream_id,
        stream_version=stream_version,
        occurred_at=now,
        recorded_at=now,
        tenant_id=tenant_id,
        customer_id=customer_id,
        actor="system:test",
        payload=payload.model_dump(mode="json"),
        correlation_id=correlation_id,
    )


async def publish_envelopes(
    producer: Publisher, topic: str, envelopes: Iterable[EventEnvelope]
) -> None:
    """Put events on a topic as the outbox relay does: keyed by partition key, with the
    envelope headers, in order."""
    for e in envelopes:
        await producer.send_and_wait(
            topic,
            value=e.to_json_bytes(),
            key=e.partition_key.encode(),
            headers=envelope_headers(e),
        )


class HostRoutes(httpx.AsyncBaseTransport):
    """One transport for several in-process apps: ``http://<name>/...`` reaches app ``name``,
    so a service that calls others by base URL can be tested against them without sockets."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        self._apps = apps  # read at each request: apps added later are reachable too

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        app = self._apps.get(request.url.host)
        if app is None:
            raise httpx.ConnectError(f"no app for host {request.url.host}", request=request)
        return await httpx.ASGITransport(app=app).handle_async_request(request)


@contextlib.asynccontextmanager
async def temporary_topics(
    settings: KafkaSettings, topics: Sequence[str], *, partitions: int = 3
) -> AsyncIterator[Sequence[str]]:
    """The topics (and their `.dlq`s) for one test or bench run, deleted when it ends."""
    await ensure_topics(settings, topics, partitions=partitions)
    try:
        yield topics
    finally:
        await delete_topics(settings, topics)


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll `condition` every 20 ms until it holds; fail the test after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
