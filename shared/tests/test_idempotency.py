"""Idempotency keys with Stripe semantics on the real Postgres."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.errors import IdempotencyKeyReused, ValidationFailed
from shared.idempotency import fingerprint, purge_expired, run_idempotent

pytestmark = pytest.mark.integration


@pytest.fixture
async def counter(scratch_schema: str, sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as s, s.begin():
        await s.execute(text(f"CREATE TABLE {scratch_schema}.created (id uuid)"))
    return f"{scratch_schema}.created"


async def create(
    sessions: async_sessionmaker[AsyncSession],
    schema: str,
    table: str,
    key: str,
    body: bytes,
    *,
    tenant: str = "acme",
    delay: float = 0.0,
    fail: bool = False,
) -> tuple[int, object, bool]:
    async def operation(session: AsyncSession) -> tuple[int, object]:
        new_id = uuid.uuid4()
        await session.execute(text(f"INSERT INTO {table} VALUES (:id)"), {"id": new_id})
        await asyncio.sleep(delay)
        if fail:
            raise RuntimeError("downstream failure")
        return 201, {"id": str(new_id)}

    async with sessions() as s, s.begin():
        stored = await run_idempotent(
            s,
            schema,
            tenant_id=tenant,
            key=key,
            request_fingerprint=fingerprint("POST", "/v1/things", body),
            operation=operation,
        )
    return stored.status_code, stored.body, stored.replayed


async def count(sessions: async_sessionmaker[AsyncSession], table: str) -> int:
    async with sessions() as s:
        return int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_same_key_and_body_replays_the_first_response(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession], counter: str
) -> None:
    first = await create(sessions, scratch_schema, counter, "k1", b'{"a": 1, "b": 2}')
    again = await create(sessions, scratch_schema, counter, "k1", b'{"b":2,"a":1}')  # same JSON
    assert first[:2] == again[:2] and (first[2], again[2]) == (False, True)
    assert await count(sessions, counter) == 1


async def test_same_key_other_body_is_refused_with_422(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession], counter: str
) -> None:
    await create(sessions, scratch_schema, counter, "k2", b'{"a": 1}')
    with pytest.raises(IdempotencyKeyReused) as info:
        await create(sessions, scratch_schema, counter, "k2", b'{"a": 2}')
    assert info.value.status_code == 422
    assert await count(sessions, counter) == 1


async def test_keys_are_per_tenant(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession], counter: str
) -> None:
    a = await create(sessions, scratch_schema, counter, "k3", b"{}", tenant="acme")
    b = await create(sessions, scratch_schema, counter, "k3", b"{}", tenant="globex")
    assert a[1] != b[1] and not b[2]
    assert await count(sessions, counter) == 2


async def test_concurrent_duplicates_yield_exactly_one_effect(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession], counter: str
) -> None:
    results = await asyncio.gather(
        *(
            create(sessions, scratch_schema, counter, "k4", b'{"x": 1}', delay=0.2)
            for _ in range(12)
        )
    )
    assert await count(sessions, counter) == 1
    assert len({str(r[1]) for r in results}) == 1
    assert sum(1 for r in results if not r[2]) == 1  # one original, eleven replays


async def test_a_failed_request_releases_its_key(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession], counter: str
) -> None:
    with pytest.raises(RuntimeError):
        await create(sessions, scratch_schema, counter, "k5", b"{}", fail=True)
    assert await count(sessions, counter) == 0  # nothing half-applied
    status, _, replayed = await create(sessions, scratch_schema, counter, "k5", b"{}")
    assert (status, replayed) == (201, False)


async def test_bad_keys_are_rejected_and_old_keys_purged(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession], counter: str
) -> None:
    for bad in ("", "x" * 256, "tab\there"):
        with pytest.raises(ValidationFailed):
            await create(sessions, scratch_schema, counter, bad, b"{}")
    await create(sessions, scratch_schema, counter, "old", b"{}")
    async with sessions() as s, s.begin():
        await s.execute(
            text(
                f"UPDATE {scratch_schema}.idempotency_keys SET created_at = now() - interval '2 days'"
            )
        )
        assert await purge_expired(s, scratch_schema) == 1
