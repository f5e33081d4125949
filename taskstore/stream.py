"""The task stream and its consumer group: read, acknowledge, reclaim, lease, retry later.

XADD (submit.lua) ─▶ stream ─XREADGROUP─▶ worker ─XACK+XDEL─▶ gone (the stream is the backlog)
                       ▲        └─ idle > visibility ─XAUTOCLAIM─▶ another worker
                       └─ promote.lua ◀─ delayed set (ZADD task_id, score = due time) ◀─ retry
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from taskstore.keys import Keys
from taskstore.scripts import Script


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    task_id: str


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """One XAUTOCLAIM page: entries now ours, entries gone from the stream, where to go on."""

    entries: list[Entry]
    deleted: list[str]
    cursor: str


LOST = "lost"
_YEAR_MS = 365 * 24 * 3600 * 1000


class TaskQueue:
    def __init__(self, redis: Redis, keys: Keys | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self._promote = Script(_lua("promote.lua"))
        self._lease = Script(_lua("lease.lua"))

    async def ensure_group(self) -> None:
        """Create the workers' consumer group (and the stream) if missing."""
        try:
            await self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def live_consumers(self, idle_ms: int) -> int:
        """Consumers of the group that read or renewed a lease in the last `idle_ms`: live workers."""
        # A worker with a free slot blocks in XREADGROUP, one with running tasks renews their
        # leases (XCLAIM), both at least every second or so: either resets its idle time.
        try:
            consumers: list[dict[Any, Any]] = await self.redis.xinfo_consumers(
                self.keys.stream, self.keys.group
            )
        except ResponseError:  # no stream or no group (Redis lost its data): no live worker
            return 0
        return sum(1 for c in consumers if int(c.get("idle", c.get(b"idle", 0))) < idle_ms)

    async def read(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """Up to `count` new entries for this consumer, waiting at most `block_ms`."""
        reply: Any = await self.redis.xreadgroup(
            self.keys.group, consumer, {self.keys.stream: ">"}, count=count, block=block_ms
        )
        if not reply:
            return []
        return [_entry(entry_id, fields) for entry_id, fields in reply[0][1]]

    async def ack(self, entry_ids: Sequence[str]) -> None:
        """Acknowledge and delete finished entries, so the stream holds only the backlog."""
        if not entry_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue_ack(pipe, entry_ids)
            await pipe.execute()

    def queue_ack(self, pipe: Pipeline, entry_ids: Sequence[str]) -> None:
        """Queue XACK + XDEL of `entry_ids` into `pipe`; nothing when there are none."""
        if entry_ids:
            pipe.xack(self.keys.stream, self.keys.group, *entry_ids)
            pipe.xdel(self.keys.stream, *entry_ids)

    async def backlog(self) -> int:
        """Entries not yet acknowledged: waiting plus running."""
        return int(await self.redis.xlen(self.keys.stream))

    async def outstanding(self) -> int:
        """Entries not yet acknowledged plus retries waiting in the delayed set."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.keys.stream)
            pipe.zcard(self.keys.delayed)
            waiting, delayed = await pipe.execute()
        return int(waiting) + int(delayed)

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int, cursor: str = "0-0") -> Reclaimed:
        """XAUTOCLAIM entries idle for `min_idle_ms` (their worker died) for `consumer`."""
        reply: Any = await self.redis.xautoclaim(
            self.keys.stream, self.keys.group, consumer, min_idle_ms, cursor, count=count
        )
        entries, deleted = [], [_text(i) for i in (reply[2] if len(reply) > 2 else [])]
        for entry_id, fields in reply[1]:
            if fields is None:  # Redis 6.2 reports a deleted entry in place, not in a third list
                deleted.append(_text(entry_id))
            else:
                entries.append(_entry(entry_id, fields))
        return Reclaimed(entries, deleted, _text(reply[0]))

    async def renew(self, consumer: str, entries: Sequence[Entry]) -> list[str]:
        """Reset the idle time of `consumer`'s entries; per entry LOST or its task's status."""
        if not entries:
            return []
        keys = [self.keys.stream, *(self.keys.task(e.task_id) for e in entries)]
        args: list[str | int] = [self.keys.group, consumer, *(e.entry_id for e in entries)]
        reply: list[bytes] = await self._lease(self.redis, keys, args)
        return [_text(r) for r in reply]

    async def release(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Mark entries this worker gives up as idle for a year, so any worker reclaims them now."""
        # Redis resets an idle time longer than the epoch to zero, hence a year, not "forever".
        if entry_ids:
            await self.redis.xclaim(
                self.keys.stream, self.keys.group, consumer, 0, list(entry_ids), idle=_YEAR_MS, justid=True
            )

    def queue_retry(self, pipe: Pipeline, task_id: str, due: float) -> None:
        """Queue the task's next attempt into the delayed set, due at `due` (epoch seconds)."""
        pipe.zadd(self.keys.delayed, {task_id: due})

    async def promote_due(self, now: float, limit: int = 100) -> int:
        """Move up to `limit` retries due by `now` onto the stream; how many moved."""
        moved = await self._promote(self.redis, [self.keys.delayed, self.keys.stream], [repr(now), limit])
        return int(moved)


def _lua(name: str) -> str:
    return files("taskstore").joinpath(name).read_text()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    task_id = fields.get(b"task_id", b"").decode()
    return Entry(_text(entry_id), task_id)
