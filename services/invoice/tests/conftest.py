"""Invoice-service fixtures: the real `invoice` schema, as the service's own role.

Tests isolate themselves by tenant (a fresh random tenant per test), which is also how the
service isolates its callers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.invoice.config import InvoiceSettings
from shared.db import make_engine, make_sessionmaker
from shared.migrations import upgrade


@pytest.fixture(scope="session")
async def invoice_engine() -> AsyncIterator[AsyncEngine]:
    settings = InvoiceSettings()
    await upgrade("invoice", settings.dsn())
    engine = make_engine(settings.dsn(), pool_size=30, application_name="invoice-tests")
    yield engine
    await engine.dispose()


@pytest.fixture
def invoice_sessions(invoice_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(invoice_engine)


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"
