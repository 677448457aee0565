"""Credit-service fixtures: the real `credit` schema, as the service's own role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.credit.api.app import create_app
from services.credit.config import CreditSettings
from shared.db import make_engine, make_sessionmaker
from shared.migrations import upgrade


@pytest.fixture(scope="session")
async def credit_engine() -> AsyncIterator[AsyncEngine]:
    settings = CreditSettings()
    await upgrade("credit", settings.dsn())
    engine = make_engine(settings.dsn(), pool_size=10, application_name="credit-tests")
    yield engine
    await engine.dispose()


@pytest.fixture
def credit_sessions(credit_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(credit_engine)


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    settings = CreditSettings(run_relay=False, run_consumers=False)
    await upgrade("credit", settings.dsn())
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://credit"
        ) as client,
    ):
        yield client
