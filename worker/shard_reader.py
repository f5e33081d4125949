"""Reading every queue shard fairly, and waking within milliseconds when idle, without polling.

    read(free):  sweep ─▶ entries? ─▶ return them
                   │ none
                   ▼
                 idle: one watcher per shard blocks in XREAD after the last entry it saw (sees
                 new entries, consumes none) ─▶ first new entry anywhere ─▶ sweep again
                 (or READ_BLOCK_MS ─▶ return none; the next read sweeps)

A sweep never takes more than `free` entries (no worker hoards work it has no slot for). It
starts one shard further each time (round robin), splits `free` over the shards it asks, then
asks again those that gave all they were asked for (they may hold more). Woken by a watcher, it
asks that watcher's shard first and returns as soon as it has something. A hot shard thus never
starves the others, and with many free slots one pipelined pass (one round trip per primary)
reads every shard. XREADGROUP cannot block on shards in different slots at once, hence watchers:
blocking XREAD consumes nothing, so a watcher woken for nothing costs nothing but its command.

Idle cost per worker, S = shards (+1 for the pre-shard queue on a single node): S watcher XREADs
and S sweep XREADGROUPs per READ_BLOCK_MS (at most; fewer while busy). No new entry waits for READ_BLOCK_MS:
each watcher reads after the last entry it saw, so one added while it was not blocked wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from taskstore import Entry, TaskQueue
from taskstore.keys import Shard
from worker.loops import REDIS_DOWN, sleep_unless

log = logging.getLogger(__name__)


class ShardReader:
    def __init__(self, queue: TaskQueue, consumer: str, block_ms: int) -> None:
        self.queue = queue
        self.consumer = consumer
        self.block_ms = block_ms
        self.shards = queue.shards
        self._start = 0
        self._idle = asyncio.Event()
        self._fresh = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []
        self._woken: list[Shard] = []  # shards a watcher saw a new entry in: asked first
        self._closing = False

    async def read(self, free: int, stop: asyncio.Event) -> list[Entry]:
        """Up to `free` new entries; when there are none, waits until a shard has a new one and
        sweeps again; after READ_BLOCK_MS (or `stop`) returns none (the next read sweeps)."""
        # Cleared before the sweep: a watcher that sees an entry during the sweep wakes the wait.
        self._fresh.clear()
        entries = await self.sweep(free)
        if entries:
            return entries
        self._start_watchers()
        self._idle.set()
        try:
            await _first_of(self._fresh, stop, timeout=self.block_ms / 1000)
        finally:
            self._idle.clear()
        return await self.sweep(free) if self._fresh.is_set() and not stop.is_set() else []

    async def sweep(self, free: int) -> list[Entry]:
        """Up to `free` entries over every shard, fairly; one or a few round trips."""
        order = self.shards[self._start :] + self.shards[: self._start]
        self._start = (self._start + 1) % len(self.shards)
        found: list[Entry] = []
        # `more`: shards that may hold more (woken by a watcher, or gave all they were asked for)
        asked, more = 0, list(dict.fromkeys(self._woken))
        # A reader woken by a watcher returns as soon as it found something (one round trip),
        # instead of scanning every shard for the rest of its free slots.
        woken, self._woken = bool(self._woken), []
        while free > len(found) and (more or (asked < len(order) and not (woken and found))):
            remaining = free - len(found)
            if more:
                ask, more = more[:remaining], more[remaining:]
            else:
                ask = order[asked : asked + remaining]
                asked += len(ask)
            counts = _split(remaining, ask)
            got = await self.queue.read(self.consumer, counts)
            found += [e for entries in got for e in entries]
            more += [s for (s, count), entries in zip(counts, got, strict=True) if len(entries) == count]
        return found

    async def close(self) -> None:
        self._closing = True
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []

    def _start_watchers(self) -> None:
        if not self._watchers:
            self._watchers = [
                asyncio.create_task(self._watch(shard), name=f"watch-{shard.tag or 'legacy'}")
                for shard in self.shards
            ]

    async def _watch(self, shard: Shard) -> None:
        never = asyncio.Event()
        # Each XREAD waits for entries after the last one this watcher saw (not "$", the end at
        # the time it arrives): an entry added while the watcher was not blocked is not missed.
        # From "0-0" the first XREAD returns what the stream holds (entries running elsewhere,
        # at most 100 a call): a few wake-ups for nothing, once.
        last = "0-0"
        while not self._closing:
            await self._idle.wait()
            try:
                newest = await self.queue.wait_new(shard, self.block_ms, last)
                if newest is not None:
                    last = newest
                    self._woken.append(shard)
                    self._fresh.set()
            except REDIS_DOWN as e:
                # redis-py may turn the cancellation of a blocked read into a connection error.
                log.debug("watcher of shard %r: %s", shard.tag, e)  # the read loop reports outages
                await sleep_unless(never, 0.5)


def _split(total: int, shards: list[Shard]) -> list[tuple[Shard, int]]:
    """`total` spread over `shards` as evenly as can be (the first ones get the remainder)."""
    share, extra = divmod(total, len(shards))
    return [(s, share + (1 if i < extra else 0)) for i, s in enumerate(shards)]


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)
