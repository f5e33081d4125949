"""The dashboards' shared feed: one cheap read a second per API process, whatever the number
of open dashboards, and only while at least one is open.

    join() ─▶ first user starts the loop ─▶ every second: read_stats + workers + the newest ids of
              each index (3 round trips, ~20 commands) ─▶ one JSON frame, encoded once
           ─▶ each session's on_tick(): it sends the latest frame when its socket is free
    leave() ─▶ the loop ends with the last user; the chart points stay (a reload keeps them)

The frame carries the last 5 minutes of per-second points for the charts: DONE and FAILED from
the end buckets (backfilled from Redis for the last two minutes), queued and running as sampled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from taskstore import Keys, TaskStatus
from taskstore.index import Position, TaskIndex
from taskstore.opsstats import Stats, read_stats
from taskstore.topology import Client
from taskstore.workers import Heartbeats, WorkerBeat

log = logging.getLogger(__name__)

HISTORY = 300  # seconds of chart points
HEAD = 20  # newest ids read per index, for the dashboards' live lists

Point = list[float | int | None]  # [second, done, failed, queued, running]


class OpsFeed:
    def __init__(
        self, redis: Client, keys: Keys, kinds: Sequence[str], index: TaskIndex, *, gone_after: float
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.kinds = list(kinds)
        self.index = index
        self.heartbeats = Heartbeats(redis, keys)
        self.gone_after = gone_after
        self.frame = ""
        self.heads: dict[str, list[Position]] = {}
        self.ticks = 0
        self._points: dict[int, Point] = {}
        self._listeners: set[Callable[[], None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    async def join(self, on_tick: Callable[[], None]) -> None:
        """Call `on_tick` after every sample from now on; returns once a frame exists."""
        self._listeners.add(on_tick)
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run(), name="ops-feed")
        await self._first.wait()

    def leave(self, on_tick: Callable[[], None]) -> None:
        self._listeners.discard(on_tick)

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)

    async def _run(self) -> None:
        while self._listeners:
            started = time.time()
            await self._tick(started)
            # Ticks on the second: every dashboard of every process moves in step.
            await asyncio.sleep(1.0 - (time.time() % 1.0))

    async def _tick(self, now: float) -> None:
        try:
            stats, workers = await self._sample(now)
            self.frame = self._encode(now, stats, workers, redis_ok=True).decode()
        except (RedisError, OSError) as e:
            log.warning("dashboard feed: cannot read Redis: %s", e)
            self.frame = orjson.dumps(
                {"type": "stats", "time": now, "redis_ok": False, "error": str(e)}
            ).decode()
        self.ticks += 1
        self._first.set()
        for listener in list(self._listeners):
            listener()

    async def _sample(self, now: float) -> tuple[Stats, list[WorkerBeat]]:
        stats = await read_stats(self.redis, self.keys, self.kinds, now)
        workers = await self.heartbeats.live(self.gone_after, now)
        keys = self.index.index_keys(self.kinds, list(TaskStatus))
        self.heads = dict(zip(keys, await self.index.newest(keys, HEAD, now), strict=True))
        self._record(int(now), stats)
        return stats, workers

    def _record(self, second: int, stats: Stats) -> None:
        kinds = stats.kinds.values()
        self._points[second] = [second, 0, 0, sum(k.queued for k in kinds), sum(k.running for k in kinds)]
        for at, done, failed in stats.seconds:
            point = self._points.setdefault(at, [at, 0, 0, None, None])
            point[1], point[2] = done, failed
        for old in [s for s in self._points if s <= second - HISTORY]:
            del self._points[old]

    def _encode(self, now: float, stats: Stats, workers: list[WorkerBeat], *, redis_ok: bool) -> bytes:
        body: dict[str, Any] = {
            "type": "stats",
            "time": now,
            "redis_ok": redis_ok,
            "kinds": stats.model_dump(mode="json")["kinds"],
            "workers": [w.model_dump(mode="json") for w in workers],
            "worker_gone_after": self.gone_after,
            "series": [self._points[s] for s in sorted(self._points)],
        }
        return orjson.dumps(body)
