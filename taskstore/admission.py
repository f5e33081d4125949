"""MAX_QUEUE_LENGTH across shards: one budget for the whole backlog, not one per shard.

No script can read every shard's length atomically on a cluster (they live in different
slots), so each API process keeps the backlog's length (the sum of the shards' XLEN), read
again after REFRESH seconds when the backlog is past half the limit (else after FAR_REFRESH:
far from the limit a stale figure cannot let it be passed), shared by concurrent submits, plus
what it admitted since:

    reserve() ─ stale? ─▶ XLEN of every shard (one pipelined pass) ─▶ length, admitted = 0
              ─ length + admitted >= limit ─▶ QueueFull
              ─ else admitted += 1 (release() gives it back when the submit enqueued nothing)

Within one process the limit is exact. Several API processes may together admit a little over
it within one REFRESH window; each submit script still refuses when its own shard alone is full.
"""

from __future__ import annotations

import asyncio
import time

from taskstore.errors import QueueFull
from taskstore.keys import Keys
from taskstore.topology import Client, route

REFRESH = 0.05
FAR_REFRESH = 1.0


class Admission:
    def __init__(self, redis: Client, keys: Keys, limit: int, retry_after: int) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit
        self.retry_after = retry_after
        self._length = 0
        self._admitted = 0
        self._read_at = -REFRESH
        self._refreshing: asyncio.Task[int] | None = None

    async def reserve(self) -> None:
        """Count one more queued task; QueueFull when the backlog is at the limit."""
        if self.limit <= 0:
            return
        if time.monotonic() - self._read_at >= self._max_age():
            await self._refresh()
        backlog = self._length + self._admitted
        if backlog >= self.limit:
            raise QueueFull(backlog, self.limit, self.retry_after)
        self._admitted += 1

    def _max_age(self) -> float:
        near = 2 * (self._length + self._admitted) >= self.limit
        return REFRESH if near else FAR_REFRESH

    def release(self) -> None:
        """A reserved submit enqueued nothing (answered from the cache, or its shard was full)."""
        if self.limit > 0 and self._admitted > 0:
            self._admitted -= 1

    async def _refresh(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._backlog())
        length = await asyncio.shield(self._refreshing)
        if time.monotonic() - self._read_at >= REFRESH:  # not reset by a concurrent refresh
            self._length, self._admitted, self._read_at = length, 0, time.monotonic()

    async def _backlog(self) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.keys.all_shards:
                pipe.execute_command("XLEN", shard.stream, **route(self.redis, shard.stream))
            lengths: list[int] = await pipe.execute()
        return sum(int(n) for n in lengths)
