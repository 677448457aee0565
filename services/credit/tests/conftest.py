"""Credit-service fixtures: the real `credit` schema, as the service's own role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.credit.api.app import create_app
from services.credit.config import CreditSettings
from shared.db import make_sessionmaker
from shared.migrations import upgrade
from shared.testing import app_client, service_engine


@pytest.fixture(scope="session")
async def credit_engine() -> AsyncIterator[AsyncEngine]:
    async with service_engine("credit", CreditSettings().dsn()) as engine:
        yield engine


@pytest.fixture
def credit_sessions(credit_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(credit_engine)


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    settings = CreditSettings(run_relay=False, run_consumers=False)
    await upgrade("credit", settings.dsn())
    async with app_client(create_app(settings), "http://credit") as client:
        yield client
