"""How deep the queue is, per shard and in sum: what `/metrics` and `/readyz` report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from taskstore.keys import Keys
from taskstore.topology import Client


@dataclass(frozen=True, slots=True)
class QueueDepth:
    length: int  # XLEN of the stream: waiting + running (acknowledged entries are deleted)
    pending: int  # delivered to a worker and not yet acknowledged: running or abandoned
    delayed: int  # retries and scheduled tasks waiting in the delayed set for their time
    dead: int  # entries in the dead-letter stream


@dataclass(frozen=True, slots=True)
class ShardedDepth:
    total: QueueDepth
    shards: dict[str, QueueDepth]  # by shard tag; "" is the queue of the layout before shards


async def queue_depth(redis: Client, keys: Keys) -> ShardedDepth:
    """Stream length, pending entries, delayed retries and dead letters of every shard, pipelined."""
    shards = keys.all_shards
    async with redis.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.xlen(shard.stream)
            pipe.xpending(shard.stream, keys.group)
            pipe.zcard(shard.delayed)
            pipe.xlen(shard.dead_letter)
        replies = await pipe.execute(raise_on_error=False)
    per_shard = {s.tag: _depth(replies[4 * i : 4 * i + 4]) for i, s in enumerate(shards)}
    return ShardedDepth(added(per_shard.values()), per_shard)


def added(depths: Iterable[QueueDepth]) -> QueueDepth:
    """The sum of shards' depths."""
    rows = list(depths)
    return QueueDepth(*(sum(getattr(d, f) for d in rows) for f in ("length", "pending", "delayed", "dead")))


async def queue_depths(redis: Client, keys: Keys, kinds: Sequence[str]) -> dict[str, ShardedDepth]:
    """The depth of each kind's queue, its shards read concurrently."""
    depths = await asyncio.gather(*(queue_depth(redis, keys.of_kind(kind)) for kind in kinds))
    return dict(zip(kinds, depths, strict=True))


def _depth(replies: list[Any]) -> QueueDepth:
    length, pending, delayed, dead = replies
    for reply in (length, delayed, dead):
        if isinstance(reply, Exception):
            raise reply
    return QueueDepth(int(length), _pending_count(pending), int(delayed), int(dead))


def _pending_count(reply: Any) -> int:
    if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
        return 0  # no worker has created the group yet: nothing can be pending
    if isinstance(reply, Exception):
        raise reply
    return int(reply["pending"])
