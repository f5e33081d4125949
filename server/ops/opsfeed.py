"""The dashboards' shared feed: one cheap read a second per API process, whatever the number
of open dashboards, and only while at least one is open.

    join() ─▶ first watcher starts the loop ─▶ backfill: the shards' rings of ends (5 minutes), once
           ─▶ every second, ONE script call per Redis node (taskstore/tallies.py), reading:
                - every shard's tallies: the status counts and the ends of the last seconds;
                  queued = PENDING - delayed, so no queue stream is read
                - the delayed and dead letter counts of a shard's queues every ASIDE_EVERY ticks
                  (staggered over the shards), on the tick after its tallies show a move that
                  changes them (a failure, a retry, a cancel), and while a delayed one is due
                - the newest ids of a few indexes: of those the open dashboards' live lists
                  tail, the ones the tallies read in the same call say something entered since
                  their heads were read, the longest unread first, until they may hold as many
                  new ids as the rows' budget allows (below)
              and the workers' hash every WORKERS_EVERY ticks (they beat every 2 s)
           ─▶ one JSON frame, encoded once ─▶ each watcher's on_tick(): it sends the latest frame
           ─▶ read_states(): a list that subscribed to the new ids it took from the heads reads
              their states, all in one call per node (read after the subscription, so no event
              falls between)
    leave() ─▶ the loop ends with the last watcher; the chart points stay (a reload keeps them)

The rows' budget: ROWS_PER_TICK new rows a tick, saved up to HEAD. While few tasks arrive,
every one is read at the next tick; under load the heads are read when HEAD rows are saved, so
the lists take a batch of HEAD every HEAD / ROWS_PER_TICK seconds, each batch costing a
subscription and an unsubscription per row and one call reading their states, whatever the
task rate.

So a second costs one call per node, an HMGET per shard, the rows' budget and the rare delayed
and dead-letter counts: none of it follows the task rate. A second's ends never change once it
is over, so only the last few are read again; the rest of the chart stays here. What a
scheduled submit adds to the delayed set is tallied as any submit, so until the next staggered
read it counts as queued (at most ASIDE_EVERY seconds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError

from server.ops import metrics
from taskstore import TERMINAL, TaskStatus
from taskstore.index import Position, TaskIndex
from taskstore.opsstats import Stats, build_stats
from taskstore.tallies import (
    Ask,
    HeadAsk,
    OpsReader,
    Sidelined,
    Tallies,
    count_fields,
    end_fields,
    in_fields,
    out_fields,
    sidelined_sum,
)
from taskstore.workers import Heartbeats, WorkerBeat

log = logging.getLogger(__name__)

HISTORY = 300  # seconds of chart points
HEAD = 3  # newest ids read per index: as many as a list's tail takes in a tick
ROWS_PER_TICK = 1.0  # the rows' budget: new rows a second that the live lists may take
RECENT = 4  # seconds of ends read again each tick: the current one, and a margin for clock skew
ASIDE_EVERY = 10  # ticks between reads of a queue shard's delayed and dead letter counts
WORKERS_EVERY = 2  # ticks between reads of the workers' heartbeats

Point = list[float | int | None]  # [second, done, failed, queued, running]


class Watcher(Protocol):
    """An open dashboard, as the feed sees it."""

    def on_tick(self) -> None:
        """A new frame is ready (called after every sample)."""

    def tailed(self) -> list[str]:
        """The index keys whose newest ids its live list waits for (none when not live)."""


@dataclass(frozen=True, slots=True)
class Headed:
    """An index as the tallies gave it when its head was read (or when a list began tailing it:
    what was in it then is on the list's first page)."""

    entered: int  # members that ever entered it
    tick: int  # when its head was read; -1 for never


def _aside_fields(kind: str) -> list[str]:
    """The tallies of the moves that change a delayed set or the dead letters: a failure (its
    dead letter), a retry (into the delayed set), a cancel of a waiting task (out of it)."""
    return [*in_fields(kind, TaskStatus.FAILED), f"{kind} RUNNING>PENDING", f"{kind} PENDING>CANCELLED"]


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
        self._rows = float(HEAD)  # the rows' budget
        self.ticks = 0
        self._ends = Tallies()  # DONE and FAILED by kind and second, for the chart and the rates
        self._seen: dict[str, dict[str, int]] = {}  # each shard's count fields, last read
        self._headed: dict[str, Headed] = {}  # by index key
        self._sidelined: dict[tuple[str, str], Sidelined] = {}  # (kind, tag) -> last read
        self._moved_aside: set[str] = set()  # tags whose delayed or dead letter counts may have moved
        self._workers: list[WorkerBeat] = []
        self._samples: dict[int, tuple[int, int]] = {}  # second -> (queued, running) as sampled
        self._count_fields = count_fields(self.kinds)
        self._aside_fields = [f for kind in self.kinds for f in _aside_fields(kind)]
        self._index_of = {
            reader.keys.index(kind, status, tag): (kind, status, tag)
            for kind in self.kinds
            for status in TaskStatus
            for tag in reader.tags
        }
        self._indexes: dict[str, list[str]] = defaultdict(list)  # by tag
        for key, (_, _, tag) in self._index_of.items():
            self._indexes[tag].append(key)
        new = {shard.tag for kind in self.kinds for shard in reader.keys.of_kind(kind).shards}
        self._closed = set(reader.tags) - new  # shards no new task goes to
        self._backfilled = False
        self._watchers: set[Watcher] = set()
        self._loop: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    async def join(self, watcher: Watcher) -> None:
        """Call `watcher.on_tick` after every sample from now on; returns once a frame exists."""
        self._watchers.add(watcher)
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run(), name="ops-feed")
        await self._first.wait()

    def leave(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)

    async def _run(self) -> None:
        self._backfilled = False  # the seconds while no one watched are read again
        while self._watchers:
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
        for watcher in list(self._watchers):
            watcher.on_tick()

    async def _sample(self, now: float) -> Stats:
        if not self._backfilled:
            await self._read_ends(range(int(now) - HISTORY, int(now) + 1), now)
            self._backfilled = True
        tallies = await self._read(now)
        if self.ticks % WORKERS_EVERY == 0:
            self._workers = await self.heartbeats.live(self.gone_after, now)
            metrics.ops_reads(1, 0)  # its HGETALL (a dead worker's HDEL aside)
        stats = build_stats(self.kinds, tallies, self._kind_sidelined(), now, ends=self._ends)
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

    async def _read(self, now: float) -> Tallies:
        """A tick's one call per node: every shard's counts and its ends of the last RECENT
        seconds, the delayed and dead letter counts of the shards due a look, the heads of the
        tailed indexes that those counts say moved."""
        counts = self._count_fields
        recent = range(int(now) - RECENT + 1, int(now) + 1)
        fields = counts + end_fields(self.kinds, recent)
        tailed = {key for watcher in self._watchers for key in watcher.tailed()}
        rows = self._rows_due(tailed)
        asks = {}
        for n, tag in enumerate(self.reader.tags):
            tallies = self._tallies_due(tag, n)
            heads = self._head_asks(tag, tailed) if tallies and rows else []
            asks[tag] = Ask(tallies, self._aside_kinds(tag, n, now), heads)
        reads = await self.reader.read(fields, asks, HEAD, now, rows=rows)
        for tag, read in reads.items():
            if asks[tag].sidelined_kinds:
                self._moved_aside.discard(tag)
            if asks[tag].tallies:
                self._note_counts(tag, read.fields)
            for kind, sidelined in read.sidelined.items():
                self._sidelined[(kind, tag)] = sidelined
        self._take_heads([read.heads for read in reads.values()], rows)
        self._keep_ends(recent, fields, [read.fields for read in reads.values() if read.fields])
        return Tallies(values=self._counts())

    def is_final(self, key: str) -> bool:
        """Whether the index holds tasks that ended (their states never change)."""
        return self._index_of[key][1] in TERMINAL

    async def read_states(self, task_ids: list[str]) -> dict[str, bytes | None]:
        """The tasks' state JSON (None: gone), one call per node whatever their shards."""
        asks: dict[str, Ask] = defaultdict(lambda: Ask(tallies=False))
        for task_id in task_ids:
            asks[self.reader.keys.index_tag(task_id)].states.append(task_id)
        reads = await self.reader.read([], dict(asks), HEAD, time.time())
        return {task_id: state for read in reads.values() for task_id, state in read.states.items()}

    def _counts(self) -> dict[str, int]:
        """Every shard's counts as last read, added up."""
        total: dict[str, int] = defaultdict(int)
        for seen in self._seen.values():
            for name, value in seen.items():
                total[name] += value
        return dict(total)

    def _take_heads(self, reads: list[dict[str, list[Position]]], rows: int) -> None:
        """Keep the heads read; of the ids new in them, only the newest `rows` (each node's call
        reads up to `rows`: a cluster's would be several times the budget), which the budget
        pays for. Under load the rest are passed over: the lists show a sample."""
        new: list[tuple[Position, str]] = []
        for heads in reads:
            for key, positions in heads.items():
                new += [(p, key) for p in positions if p not in self.heads.get(key, [])]
                self.heads[key] = positions
                self._headed[key] = Headed(self._index_size(key)[0], self.ticks)
        for position, key in sorted(new, reverse=True)[rows:]:
            self.heads[key].remove(position)
        self._rows -= min(rows, len(new))

    def _rows_due(self, tailed: set[str]) -> int:
        """How many new rows this tick's heads may hold: none until a whole one is saved; then,
        while the tailed indexes took no more than the budget since their heads were read (by
        the last tallies), what is saved; under load nothing until HEAD are."""
        self._rows = min(float(HEAD), self._rows + ROWS_PER_TICK)
        waiting = 0
        for key in tailed:
            headed = self._headed.get(key)
            waiting += 0 if headed is None else self._index_size(key)[0] - headed.entered
        return int(self._rows) if self._rows >= HEAD or waiting <= self._rows else 0

    def _tallies_due(self, tag: str, n: int) -> bool:
        """Every shard's tallies are read every tick, but those of a shard no new task goes to
        (the legacy queue's) while its indexes are empty: only a task from before the indexes
        could enter them, so they are read on the shard's turn (every ASIDE_EVERY ticks)."""
        if tag not in self._closed or tag not in self._seen or self._turn(tag, n):
            return True
        return any(self._index_size(key)[1] for key in self._indexes[tag])

    def _turn(self, tag: str, n: int) -> bool:
        """The n-th shard's turn for its rare reads: every ASIDE_EVERY ticks, staggered, so the
        reads are spread over the ticks."""
        return (self.ticks + n) % ASIDE_EVERY == 0

    def _note_counts(self, tag: str, reply: list[bytes | None]) -> None:
        seen = {f: int(v) for f, v in zip(self._count_fields, reply, strict=False) if v is not None}
        before = self._seen.get(tag, {})
        if any(seen.get(f) != before.get(f) for f in self._aside_fields):
            self._moved_aside.add(tag)
        self._seen[tag] = seen

    def _aside_kinds(self, tag: str, n: int, now: float) -> list[str]:
        """The kinds whose delayed and dead letter counts to read in shard `tag` (the n-th):
        all, on its turn, after a move that changes them, while a delayed task is due (the
        promoter moves it onto the stream), or when they were never read."""
        kinds = [kind for kind in self.kinds if self.reader.queue_shard(kind, tag) is not None]
        known = [self._sidelined.get((kind, tag)) for kind in kinds]
        due = any(k is None or (k.due is not None and k.due <= now) for k in known)
        return kinds if due or self._turn(tag, n) or tag in self._moved_aside else []

    def _head_asks(self, tag: str, tailed: set[str]) -> list[HeadAsk]:
        """The shard's indexes that live lists tail, as their heads were last read, ranked by
        when (the longest unread first). One a list begins to tail is taken as read now: what
        it holds is on the list's first page."""
        asks = []
        for key in self._indexes[tag]:
            if key in tailed:
                headed = self._headed.setdefault(key, Headed(self._index_size(key)[0], -1))
                asks.append(HeadAsk(key, headed.tick, headed.entered))
        return asks

    def _index_size(self, key: str) -> tuple[int, int]:
        """What entered the index, and its size, by the tallies last read."""
        kind, status, tag = self._index_of[key]
        seen = self._seen.get(tag, {})
        entered = sum(seen.get(f, 0) for f in in_fields(kind, status))
        return entered, entered - sum(seen.get(f, 0) for f in out_fields(kind, status))

    def _kind_sidelined(self) -> dict[str, Sidelined]:
        by_kind: dict[str, list[Sidelined]] = defaultdict(list)
        for (kind, _), sidelined in self._sidelined.items():
            by_kind[kind].append(sidelined)
        return {kind: sidelined_sum(by_kind[kind]) for kind in self.kinds}

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
