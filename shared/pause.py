"""Background loops' waits: until an event (stop, or new work) or a timeout, whichever first."""

from __future__ import annotations

import asyncio


async def pause(event: asyncio.Event, seconds: float) -> None:
    """Return when `event` is set or after `seconds`; a set event ends the wait at once."""
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        pass
