"""`GET /metrics` of a kernel-built app, read back with the Prometheus text parser."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conftest import admin_dsn
from shared.consumer import MessageContext
from shared.events.envelope import EventEnvelope
from shared.metrics import EVENT_VISIBILITY, observe_applied
from shared.settings import ServiceSettings
from shared.tests.notes_app import bearer, notes_router
from shared.web.app import create_service_app
from shared.web.runtime import ConsumerSpec


def parse(exposition: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(exposition) for s in family.samples]


def matching(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample with that name and labels; 0 when there is none yet (a counter not touched)."""
    found = matching(samples, name, **labels)
    assert len(found) <= 1, found
    return found[0].value if found else 0.0


async def scrape(client: httpx.AsyncClient) -> list[Sample]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return parse(response.text)


def test_observe_applied_lands_in_the_right_bucket() -> None:
    registry = CollectorRegistry()
    registry.register(EVENT_VISIBILITY)
    group = f"g-{uuid.uuid4().hex[:8]}"
    observe_applied(group, [datetime.now(UTC) - timedelta(seconds=3)])
    samples = parse(generate_latest(registry).decode())
    bucket = "ledgerline_event_visibility_seconds_bucket"
    assert value(samples, bucket, group=group, le="2.5") == 0
    assert value(samples, bucket, group=group, le="5.0") == 1
    assert value(samples, bucket, group=group, le="+Inf") == 1
    assert value(samples, "ledgerline_event_visibility_seconds_count", group=group) == 1
    assert 3 <= value(samples, "ledgerline_event_visibility_seconds_sum", group=group) < 4


@pytest.mark.integration
async def test_http_durations_are_labelled_by_route_template_and_status(
    client: httpx.AsyncClient, scratch_schema: str
) -> None:
    created = await client.post(
        "/v1/notes", json={"text": "hi", "customer_id": "c1"}, headers=bearer()
    )
    note_id = created.json()["id"]
    assert (await client.get(f"/v1/notes/{note_id}", headers=bearer())).status_code == 200
    missing = f"note-{uuid.uuid4()}"
    assert (await client.get(f"/v1/notes/{missing}", headers=bearer())).status_code == 404
    raw_404 = f"/v1/nothing-{uuid.uuid4()}"
    assert (await client.get(raw_404)).status_code == 404
    await client.get("/healthz")
    await scrape(client)  # /metrics itself is not recorded either

    samples = await scrape(client)
    count = "ledgerline_http_request_duration_seconds_count"
    mine = matching(samples, count, service=scratch_schema)
    assert {(s.labels["method"], s.labels["route"], s.labels["status"]) for s in mine} == {
        ("POST", "/v1/notes", "201"),
        ("GET", "/v1/notes/{note_id}", "200"),
        ("GET", "/v1/notes/{note_id}", "404"),
        ("GET", "unmatched", "404"),
    }
    assert all(s.value == 1 for s in mine)
    routes = {s.labels.get("route") for s in samples}
    assert raw_404 not in routes and f"/v1/notes/{note_id}" not in routes
    assert "/healthz" not in routes and "/metrics" not in routes


@pytest.mark.integration
async def test_open_dead_letters_per_group_and_a_missing_table_is_skipped(
    client: httpx.AsyncClient, scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as s, s.begin():
        for offset, (group, status) in enumerate(
            [("g-a", "open"), ("g-a", "open"), ("g-a", "discarded"), ("g-b", "open")]
        ):
            await s.execute(
                text(
                    f"""INSERT INTO {scratch_schema}.dead_letters (consumer_group, topic,
                            kafka_partition, kafka_offset, dlq_topic, dlq_partition, dlq_offset,
                            error_type, error_message, attempts, status, resolved_at)
                        VALUES (:group, 't', 0, :offset, 't.dlq', 0, :offset, 'E', 'boom', 4,
                                :status, CASE WHEN :status = 'open' THEN NULL ELSE now() END)"""
                ),
                {"group": group, "offset": offset, "status": status},
            )
    samples = await scrape(client)
    assert value(samples, "ledgerline_dlq_open", service=scratch_schema, group="g-a") == 2
    assert value(samples, "ledgerline_dlq_open", service=scratch_schema, group="g-b") == 1
    assert value(samples, "ledgerline_outbox_backlog", service=scratch_schema) == 0

    async with sessions() as s, s.begin():
        await s.execute(text(f"DROP TABLE {scratch_schema}.dead_letters"))
    samples = await scrape(client)
    assert matching(samples, "ledgerline_dlq_open", service=scratch_schema) == []
    assert matching(samples, "ledgerline_metrics_scrape_errors_total", service=scratch_schema) == []
    assert matching(samples, "ledgerline_relay_leader", service=scratch_schema) == []  # no relay


@pytest.fixture
async def relaying_app(scratch_schema: str, fresh_topic: str) -> AsyncIterator[tuple[FastAPI, str]]:
    """The notes app with its outbox relay publishing to `fresh_topic` and a consumer group
    reading it back."""
    group = f"metrics-{uuid.uuid4().hex[:8]}"

    async def ignore(_s: AsyncSession, _e: EventEnvelope, _c: MessageContext) -> None:
        return None

    settings = ServiceSettings(service_name=scratch_schema, database_url=admin_dsn())
    application = create_service_app(
        settings,
        title="test",
        routers=[notes_router()],
        topic_router=lambda _: fresh_topic,
        consumers=[ConsumerSpec(group, (fresh_topic,), ignore)],
    )
    async with application.router.lifespan_context(application):
        yield application, group


@pytest.mark.integration
async def test_appended_published_backlog_and_consumer_metrics(
    relaying_app: tuple[FastAPI, str], scratch_schema: str, fresh_topic: str
) -> None:
    app, group = relaying_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        before = await scrape(client)
        appended = value(before, "ledgerline_events_appended_total", schema=scratch_schema)
        published = value(before, "ledgerline_events_published_total", schema=scratch_schema)
        n = 5
        for i in range(n):
            r = await client.post(
                "/v1/notes", json={"text": f"n{i}", "customer_id": f"c{i}"}, headers=bearer()
            )
            assert r.status_code == 201, r.text

        after = await scrape(client)
        assert (
            value(after, "ledgerline_events_appended_total", schema=scratch_schema) == appended + n
        )

        deadline = asyncio.get_running_loop().time() + 30
        while True:
            samples = await scrape(client)
            lags = matching(samples, "ledgerline_consumer_lag_messages", group=group)
            done = (
                value(samples, "ledgerline_events_published_total", schema=scratch_schema)
                == published + n
                and value(samples, "ledgerline_outbox_backlog", service=scratch_schema) == 0
                and value(
                    samples, "ledgerline_consumer_messages_total", group=group, outcome="processed"
                )
                == n
                and len(lags) == 3  # every partition fetched at least once
                and all(s.value == 0 for s in lags)
                and value(samples, "ledgerline_chain_unsealed_events", service=scratch_schema)
                == 0  # the chain sealer linked them all
            )
            if done:
                break
            assert asyncio.get_running_loop().time() < deadline, [
                s
                for s in samples
                if scratch_schema in s.labels.values() or group in s.labels.values()
            ]
            await asyncio.sleep(0.2)

    assert {s.labels["topic"] for s in lags} == {fresh_topic}
    assert value(samples, "ledgerline_relay_leader", service=scratch_schema) == 1
    assert value(samples, "ledgerline_dlq_open", service=scratch_schema, group=group) == 0
    for outcome in ("duplicates", "dead_lettered"):
        assert (
            value(samples, "ledgerline_consumer_messages_total", group=group, outcome=outcome) == 0
        )


@pytest.mark.integration
async def test_metrics_token_when_set_is_required(scratch_schema: str) -> None:
    settings = ServiceSettings(
        service_name=scratch_schema,
        database_url=admin_dsn(),
        run_relay=False,
        run_consumers=False,
        metrics_token="scrape-secret",
    )
    app = create_service_app(settings, title="test", routers=[notes_router()])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as c,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret"}):
            refused = await c.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthenticated"
            assert "scrape-secret" not in refused.text
        allowed = await c.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert allowed.status_code == 200
        assert parse(allowed.text)
        assert (await c.get("/healthz")).status_code == 200  # probes stay open
