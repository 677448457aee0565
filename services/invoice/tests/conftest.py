"""Invoice-service fixtures: the real `invoice` schema, as the service's own role.

Tests isolate themselves by tenant (a fresh random tenant per test), which is also how the
service isolates its callers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.invoice.config import InvoiceSettings
from shared.db import make_sessionmaker
from shared.testing import service_engine


@pytest.fixture(scope="session")
async def invoice_engine() -> AsyncIterator[AsyncEngine]:
    async with service_engine("invoice", InvoiceSettings().dsn(), pool_size=30) as engine:
        yield engine


@pytest.fixture
def invoice_sessions(invoice_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(invoice_engine)
