"""The dashboards' shared feed: one cheap read a second per API process, whatever the number
of open dashboards, and only while at least one is open.

    join() ─▶ first user starts the loop ─▶ backfill: the shards' rings of ends (5 minutes), once
           ─▶ every second, one script call per Redis node (taskstore/tallies.py):
                1. every shard's tallies: the status counts and the ends of the last seconds
                2. only where those moved (and every DEPTH_EVERY ticks): the queue depth of the
                   shards that changed (stream length and pending; the delayed and dead counts
                   every DEPTH_EVERY ticks), the newest ids of the indexes that changed
              and the workers' hash every WORKERS_EVERY ticks (they beat every 2 s)
           ─▶ one JSON frame, encoded once ─▶ each session's on_tick(): it sends the latest frame
    leave() ─▶ the loop ends with the last user; the chart points stay (a reload keeps them)

Idle, that is one call per node a second; under load two. A second's ends never change once
it is over, so only the last few are read again; the rest of the chart stays here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
from redis.exceptions import RedisError

from server.ops import metrics
from taskstore import TaskStatus
from taskstore.depth import QueueDepth, added
from taskstore.index import Position, TaskIndex
from taskstore.opsstats import Stats, build_stats
from taskstore.tallies import (
    Ask,
    OpsReader,
    Tallies,
    count_fields,
    end_fields,
    in_fields,
    out_fields,
)
from taskstore.workers import Heartbeats, WorkerBeat

log = logging.getLogger(__name__)

HISTORY = 300  # seconds of chart points
HEAD = 20  # newest ids read per index, for the dashboards' live lists
RECENT = 4  # seconds of ends read again each tick: the current one, and a margin for clock skew
DEPTH_AFTER = 2  # ticks a shard's queue depth is read again after its counts moved (acks lag)
DEPTH_EVERY = 5  # ticks between reads of every queue shard's whole depth, changed or not
WORKERS_EVERY = 2  # ticks between reads of the workers' heartbeats

Point = list[float | int | None]  # [second, done, failed, queued, running]


class OpsFeed:
    def __init__(
        self, reader: OpsReader, index: TaskIndex, heartbeats: Heartbeats, *, gone_after: float
    ) -> None:
        self.reader = reader
        self.kinds = reader.kinds
        self.index = index
        self.heartbeats = heartbeats
        self.gone_after = gone_after
        self.frame = ""
        self.heads: dict[str, list[Position]] = {}
        self.ticks = 0
        self._ends = Tallies()  # DONE and FAILED by kind and second, for the chart and the rates
        self._seen: dict[str, dict[str, int]] = {}  # each shard's count fields, last read
        self._headed: dict[str, tuple[int, ...]] = {}  # index key -> its tallies when heads were read
        self._depths: dict[tuple[str, str], QueueDepth] = {}  # (kind, tag) -> last depth read
        self._changed_at: dict[str, int] = {}  # tag -> the last tick its counts changed
        self._workers: list[WorkerBeat] = []
        self._samples: dict[int, tuple[int, int]] = {}  # second -> (queued, running) as sampled
        self._count_fields = count_fields(self.kinds)
        self._index_of = {
            reader.keys.index(kind, status, tag): (kind, status, tag)
            for kind in self.kinds
            for status in TaskStatus
            for tag in reader.tags
        }
        self._backfilled = False
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
        self._backfilled = False  # the seconds while no one watched are read again
        while self._listeners:
            started = time.time()
            await self._tick(started)
            # Ticks on the second: every dashboard of every process moves in step.
            await asyncio.sleep(1.0 - (time.time() % 1.0))

    async def _tick(self, now: float) -> None:
        try:
            stats = await self._sample(now)
            self.frame = self._encode(now, stats, redis_ok=True).decode()
        except (RedisError, OSError) as e:
            log.warning("dashboard feed: cannot read Redis: %s", e)
            self.frame = orjson.dumps(
                {"type": "stats", "time": now, "redis_ok": False, "error": str(e)}
            ).decode()
        self.ticks += 1
        self._first.set()
        for listener in list(self._listeners):
            listener()

    async def _sample(self, now: float) -> Stats:
        if not self._backfilled:
            await self._read_ends(range(int(now) - HISTORY, int(now) + 1), now)
            self._backfilled = True
        tallies = await self._read_tallies(now)
        await self._read_changes(now)
        if self.ticks % WORKERS_EVERY == 0:
            self._workers = await self.heartbeats.live(self.gone_after, now)
            metrics.ops_reads(1, 0)  # its HGETALL (a dead worker's HDEL aside)
        stats = build_stats(self.kinds, tallies, self._kind_depths(), now, ends=self._ends)
        self._record(int(now), stats)
        return stats

    # -- reads -----------------------------------------------------------------------------

    async def _read_ends(self, seconds: range, now: float) -> None:
        """The ends of `seconds` from every shard's ring, replacing what is kept of them."""
        fields = end_fields(self.kinds, seconds)
        reads = await self.reader.read(fields, {tag: Ask() for tag in self.reader.tags}, 0, now)
        self._keep_ends(seconds, fields, [read.fields for read in reads.values()])

    def _keep_ends(self, seconds: range, fields: list[str], replies: list[list[bytes | None]]) -> None:
        fresh = Tallies()
        for reply in replies:
            fresh.add(fields, reply)
        for second in seconds:
            for kind in self.kinds:
                self._ends.by_second[(kind, second)] = list(fresh.ends(kind, second))
        oldest = seconds.stop - HISTORY - 1
        for old in [key for key in self._ends.by_second if key[1] < oldest]:
            del self._ends.by_second[old]

    async def _read_tallies(self, now: float) -> Tallies:
        """Every shard's counts and its ends of the last RECENT seconds (call 1 of a tick)."""
        counts = self._count_fields
        recent = range(int(now) - RECENT + 1, int(now) + 1)
        fields = counts + end_fields(self.kinds, recent)
        reads = await self.reader.read(fields, {tag: Ask() for tag in self.reader.tags}, 0, now)
        tallies = Tallies()
        for tag, read in reads.items():
            tallies.add(counts, read.fields[: len(counts)])
            seen = {f: int(v) for f, v in zip(counts, read.fields, strict=False) if v is not None}
            if seen != self._seen.get(tag):
                self._changed_at[tag] = self.ticks
            self._seen[tag] = seen
        self._keep_ends(recent, fields, [read.fields for read in reads.values()])
        return tallies

    async def _read_changes(self, now: float) -> None:
        """The depth of the shards whose counts changed in the last DEPTH_AFTER ticks (of every
        shard, delayed and dead counts too, every DEPTH_EVERY ticks: a due retry or a requeue
        moves no count), the heads of the indexes whose counts changed since their heads were
        read (call 2, when any)."""
        every = self.ticks % DEPTH_EVERY == 0
        asks: dict[str, Ask] = {}
        for tag in self.reader.tags:
            changed_at = self._changed_at.get(tag)
            changed = every or (changed_at is not None and self.ticks - changed_at <= DEPTH_AFTER)
            depth_kinds = self.kinds if changed else []
            full = every or any((kind, tag) not in self._depths for kind in depth_kinds)
            heads = self._stale_heads(tag)
            asks[tag] = Ask(tallies=False, depth_kinds=depth_kinds, heads=heads, depth_full=full)
        reads = await self.reader.read([], asks, HEAD, now)
        for tag, read in reads.items():
            for kind, depth in read.depths.items():
                self._depths[(kind, tag)] = self._with_known(self._depths.get((kind, tag)), depth)
            for key, positions in read.heads.items():
                self.heads[key] = positions
                self._headed[key] = self._index_tally(key)

    @staticmethod
    def _with_known(known: QueueDepth | None, read: QueueDepth) -> QueueDepth:
        """`read`, its delayed and dead counts taken from `known` where they were not read (-1)."""
        if read.delayed >= 0 or known is None:
            return read
        return replace(read, delayed=known.delayed, dead=known.dead)

    def _stale_heads(self, tag: str) -> list[str]:
        """The indexes of the shard whose members changed since their heads were read."""
        keys = [self.reader.keys.index(kind, status, tag) for kind in self.kinds for status in TaskStatus]
        return [key for key in keys if self._headed.get(key) != self._index_tally(key)]

    def _index_tally(self, key: str) -> tuple[int, ...]:
        """What entered and left the index, as last read: its heads change only with these."""
        kind, status, tag = self._index_of[key]
        seen = self._seen.get(tag, {})
        return tuple(seen.get(f, 0) for f in in_fields(kind, status) + out_fields(kind, status))

    def _kind_depths(self) -> dict[str, QueueDepth]:
        return {kind: added(d for (k, _), d in self._depths.items() if k == kind) for kind in self.kinds}

    # -- the frame -------------------------------------------------------------------------

    def _record(self, second: int, stats: Stats) -> None:
        kinds = stats.kinds.values()
        self._samples[second] = (sum(k.queued for k in kinds), sum(k.running for k in kinds))
        for old in [s for s in self._samples if s <= second - HISTORY]:
            del self._samples[old]

    def _series(self, second: int) -> list[Point]:
        """[second, done, failed, queued, running] of the last HISTORY seconds; queued and
        running are null where no sample was taken (no dashboard was open)."""
        points: list[Point] = []
        for at in range(second - HISTORY + 1, second + 1):
            ends = [self._ends.ends(kind, at) for kind in self.kinds]
            queued, running = self._samples.get(at, (None, None))
            points.append([at, sum(e[0] for e in ends), sum(e[1] for e in ends), queued, running])
        return points

    def _encode(self, now: float, stats: Stats, *, redis_ok: bool) -> bytes:
        body: dict[str, Any] = {
            "type": "stats",
            "time": now,
            "redis_ok": redis_ok,
            "kinds": stats.model_dump(mode="json")["kinds"],
            "workers": [w.model_dump(mode="json") for w in self._workers],
            "worker_gone_after": self.gone_after,
            "series": self._series(int(now)),
        }
        return orjson.dumps(body)
