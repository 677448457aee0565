"""Fixtures of the crash and fault tests: the five services as real processes (stopped after
the test, their log tails printed when it failed) and where the event topics ended before it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator

import pytest

from services.registry import settings_of
from shared.migrations import upgrade
from shared.settings import KafkaSettings
from tests.chaos.cluster import SERVICES, Cluster
from tests.chaos.reconcile import Offsets, end_offsets

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    """The five services, not started yet (a test may set a process's environment first)."""
    for name in SERVICES:
        await upgrade(name, settings_of(name).dsn())
    made = Cluster(tmp_path_factory.mktemp("chaos") / "logs")
    try:
        yield made
    finally:
        await made.stop()
        if request.node.stash.get(_FAILED, True):
            print(f"\n{made.kill_summary()}\n{made.log_tails()}")


@pytest.fixture
async def topic_ends(kafka_settings: KafkaSettings) -> Offsets:
    """Where every event topic ends before the test: its tenant's events all lie beyond."""
    return await end_offsets(kafka_settings)
