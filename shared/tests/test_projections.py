"""Projection checkpoints commit or roll back together with the projection's rows."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.projections import load_checkpoints, reset_checkpoints, save_checkpoint

pytestmark = pytest.mark.integration


async def test_checkpoint_and_rows_are_one_transaction(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rows = f"{scratch_schema}.aging_rows"
    async with sessions() as s, s.begin():
        await s.execute(text(f"CREATE TABLE {rows} (invoice text)"))
    async with sessions() as s, s.begin():
        await s.execute(text(f"INSERT INTO {rows} VALUES ('inv-1')"))
        await save_checkpoint(s, scratch_schema, "aging", "ar.invoice.invoice.v1", 0, 11)
    with pytest.raises(RuntimeError):
        async with sessions() as s, s.begin():
            await s.execute(text(f"INSERT INTO {rows} VALUES ('inv-2')"))
            await save_checkpoint(s, scratch_schema, "aging", "ar.invoice.invoice.v1", 0, 12)
            raise RuntimeError("crash before commit")
    async with sessions() as s:
        assert await load_checkpoints(s, scratch_schema, "aging") == {
            ("ar.invoice.invoice.v1", 0): 11
        }
        assert (await s.execute(text(f"SELECT count(*) FROM {rows}"))).scalar_one() == 1


async def test_checkpoints_never_move_backwards_and_can_be_reset(
    scratch_schema: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as s, s.begin():
        await save_checkpoint(s, scratch_schema, "dso", "t", 1, 50)
        await save_checkpoint(s, scratch_schema, "dso", "t", 1, 40)  # a late duplicate batch
        await save_checkpoint(s, scratch_schema, "dso", "t", 2, 7)
        await save_checkpoint(s, scratch_schema, "other", "t", 1, 3)
    async with sessions() as s, s.begin():
        assert await load_checkpoints(s, scratch_schema, "dso") == {("t", 1): 50, ("t", 2): 7}
        await reset_checkpoints(s, scratch_schema, "dso")
    async with sessions() as s:
        assert await load_checkpoints(s, scratch_schema, "dso") == {}
        assert await load_checkpoints(s, scratch_schema, "other") == {("t", 1): 3}
