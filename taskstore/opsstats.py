"""What GET /stats and the dashboard show per kind, from one read per Redis node (tallies.py).

    per kind   status counts from the shards' tallies (kept by index.lua, equal to the indexes'
               ZCARDs); DONE and FAILED per second from the tallies' ring of ends; queued,
               delayed and dead letters from the depth of its queue shards (depth.py's figures)

The cost does not grow with the number of tasks: one script call per node, whose work inside
is a few reads per shard.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from taskstore.depth import QueueDepth, added
from taskstore.model import TaskStatus
from taskstore.tallies import Ask, OpsReader, ShardRead, Tallies, count_fields, end_fields

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
    """Everything, read afresh: the counts, two minutes of ends and every queue shard's depth."""
    now = time.time() if now is None else now
    kinds = reader.kinds
    fields = count_fields(kinds) + end_fields(kinds, range(int(now) - 2 * WINDOW, int(now) + 1))
    reads = await reader.read(fields, {tag: Ask(depth_kinds=kinds) for tag in reader.tags}, 0, now)
    tallies = Tallies()
    for read in reads.values():
        tallies.add(fields, read.fields)
    return build_stats(kinds, tallies, depths_of(reads.values()), now)


def depths_of(reads: Iterable[ShardRead]) -> dict[str, QueueDepth]:
    """Each kind's queue depth, added up over the shards read."""
    by_kind: dict[str, list[QueueDepth]] = defaultdict(list)
    for read in reads:
        for kind, depth in read.depths.items():
            by_kind[kind].append(depth)
    return {kind: added(depths) for kind, depths in by_kind.items()}


def build_stats(
    kinds: Sequence[str],
    tallies: Tallies,
    depths: dict[str, QueueDepth],
    now: float,
    ends: Tallies | None = None,
) -> Stats:
    """Stats of `kinds` from their counts (`tallies`), queue depths and the ends by second
    (`ends`, `tallies` when None) of the two minutes before `now`."""
    ends = ends or tallies
    second = int(now)
    stats = {kind: _kind_stats(kind, tallies, ends, depths[kind], second) for kind in kinds}
    rows = [(s, *_ends(ends, kinds, s)) for s in range(second - 2 * WINDOW, second)]
    return Stats(time=now, kinds=stats, seconds=[(s, done, failed) for s, done, failed in rows])


def _ends(ends: Tallies, kinds: Iterable[str], second: int) -> tuple[int, int]:
    pairs = [ends.ends(kind, second) for kind in kinds]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def _kind_stats(kind: str, tallies: Tallies, ends: Tallies, depth: QueueDepth, now: int) -> KindStats:
    last_minute = [ends.ends(kind, s) for s in range(now - WINDOW, now)]
    done, failed = sum(e[0] for e in last_minute), sum(e[1] for e in last_minute)
    return KindStats(
        queued=max(0, depth.length - depth.pending),
        delayed=depth.delayed,
        running=tallies.count(kind, TaskStatus.RUNNING),
        dead_letters=depth.dead,
        tasks={status: tallies.count(kind, status) for status in TaskStatus},
        done_last_minute=done,
        failed_last_minute=failed,
        done_per_second=done / WINDOW,
        failed_per_second=failed / WINDOW,
    )
