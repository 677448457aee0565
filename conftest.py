"""Fixtures shared by every test folder: the real Postgres and Kafka that deploy/ starts.

Integration tests never mock either. Each test gets its own scratch schema (kernel tables
applied) and, where it needs Kafka, its own topics, so tests don't see each other's data.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import make_engine, make_sessionmaker
from shared.eventstore.schema import audit_ddl, kernel_ddl
from shared.messaging.kafka import make_producer
from shared.settings import KafkaSettings
from shared.testing import temporary_topics


def admin_dsn() -> str:
    dsn = os.environ.get(
        "LEDGERLINE_ADMIN_DSN", "postgresql://postgres:ledgerline_admin@127.0.0.1:25432/ledgerline"
    )
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


def _reachable(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_settings() -> KafkaSettings:
    settings = KafkaSettings()
    if not _reachable(settings.bootstrap_servers.split(",")[0]):
        pytest.fail(f"Kafka is not running at {settings.bootstrap_servers}: run deploy/up.sh")
    return settings


@pytest.fixture(scope="session")
async def admin_engine() -> AsyncIterator[AsyncEngine]:
    engine = make_engine(admin_dsn(), pool_size=20, application_name="ledgerline-tests")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"Postgres is not reachable ({exc}): run deploy/up.sh")
    yield engine
    await engine.dispose()


@pytest.fixture
async def scratch_schema(admin_engine: AsyncEngine) -> AsyncIterator[str]:
    """A fresh schema with the kernel tables, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with admin_engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        for statement in kernel_ddl(schema) + audit_ddl(schema):
            await conn.execute(text(statement))
    yield schema
    async with admin_engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def sessions(admin_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(admin_engine)


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test: tests isolate themselves the way the services isolate callers."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def fresh_topic(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """A new topic (and its .dlq), 3 partitions, for one test; deleted after it."""
    async with temporary_topics(kafka_settings, [f"test.{uuid.uuid4().hex[:12]}.v1"]) as topics:
        yield topics[0]


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain idempotent producer, for tests that publish by hand or run a relay."""
    p = make_producer(kafka_settings, "test-producer")
    await p.start()
    yield p
    await p.stop()
