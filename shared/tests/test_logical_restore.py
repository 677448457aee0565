"""A schema restored from a logical dump into another cluster: refused until the cluster's
transaction ids are past the stored ones, then nothing is skipped.

Relay and sealer read in (transaction id, position) order. pg_restore copies the events with the
transaction ids of the cluster that wrote them, while the new cluster counts from its own, lower
start: without the guard every event written after the restore would sort below the relay's
checkpoint and never reach Kafka. The drill runs the procedure docs/operations.md gives, on a
throw-away cluster of the machine's own PostgreSQL binaries.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conftest import admin_dsn
from shared.audit.chain import ChainSealer, seal_now, verify_chain
from shared.db import make_engine, make_sessionmaker
from shared.eventstore.store import EventStore, Position, TransactionIdsBehind
from shared.settings import KafkaSettings, ServiceSettings
from shared.testing import wait_until
from shared.tests.kafka_helpers import drain, read_topic
from shared.tests.test_outbox_relay import append, labels, relay_for
from shared.web.runtime import ServiceRuntime

pytestmark = pytest.mark.integration


async def insert_from_ahead(sessions: async_sessionmaker[AsyncSession], schema: str) -> int:
    """An event carrying a transaction id a million past the cluster's next one, as a restored
    row from a busier cluster does; returns that id."""
    async with sessions() as s, s.begin():
        ahead = await s.scalar(
            text(
                f"""INSERT INTO {schema}.events (transaction_id, event_id, stream_id,
                        stream_version, event_type, schema_version, tenant_id, occurred_at,
                        correlation_id, actor, payload)
                    SELECT ((pg_snapshot_xmax(pg_current_snapshot())::text::numeric + 1000000)
                            ::text)::xid8,
                        gen_random_uuid(), 'thing-restored', 1, 'ThingHappened', 1, 'acme',
                        now(), gen_random_uuid(), 'system:test', '{{"label": "restored"}}'
                    RETURNING transaction_id::text"""
            )
        )
    return int(ahead)


async def test_relay_sealer_and_service_refuse_a_store_ahead_of_the_cluster(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    fresh_topic: str,
) -> None:
    await append(sessions, scratch_schema, "before")
    ahead = await insert_from_ahead(sessions, scratch_schema)

    async with admin_engine.connect() as conn:
        with pytest.raises(TransactionIdsBehind) as refused:
            await EventStore(scratch_schema).check_transaction_ids(conn)
    assert refused.value.stored == ahead
    assert refused.value.epoch == (ahead >> 32) + 1
    assert f"pg_resetwal -e {refused.value.epoch}" in str(refused.value)

    relay = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    running = asyncio.create_task(relay.run())
    await wait_until(lambda: relay.stats.refused is not None)
    assert not relay.stats.is_leader and relay.stats.published == 0
    relay.stop()
    await running

    sealer = ChainSealer(admin_engine, scratch_schema, poll_interval=0.02)
    sealing = asyncio.create_task(sealer.run())
    await wait_until(lambda: sealer.refused is not None)
    sealer.stop()
    await sealing
    assert sealer.sealed == 0
    with pytest.raises(TransactionIdsBehind):
        await seal_now(admin_engine, scratch_schema)

    # A service process does not start at all: whatever it wrote would never be published.
    runtime = ServiceRuntime.create(
        ServiceSettings(
            service_name=scratch_schema,
            database_url=admin_dsn(),
            run_relay=False,
            run_consumers=False,
        )
    )
    runtime.relay, runtime.sealer = relay, sealer  # as a process that started before the restore
    assert runtime.check_workers() == relay.stats.refused  # what /readyz reports
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransactionIdsBehind):
            await runtime.start([])
        assert asyncio.get_running_loop().time() - started < 5  # refused, not retried for 30 s
    finally:
        await runtime.engine.dispose()


class ScratchCluster:
    """A PostgreSQL cluster of the machine's own binaries in a temporary directory, run as the
    server's OS user when the tests run as root (as deploy/postgres/start.sh does)."""

    def __init__(self, root: Path) -> None:
        self.bindir = _bindir()
        self.data = root / "data"
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._as_server(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust"])

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "log")
        self._as_server(["pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start"])

    def stop(self) -> None:
        self._as_server(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def advance_epoch(self, epoch: int) -> None:
        """The remedy docs/operations.md gives, on the stopped cluster."""
        self._as_server(["pg_resetwal", "-e", str(epoch), str(self.data)])

    def tool(self, name: str, *args: str) -> None:
        argv = [str(self.bindir / name), *args]
        subprocess.run(argv, check=True, capture_output=True)  # noqa: S603 - fixed binaries

    def _as_server(self, command: list[str]) -> None:
        argv = [str(self.bindir / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", _server_user(), "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, cwd="/")  # noqa: S603 - same


def _bindir() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_resetwal"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else -1,
    )
    if not found:
        pytest.fail("PostgreSQL server binaries not found under /usr/lib/postgresql (deploy/up.sh)")
    return found[-1].parent


def _server_user() -> str:
    return os.environ.get("LEDGERLINE_PG_OS_USER", "postgres")


@pytest.fixture
def scratch_cluster() -> Iterator[ScratchCluster]:
    root = Path(tempfile.mkdtemp(prefix="ledgerline-restore-"))
    if os.geteuid() == 0:
        shutil.chown(root, _server_user(), _server_user())
    cluster = ScratchCluster(root)
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
        shutil.rmtree(root, ignore_errors=True)


async def test_a_logical_restore_publishes_everything_once_the_epoch_is_advanced(
    scratch_schema: str,
    admin_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    fresh_topic: str,
    scratch_cluster: ScratchCluster,
    tmp_path: Path,
) -> None:
    for label in ("a", "b", "c"):
        await append(sessions, scratch_schema, label)
    relay = relay_for(admin_engine, scratch_schema, producer, fresh_topic)
    assert await relay.acquire()
    assert await drain(relay) == 3
    await relay.release()
    assert await seal_now(admin_engine, scratch_schema) == 3

    dump = tmp_path / "schema.dump"
    source = admin_dsn().replace("postgresql+asyncpg://", "postgresql://", 1)
    scratch_cluster.tool("pg_dump", "-Fc", "-n", scratch_schema, "-f", str(dump), source)
    scratch_cluster.tool(
        "pg_restore", "--no-owner", "--no-privileges", "-d", scratch_cluster.dsn, str(dump)
    )

    restored = make_engine(scratch_cluster.dsn.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        with pytest.raises(TransactionIdsBehind) as refused:
            async with restored.connect() as conn:
                await EventStore(scratch_schema).check_transaction_ids(conn)
    finally:
        await restored.dispose()

    scratch_cluster.stop()
    scratch_cluster.advance_epoch(refused.value.epoch)
    scratch_cluster.start()

    restored = make_engine(scratch_cluster.dsn.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        for label in ("d", "e"):
            await append(make_sessionmaker(restored), scratch_schema, label)
        relay = relay_for(restored, scratch_schema, producer, fresh_topic)
        assert await relay.acquire()
        assert await drain(relay) == 2  # the new events, and not the restored ones again
        await relay.release()
        assert await seal_now(restored, scratch_schema) == 2
        async with restored.connect() as conn:
            report = await verify_chain(conn, scratch_schema)
            newest = await EventStore(scratch_schema).read_all(conn, Position.start())
        assert report.intact, report.problems
        assert [e.payload["label"] for _, e in newest] == ["a", "b", "c", "d", "e"]
    finally:
        await restored.dispose()

    records = await read_topic(kafka_settings, fresh_topic, expect=5)
    assert sorted(labels(records)) == ["a", "b", "c", "d", "e"]
    assert len({r.value for r in records}) == 5  # each event once
