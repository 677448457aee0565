"""Helpers of the cross-service tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx


async def eventually(
    client: httpx.AsyncClient, path: str, ready: Callable[[Any], bool], timeout: float = 60
) -> Any:
    """GET `path` until it answers 200 with a body `ready` accepts (events travel through Kafka)."""
    deadline = asyncio.get_running_loop().time() + timeout
    body: Any = None
    while asyncio.get_running_loop().time() < deadline:
        r = await client.get(path)
        body = r.json()
        if r.status_code == 200 and ready(body):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} not ready within {timeout}s: {body}")
