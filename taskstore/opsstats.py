"""What GET /stats and the dashboard show per kind, from one read per Redis node (tallies.py).

    per kind   status counts from the shards' tallies (kept by index.lua, equal to the indexes'
               ZCARDs); DONE and FAILED per second from the tallies' ring of ends; delayed and
               dead letters from its queue shards' delayed sets and dead-letter streams; queued
               = PENDING - delayed: the tasks waiting for a worker (a stream's entries of tasks
               cancelled or ended elsewhere before a worker read them are not counted)

The cost does not grow with the number of tasks: one script call per node, whose work inside
is a few reads per shard.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from taskstore.model import TaskStatus
from taskstore.tallies import (
    Ask,
    OpsReader,
    ShardRead,
    Sidelined,
    Tallies,
    count_fields,
    end_fields,
    sidelined_sum,
)

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


async def read_stats(reader: OpsReader, now: float | None = None) -> Stats:
    """Everything, read afresh: the counts, two minutes of ends, every queue shard's delayed
    and dead letter counts."""
    now = time.time() if now is None else now
    kinds = reader.kinds
    fields = count_fields(kinds) + end_fields(kinds, range(int(now) - 2 * WINDOW, int(now) + 1))
    reads = await reader.read(fields, {tag: Ask(sidelined_kinds=kinds) for tag in reader.tags}, 0, now)
    tallies = Tallies()
    for read in reads.values():
        tallies.add(fields, read.fields)
    return build_stats(kinds, tallies, sidelined_of(reads.values()), now)


def sidelined_of(reads: Iterable[ShardRead]) -> dict[str, Sidelined]:
    """Each kind's delayed and dead letter counts, added up over the shards read."""
    by_kind: dict[str, list[Sidelined]] = defaultdict(list)
    for read in reads:
        for kind, part in read.sidelined.items():
            by_kind[kind].append(part)
    return {kind: sidelined_sum(parts) for kind, parts in by_kind.items()}


def build_stats(
    kinds: Sequence[str],
    tallies: Tallies,
    sidelined: dict[str, Sidelined],
    now: float,
    ends: Tallies | None = None,
) -> Stats:
    """Stats of `kinds` from their counts (`tallies`), delayed and dead letter counts and the
    ends by second (`ends`, `tallies` when None) of the two minutes before `now`."""
    ends = ends or tallies
    second = int(now)
    aside = {kind: sidelined.get(kind, Sidelined()) for kind in kinds}
    stats = {kind: _kind_stats(kind, tallies, ends, aside[kind], second) for kind in kinds}
    rows = [(s, *_ends(ends, kinds, s)) for s in range(second - 2 * WINDOW, second)]
    return Stats(time=now, kinds=stats, seconds=[(s, done, failed) for s, done, failed in rows])


def _ends(ends: Tallies, kinds: Iterable[str], second: int) -> tuple[int, int]:
    pairs = [ends.ends(kind, second) for kind in kinds]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def _kind_stats(kind: str, tallies: Tallies, ends: Tallies, aside: Sidelined, now: int) -> KindStats:
    last_minute = [ends.ends(kind, s) for s in range(now - WINDOW, now)]
    done, failed = sum(e[0] for e in last_minute), sum(e[1] for e in last_minute)
    return KindStats(
        queued=max(0, tallies.count(kind, TaskStatus.PENDING) - aside.delayed),
        delayed=aside.delayed,
        running=tallies.count(kind, TaskStatus.RUNNING),
        dead_letters=aside.dead,
        tasks={status: tallies.count(kind, status) for status in TaskStatus},
        done_last_minute=done,
        failed_last_minute=failed,
        done_per_second=done / WINDOW,
        failed_per_second=failed / WINDOW,
    )
