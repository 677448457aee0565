"""`savepoint`: a failing block undoes only its own writes, and a batch of them does not churn
the connection's prepared statements."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import database_unavailable, savepoint

pytestmark = pytest.mark.integration


async def insert(session: AsyncSession, schema: str, n: int) -> None:
    await session.execute(text(f"INSERT INTO {schema}.numbers VALUES (:n)"), {"n": n})


async def test_a_failing_block_undoes_its_writes_only_even_after_a_database_error(
    sessions: async_sessionmaker[AsyncSession], scratch_schema: str
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(text(f"CREATE TABLE {scratch_schema}.numbers (n int PRIMARY KEY)"))
        await insert(session, scratch_schema, 1)
        with pytest.raises(ValueError):
            async with savepoint(session):
                await insert(session, scratch_schema, 2)
                raise ValueError("handler refused")
        with pytest.raises(IntegrityError):  # leaves the transaction aborted until rolled back
            async with savepoint(session):
                await insert(session, scratch_schema, 3)
                await insert(session, scratch_schema, 1)
        async with savepoint(session):
            await insert(session, scratch_schema, 4)
            with pytest.raises(ValueError):
                async with savepoint(session):  # nested, same name
                    await insert(session, scratch_schema, 5)
                    raise ValueError("inner")
            await insert(session, scratch_schema, 6)
    async with sessions() as session:
        kept = (await session.scalars(text(f"SELECT n FROM {scratch_schema}.numbers"))).all()
    assert sorted(kept) == [1, 4, 6]


async def test_many_blocks_in_one_transaction_prepare_a_handful_of_statements(
    sessions: async_sessionmaker[AsyncSession], scratch_schema: str
) -> None:
    """SQLAlchemy's begin_nested named each savepoint anew (sa_savepoint_1, _2, ...), and every
    name was a statement to prepare: 500 of them flushed the 100-entry statement cache."""
    async with sessions() as session, session.begin():
        await session.execute(text(f"CREATE TABLE {scratch_schema}.numbers (n int PRIMARY KEY)"))
        before = await session.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
        for n in range(300):
            async with savepoint(session):
                await insert(session, scratch_schema, n)
        after = await session.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
    assert after - before <= 4  # SAVEPOINT, RELEASE, the insert, the count itself


async def test_a_connection_lost_inside_the_block_is_reported_as_unavailable(
    sessions: async_sessionmaker[AsyncSession], admin_engine: AsyncEngine, scratch_schema: str
) -> None:
    """Found by restarting Postgres under load: the undo of a block whose connection had died
    raised PendingRollbackError instead, which the consumer took for the handler's fault,
    dead-lettered and then crashed on."""
    async with sessions() as session:
        with pytest.raises(Exception) as raised:
            async with session.begin():
                own_pid = await session.scalar(text("SELECT pg_backend_pid()"))
                async with savepoint(session):
                    async with admin_engine.begin() as admin:
                        await admin.execute(
                            text("SELECT pg_terminate_backend(:pid)"), {"pid": own_pid}
                        )
                    await session.execute(text("SELECT 1"))
    assert database_unavailable(raised.value), repr(raised.value)
