"""Async SQLAlchemy engine and sessions; one engine per service process."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asyncpg import exceptions as pg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_schema(name: str) -> str:
    """Schema names are interpolated into SQL, so only plain identifiers are allowed."""
    if not _SCHEMA.match(name):
        raise ValueError(f"not a valid schema name: {name!r}")
    return name


def make_engine(
    dsn: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    application_name: str = "ledgerline",
) -> AsyncEngine:
    """No ping on checkout: it was a round trip before every unit of work (4 of the ~30 per
    issued invoice). A connection found dead on use fails that one request, which answers 503
    (`database_unavailable`), and SQLAlchemy then discards every pooled connection older than the
    failure, so a restarted Postgres costs each process one refused request, not one per
    connection. Connections are recycled hourly so that none outlives a server-side timeout.

    The pool keeps `pool_size` connections; up to `max_overflow` more (default: as many) are
    opened under a burst and closed as soon as they are returned, so a pool smaller than the
    process's usual concurrency opens and closes connections all the time (see ServiceSettings).
    """
    return create_async_engine(
        dsn,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=3600,
        connect_args={"server_settings": {"application_name": application_name}},
    )


# What asyncpg raises when the server is going away or not there yet (class 08 connection
# exceptions, class 57 operator intervention: shutting down, starting up, too many clients).
# While connecting, SQLAlchemy passes them on untranslated.
ASYNCPG_UNAVAILABLE: tuple[type[Exception], ...] = (
    pg.PostgresConnectionError,
    pg.OperatorInterventionError,
    pg.TooManyConnectionsError,
)


# OSErrors about local files are a handler's or a deployment's fault, not an outage: retrying
# them held a consumer's partition forever instead of dead-lettering the message.
LOCAL_FILE_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or the connection was lost (a restart, a network cut,
    the pool exhausted): the work was not done and may be tried again; not a bug. Any other
    OSError counts too (a refused connection is a bare OSError), except a local file's."""
    if isinstance(exc, OSError):
        return not isinstance(exc, LOCAL_FILE_ERRORS)
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, ASYNCPG_UNAVAILABLE):
        return True
    if isinstance(exc, DBAPIError):
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return bool(exc.connection_invalidated) or isinstance(cause, ASYNCPG_UNAVAILABLE)
    return False


_SAVEPOINT = text("SAVEPOINT ledgerline_unit")
_ROLLBACK_TO_SAVEPOINT = text("ROLLBACK TO SAVEPOINT ledgerline_unit")
_RELEASE_SAVEPOINT = text("RELEASE SAVEPOINT ledgerline_unit")


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """`session.begin_nested()` under one fixed name: an error inside undoes only the block's
    writes. SQLAlchemy names savepoints sa_savepoint_1, _2, ... per transaction and the asyncpg
    dialect prepares every statement, so a consumer batch of 500 events made 1,500 distinct
    statements: they flushed the connection's 100-entry prepared-statement cache and every
    statement was parsed again (a seventh of a consumer's CPU). Nests (Postgres uses the latest
    savepoint of a name)."""
    await session.execute(_SAVEPOINT)
    try:
        yield
    except Exception as exc:
        if database_unavailable(exc):
            raise  # nothing to undo on a lost connection; the caller must see why
        try:
            await session.execute(_ROLLBACK_TO_SAVEPOINT)
            await session.execute(_RELEASE_SAVEPOINT)
        except Exception as undo_failed:
            # The undo met the connection gone (it died during the block): report the block's
            # error, whose kind decides what the caller does, not the undo's PendingRollbackError.
            raise exc from undo_failed
        raise
    await session.execute(_RELEASE_SAVEPOINT)


def make_sessionmaker(
    engine: AsyncEngine, session_class: type[Session] = Session
) -> async_sessionmaker[AsyncSession]:
    """`session_class`: a Session subclass carrying event listeners (see `outbox.waking_session`)."""
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=session_class)


def json_column(value: Any) -> Any:
    """A json/jsonb column's value as Python data: asyncpg hands it over as text unless a codec
    is registered, and a codec-decoded value is already a dict or list."""
    return json.loads(value) if isinstance(value, str | bytes) else value
