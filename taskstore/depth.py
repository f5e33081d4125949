"""How deep the queue is, read in one round trip: what `/metrics` reports about the backlog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from taskstore.keys import Keys


@dataclass(frozen=True, slots=True)
class QueueDepth:
    length: int  # XLEN of the stream: waiting + running (acknowledged entries are deleted)
    pending: int  # delivered to a worker and not yet acknowledged: running or abandoned
    delayed: int  # retries waiting in the delayed set for their time
    dead: int  # entries in the dead-letter stream


async def queue_depth(redis: Redis, keys: Keys) -> QueueDepth:
    """Stream length, pending entries, delayed retries and dead letters, pipelined."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(keys.stream)
        pipe.xpending(keys.stream, keys.group)
        pipe.zcard(keys.delayed)
        pipe.xlen(keys.dead_letter)
        length, pending, delayed, dead = await pipe.execute(raise_on_error=False)
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
