"""Regression: a service restarted after a SIGKILL answers again within seconds.

aiokafka's `start()` on a consumer that is already subscribed waits for the group's first
assignment. After a crash that assignment waits for the dead member's session to expire (30 s),
and `ServiceRuntime.start` awaited it inside the app's lifespan: the restarted service did not
even listen on its port for ~30 s, so a credit-service crash blocked every invoice issue for
that long, and a service killed more often than that never came back at all. Consumers are now
subscribed after `start()`, so the join happens in the background.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.cluster import Cluster

pytestmark = pytest.mark.integration


async def _assigned(cluster: Cluster, name: str, groups: int, timeout: float = 60) -> None:
    """Until the service's consumer groups all have their partitions (so it is a member)."""
    log = cluster.log_dir / f"{name}.log"
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count("partitions assigned [TopicPartition") < groups:
        assert time.monotonic() < deadline, "the consumers never got their partitions"
        await asyncio.sleep(0.3)


async def test_a_killed_service_is_ready_again_well_within_the_session_timeout(
    cluster: Cluster,
) -> None:
    await cluster.start("credit")
    await _assigned(cluster, "credit", groups=3)  # credit.invoices, .payments, .dunning
    kill = await cluster.kill_and_restart("credit")
    assert kill.ready_after is not None, kill.problem
    assert kill.ready_after < 15, f"ready {kill.ready_after:.1f}s after the kill"
    # and its consumers still get their partitions once the dead member's session expired
    await _assigned(cluster, "credit", groups=6, timeout=90)
