"""`GET /v1/audit/events`: a tenant's own events only, filtered and paged, scope `ops:replay`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.tests.notes_app import bearer

pytestmark = pytest.mark.integration

WRITE = ("notes:write",)
REPLAY = ("ops:replay",)


async def take_notes(client: httpx.AsyncClient, tenant: str, customer: str, n: int) -> None:
    for i in range(n):
        r = await client.post(
            "/v1/notes",
            json={"text": f"{tenant} {i}", "customer_id": customer},
            headers=bearer(tenant, WRITE),
        )
        assert r.status_code == 201, r.text


async def test_a_tenant_replays_its_own_events_in_pages(client: httpx.AsyncClient) -> None:
    await take_notes(client, "acme", "c-1", 3)
    middle = datetime.now(UTC)
    await take_notes(client, "acme", "c-2", 2)
    await take_notes(client, "other", "c-1", 2)

    async def get(tenant: str = "acme", **params: str | int) -> httpx.Response:
        return await client.get("/v1/audit/events", params=params, headers=bearer(tenant, REPLAY))

    pages: list[list[dict[str, Any]]] = []
    after = 0
    while True:
        r = await get(limit=2, after=after)
        assert r.status_code == 200, r.text
        pages.append(r.json()["events"])
        if r.json()["next_after"] is None:
            break
        after = r.json()["next_after"]
    texts = [e["payload"]["text"] for page in pages for e in page]
    assert texts == [f"acme {i}" for i in (0, 1, 2)] + ["acme 0", "acme 1"]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert all(e["actor"] == "client:erp" and e["correlation_id"] for p in pages for e in p)

    c1 = (await get(customer_id="c-1")).json()["events"]
    assert [e["payload"]["text"] for e in c1] == ["acme 0", "acme 1", "acme 2"]
    late = (await get(since=middle.isoformat())).json()["events"]
    assert {e["customer_id"] for e in late} == {"c-2"}
    typed = (await get(event_type="NoteTaken", until=middle.isoformat())).json()
    assert len(typed["events"]) == 3
    stream = c1[0]["stream_id"]
    assert [e["stream_id"] for e in (await get(stream_id=stream)).json()["events"]] == [stream]
    assert (await get("other", stream_id=stream)).json()["events"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-01-01T00:00:00"},  # no zone: ambiguous for an audit
        {"event_type": "drop table"},
        {"customer_id": "c\x00"},
        {"limit": 0},
        {"limit": 1001},
        {"after": -1},
        {"stream_id": "not a stream"},
    ],
)
async def test_bad_filters_are_422(client: httpx.AsyncClient, params: dict[str, str | int]) -> None:
    r = await client.get("/v1/audit/events", params=params, headers=bearer("acme", REPLAY))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"]


async def test_replaying_needs_the_ops_replay_scope(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/audit/events")).status_code == 401
    r = await client.get("/v1/audit/events", headers=bearer("acme", WRITE))
    assert r.status_code == 403
