"""RenewableProducer's bookkeeping with stand-in producers (the real broker's answers are in
test_outbox_relay.py): which failures condemn a producer, and that exactly one new one starts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, OutOfOrderSequenceNumber

from shared.messaging.kafka import RenewableProducer


class StandIn:
    """Records what was sent; each send's future is settled by the test."""

    def __init__(self, fail_start: bool = False) -> None:
        self.fail_start = fail_start
        self.started = self.stopped = False
        self.futures: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        if self.fail_start:
            raise KafkaConnectionError("broker down")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, **_: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


class Factory:
    def __init__(self, *fail_start: bool) -> None:
        self.fail_start = list(fail_start)
        self.made: list[StandIn] = []

    def __call__(self) -> Any:
        made = StandIn(self.fail_start.pop(0) if self.fail_start else False)
        self.made.append(made)
        return made


async def settle(future: asyncio.Future[Any], error: BaseException | None) -> None:
    if error is None:
        future.set_result("ok")
    else:
        future.set_exception(error)
    await asyncio.sleep(0)  # done callbacks run


async def test_a_rejected_sequence_condemns_the_producer_and_one_new_producer_takes_over() -> None:
    factory = Factory()
    producer = RenewableProducer(factory, "test")
    await producer.start()
    first = [await producer.send("t", b"v") for _ in range(3)]
    await settle(first[0], OutOfOrderSequenceNumber())
    assert isinstance(producer.broken, OutOfOrderSequenceNumber)

    await producer.send("t", b"again")
    assert len(factory.made) == 2 and factory.made[0].stopped and factory.made[1].started
    assert producer.renewals == 1 and producer.broken is None

    # The old producer's other batches fail late: its successor is not condemned for them.
    await settle(first[1], OutOfOrderSequenceNumber())
    await settle(first[2], OutOfOrderSequenceNumber())
    assert producer.broken is None
    await producer.send("t", b"more")
    assert len(factory.made) == 2


async def test_ordinary_failures_keep_the_producer() -> None:
    factory = Factory()
    producer = RenewableProducer(factory, "test")
    await producer.start()
    future = await producer.send("t", b"v")
    await settle(future, KafkaTimeoutError())
    await producer.send("t", b"v")
    assert producer.broken is None and producer.renewals == 0 and len(factory.made) == 1


async def test_a_renewal_while_kafka_is_down_fails_the_send_and_is_tried_again() -> None:
    factory = Factory(False, True)  # the first replacement cannot connect
    producer = RenewableProducer(factory, "test")
    await producer.start()
    await settle(await producer.send("t", b"v"), OutOfOrderSequenceNumber())
    with pytest.raises(KafkaConnectionError):
        await producer.send("t", b"v")
    assert factory.made[1].stopped  # the half-started replacement is closed, not leaked
    assert producer.broken is not None

    await producer.send("t", b"v")
    assert producer.renewals == 1 and producer.broken is None and factory.made[2].started
