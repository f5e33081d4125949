"""What GET /stats and the dashboard show per kind, read in two pipelined round trips.

    queue_depth(kind)  XLEN, XPENDING summary, ZCARD delayed, XLEN dead letters (depth.py)
    per kind           ZCARD of each status index; HGETALL of the last two minutes' end buckets
                       (index.lua counts DONE and FAILED per second in one hash per minute)

The cost does not grow with the number of tasks: a dozen commands per kind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from taskstore.depth import queue_depth
from taskstore.index import status_indexes
from taskstore.keys import Keys
from taskstore.model import TaskStatus
from taskstore.topology import Client

WINDOW = 60  # seconds behind the rates


class KindStats(BaseModel):
    queued: int
    delayed: int
    running: int
    dead_letters: int
    tasks: dict[TaskStatus, int]
    done_last_minute: int
    failed_last_minute: int
    done_per_second: float
    failed_per_second: float


class Stats(BaseModel):
    """Counters by kind; `seconds` = [second, done, failed] of the last two minutes, all kinds."""

    time: float
    kinds: dict[str, KindStats]
    seconds: list[tuple[int, int, int]]


def kind_keys(keys: Keys, kind: str) -> Keys:
    """The keys of the kind's queue."""
    return keys.of_kind(kind)


async def read_stats(redis: Client, keys: Keys, kinds: Sequence[str], now: float | None = None) -> Stats:
    now = time.time() if now is None else now
    minute = int(now) // 60
    tags = keys.index_tags  # every index and end bucket is one shard's: read them all, add up
    async with redis.pipeline(transaction=False) as pipe:
        for kind in kinds:
            for shard_keys in status_indexes(keys, kind):
                for key in shard_keys:
                    pipe.zcard(key)
            for tag in tags:
                pipe.hgetall(keys.ends(kind, minute - 1, tag))
                pipe.hgetall(keys.ends(kind, minute, tag))
        replies: list[Any] = await pipe.execute()
    n = len(TaskStatus) * len(tags)
    per_kind = n + 2 * len(tags)
    stats, totals = {}, Ends()
    for i, kind in enumerate(kinds):
        replies_of_kind = replies[i * per_kind : (i + 1) * per_kind]
        zcards = replies_of_kind[:n]
        counts = [sum(int(c) for c in zcards[j : j + len(tags)]) for j in range(0, n, len(tags))]
        ends = Ends.of(replies_of_kind[n:])
        totals.merge(ends)
        stats[kind] = await _kind_stats(redis, kind_keys(keys, kind), counts, ends, int(now))
    return Stats(time=now, kinds=stats, seconds=totals.series(int(now) - 2 * WINDOW, int(now)))


async def _kind_stats(redis: Client, keys: Keys, counts: list[int], ends: Ends, now: int) -> KindStats:
    depth = (await queue_depth(redis, keys)).total
    done, failed = ends.total(now - WINDOW, now)
    return KindStats(
        queued=max(0, depth.length - depth.pending),
        delayed=depth.delayed,
        running=int(counts[list(TaskStatus).index(TaskStatus.RUNNING)]),
        dead_letters=depth.dead,
        tasks={status: int(n) for status, n in zip(TaskStatus, counts, strict=True)},
        done_last_minute=done,
        failed_last_minute=failed,
        done_per_second=done / WINDOW,
        failed_per_second=failed / WINDOW,
    )


class Ends:
    """DONE and FAILED counts by second, from end buckets (fields `<second>:<status>`)."""

    def __init__(self) -> None:
        self.by_second: dict[int, list[int]] = {}

    @classmethod
    def of(cls, buckets: Sequence[dict[bytes, bytes]]) -> Ends:
        ends = cls()
        for bucket in buckets:
            for field, value in bucket.items():
                second, _, status = field.decode().partition(":")
                ends._add(int(second), status, int(value))
        return ends

    def merge(self, other: Ends) -> None:
        for second, (done, failed) in other.by_second.items():
            self._add(second, TaskStatus.DONE, done)
            self._add(second, TaskStatus.FAILED, failed)

    def total(self, start: int, end: int) -> tuple[int, int]:
        """DONE and FAILED in the seconds [start, end)."""
        rows = [v for s, v in self.by_second.items() if start <= s < end]
        return sum(r[0] for r in rows), sum(r[1] for r in rows)

    def series(self, start: int, end: int) -> list[tuple[int, int, int]]:
        rows = [(s, self.by_second.get(s, [0, 0])) for s in range(start, end)]
        return [(s, row[0], row[1]) for s, row in rows]

    def _add(self, second: int, status: str, count: int) -> None:
        row = self.by_second.setdefault(second, [0, 0])
        row[0 if status == TaskStatus.DONE else 1] += count
