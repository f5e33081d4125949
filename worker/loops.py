"""Background loops that outlive a Redis outage: each failure backs off, success resets.

A worker's loops (read, lease, reclaim, retry scheduler) must keep going while Redis restarts:
redis-py reconnects on the next command, so a loop only has to wait a little and try again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from taskstore.topology import UNAVAILABLE

log = logging.getLogger(__name__)

REDIS_DOWN = UNAVAILABLE


class Backoff:
    """Exponential pauses between failed tries, cut short by `stop`."""

    def __init__(self, name: str, first: float = 0.05, cap: float = 2.0) -> None:
        self.name = name
        self.first = first
        self.cap = cap
        self.delay = 0.0

    async def pause(self, stop: asyncio.Event, error: BaseException) -> None:
        self.delay = min(self.cap, self.delay * 2 or self.first)
        log.warning("%s: %s: %s; retrying in %.2f s", self.name, type(error).__name__, error, self.delay)
        await sleep_unless(stop, self.delay)

    def reset(self) -> None:
        if self.delay:
            log.info("%s: Redis answers again", self.name)
        self.delay = 0.0


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def every(
    seconds: float, body: Callable[[], Awaitable[object]], stop: asyncio.Event, name: str
) -> None:
    """Run `body` now and then every `seconds` until `stop`; errors are logged, never fatal."""
    backoff = Backoff(name)
    while not stop.is_set():
        try:
            await body()
        except REDIS_DOWN as e:
            await backoff.pause(stop, e)
            continue
        except Exception as e:
            # A bug or an unexpected reply must not silently end crash recovery for this worker.
            log.exception("%s failed", name)
            await backoff.pause(stop, e)
            continue
        backoff.reset()
        await sleep_unless(stop, seconds)
