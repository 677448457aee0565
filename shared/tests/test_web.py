"""A service app built by the kernel, exercised over HTTP: auth, tenancy, errors, idempotency."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from asyncpg import exceptions as pg
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import ServiceSettings
from shared.tests.notes_app import bearer, notes_router
from shared.web.app import create_service_app
from shared.web.errors import install_error_handlers

pytestmark = pytest.mark.integration


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code


async def test_health_readiness_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["problems"] == []
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/notes" in spec["paths"] and "/readyz" in spec["paths"]


async def test_create_and_read_with_correlation_id_and_actor(client: httpx.AsyncClient) -> None:
    correlation = str(uuid.uuid4())
    created = await client.post(
        "/v1/notes",
        json={"text": "hi", "customer_id": "c1"},
        headers={**bearer(), "X-Correlation-ID": correlation},
    )
    assert created.status_code == 201 and created.headers["x-correlation-id"] == correlation
    note = (await client.get(f"/v1/notes/{created.json()['id']}", headers=bearer())).json()
    assert note == {
        "id": created.json()["id"],
        "text": "hi",
        "actor": "client:erp",
        "correlation_id": correlation,
    }


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthenticated"),
        ({"Authorization": "Basic abc"}, "unauthenticated"),
        (bearer(now=time.time() - 7200), "unauthenticated"),  # expired
        (bearer(audience="payments-only"), "unauthenticated"),  # wrong audience
        (bearer(tenant="Not A Tenant"), "unauthenticated"),  # malformed tenant claim
    ],
)
async def test_bad_tokens_get_401_with_the_error_body(
    client: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    r = await client.post("/v1/notes", json={"text": "x", "customer_id": "c"}, headers=headers)
    assert_error(r, 401, code)
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_missing_scope_gets_403(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/notes", json={"text": "x", "customer_id": "c"}, headers=bearer(scopes=("notes:read",))
    )
    assert_error(r, 403, "forbidden")


async def test_another_tenant_cannot_see_the_note(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/notes", json={"text": "secret", "customer_id": "c1"}, headers=bearer("acme")
    )
    r = await client.get(f"/v1/notes/{created.json()['id']}", headers=bearer("globex"))
    assert_error(r, 404, "not_found")


async def test_invalid_bodies_get_422_validation_failed(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/notes", json={"text": "x", "customer_id": "c", "admin": True}, headers=bearer()
    )
    assert_error(r, 422, "validation_failed")
    assert r.json()["error"]["details"]["errors"][0]["type"] == "extra_forbidden"
    assert_error(
        await client.post(
            "/v1/notes", content=b"{", headers={**bearer(), "Content-Type": "application/json"}
        ),
        422,
        "validation_failed",
    )
    assert_error(await client.get("/v1/nothing", headers=bearer()), 404, "not_found")


async def test_idempotency_key_over_http(client: httpx.AsyncClient) -> None:
    headers = {**bearer(), "Idempotency-Key": str(uuid.uuid4())}
    body = {"text": "once", "customer_id": "c1"}
    responses = await asyncio.gather(
        *(client.post("/v1/notes", json=body, headers=headers) for _ in range(6))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 5
    other = await client.post("/v1/notes", json={**body, "text": "twice"}, headers=headers)
    assert_error(other, 422, "idempotency_key_reused")


async def test_a_crashed_background_worker_makes_the_service_not_ready(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def crash() -> None:
        raise RuntimeError("consumer died")

    runtime = app.state.runtime
    runtime.spawn(crash(), "consumer test-group")
    await asyncio.sleep(0.05)
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["problems"] == ["background tasks stopped: consumer test-group"]
    runtime.tasks.clear()


async def test_a_lost_database_connection_answers_503_and_the_next_request_is_served(
    client: httpx.AsyncClient, admin_engine: AsyncEngine, scratch_schema: str
) -> None:
    """No ping on checkout: the request that finds its pooled connection dead answers 503 with
    Retry-After (not 500), and the pool is renewed by itself for the next one."""
    created = await client.post(
        "/v1/notes", json={"text": "before", "customer_id": "c1"}, headers=bearer()
    )
    assert created.status_code == 201, created.text
    path = f"/v1/notes/{created.json()['id']}"
    async with admin_engine.begin() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": f"ledgerline-{scratch_schema}"},
        )
    assert killed >= 1  # the service's pooled connection, as a Postgres restart would
    refused = await client.get(path, headers=bearer())
    assert_error(refused, 503, "service_unavailable")
    assert refused.headers["retry-after"] == "1"
    served = await client.get(path, headers=bearer())
    assert served.status_code == 200 and served.json()["text"] == "before"


async def test_an_unreachable_database_answers_503() -> None:
    settings = ServiceSettings(
        service_name="unreachable",
        database_url="postgresql+asyncpg://nobody:nothing@127.0.0.1:1/none",
        run_relay=False,
        run_consumers=False,
    )
    app = create_service_app(settings, title="test", routers=[notes_router()])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            r = await c.get(f"/v1/notes/{uuid.uuid4()}", headers=bearer())
    assert_error(r, 503, "service_unavailable")


@pytest.mark.parametrize(
    "error",
    [
        pg.CannotConnectNowError("the database system is shutting down"),  # raw, while connecting
        pg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
async def test_the_database_going_away_answers_503_whatever_the_driver_raised(
    error: Exception,
) -> None:
    """Found by the Postgres restart under load: a connection opened while the server shut down
    raised asyncpg's own error, untranslated by SQLAlchemy, and answered 500."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as c:
        answer = await c.get("/boom")
    assert_error(answer, 503, "service_unavailable")
    assert answer.headers["retry-after"] == "1"
