"""Async SQLAlchemy engine and sessions; one engine per service process."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_schema(name: str) -> str:
    """Schema names are interpolated into SQL, so only plain identifiers are allowed."""
    if not _SCHEMA.match(name):
        raise ValueError(f"not a valid schema name: {name!r}")
    return name


def make_engine(
    dsn: str, *, pool_size: int = 10, application_name: str = "ledgerline"
) -> AsyncEngine:
    return create_async_engine(
        dsn,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def json_column(value: Any) -> Any:
    """A json/jsonb column's value as Python data: asyncpg hands it over as text unless a codec
    is registered, and a codec-decoded value is already a dict or list."""
    return json.loads(value) if isinstance(value, str | bytes) else value
