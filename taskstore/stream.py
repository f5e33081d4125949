"""The sharded task queue: each shard a stream with the workers' consumer group.

XADD (submit.lua) ─▶ shard stream ─XREADGROUP─▶ worker ─XACK+XDEL─▶ gone (a stream is its backlog)
                       ▲        └─ idle > visibility ─XAUTOCLAIM─▶ another worker
                       └─ promote.lua ◀─ the shard's delayed set (ZADD task_id, score = due) ◀─ retry

Every command here names keys of one shard only (one hash tag, one cluster slot); what spans
shards is a pipeline of per-shard commands, which a cluster client sends to each primary at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from taskstore.keys import Keys, Shard
from taskstore.scripts import Script, source
from taskstore.topology import Client, Pipe, call, route


@dataclass(frozen=True, slots=True)
class Entry:
    """A stream entry: unique by (shard, entry_id); ids of two shards may be equal."""

    entry_id: str
    task_id: str
    shard: Shard


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """One XAUTOCLAIM page: entries now ours, entries gone from the stream, where to go on."""

    entries: list[Entry]
    deleted: list[Entry]
    cursor: str


LOST = "lost"
_YEAR_MS = 365 * 24 * 3600 * 1000


class TaskQueue:
    def __init__(self, redis: Client, keys: Keys | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.shards = self.keys.all_shards
        self._promote = Script(source("promote.lua"))
        self._lease = Script(source("lease.lua"))

    async def ensure_group(self) -> None:
        """Create the workers' consumer group (and the stream) of every shard if missing."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.xgroup_create(shard.stream, self.keys.group, id="0", mkstream=True)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply

    async def live_consumers(self, idle_ms: int) -> int:
        """Consumers seen in the last `idle_ms` in any shard's group: live workers."""
        # An idle worker sweeps every shard each READ_BLOCK_MS, a busy one renews its running
        # entries' leases (XCLAIM) in their shards: either resets its idle time somewhere.
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.xinfo_consumers(shard.stream, self.keys.group)
            replies = await pipe.execute(raise_on_error=False)
        live = set()
        for reply in replies:
            if isinstance(reply, ResponseError):  # no stream or no group (Redis lost its data)
                continue
            if isinstance(reply, Exception):
                raise reply
            live |= {_name(c) for c in reply if int(c.get("idle", c.get(b"idle", 0))) < idle_ms}
        return len(live)

    async def read(self, consumer: str, counts: Sequence[tuple[Shard, int]]) -> list[list[Entry]]:
        """New entries for this consumer, at most `count` from each shard, without blocking."""
        if len(counts) == 1:  # a woken reader asks its shard alone: one command, no pipeline
            shard, count = counts[0]
            group = ("GROUP", self.keys.group, consumer, "COUNT", count)
            reply = await call(self.redis, shard.stream, "XREADGROUP", *group, "STREAMS", shard.stream, ">")
            return [_entries(shard, reply)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, count in counts:
                args = ("XREADGROUP", "GROUP", self.keys.group, consumer, "COUNT", count, "STREAMS")
                pipe.execute_command(*args, shard.stream, ">", **route(self.redis, shard.stream))
            replies = await pipe.execute(raise_on_error=False)
        found = []
        for (shard, _), reply in zip(counts, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            found.append(_entries(shard, reply))
        return found

    async def wait_new(self, shard: Shard, block_ms: int, after: str = "$") -> str | None:
        """Wait up to `block_ms` for entries of `shard` newer than `after` ("$": than now);
        the newest one's id (of up to 100 seen), or None. Consumes nothing."""
        args = ("XREAD", "COUNT", 100, "BLOCK", block_ms, "STREAMS", shard.stream, after)
        entries = _entries(shard, await call(self.redis, shard.stream, *args))
        return entries[-1].entry_id if entries else None

    async def ack(self, entries: Sequence[Entry]) -> None:
        """Acknowledge and delete finished entries, so the streams hold only the backlog."""
        if not entries:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue_ack(pipe, entries)
            await pipe.execute()

    def queue_ack(self, pipe: Pipe, entries: Sequence[Entry]) -> None:
        """Queue XACK + XDEL of `entries` (per shard) into `pipe`; nothing when there are none."""
        for shard, ids in _by_shard(entries).items():
            pipe.xack(shard.stream, self.keys.group, *ids)
            pipe.xdel(shard.stream, *ids)

    async def lengths(self) -> list[int]:
        """XLEN of every shard (waiting plus running entries), in `self.shards` order."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.xlen(shard.stream)
            return [int(n) for n in await pipe.execute()]

    async def backlog(self) -> int:
        """Entries not yet acknowledged, over every shard: waiting plus running."""
        return sum(await self.lengths())

    async def outstanding(self) -> int:
        """Entries not yet acknowledged plus retries waiting in the delayed sets."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.xlen(shard.stream)
                pipe.zcard(shard.delayed)
            return sum(int(n) for n in await pipe.execute())

    async def reclaim(
        self, shard: Shard, consumer: str, min_idle_ms: int, count: int, cursor: str = "0-0"
    ) -> Reclaimed:
        """XAUTOCLAIM entries of `shard` idle for `min_idle_ms` (their worker died) for `consumer`."""
        reply: Any = await self.redis.xautoclaim(
            shard.stream, self.keys.group, consumer, min_idle_ms, cursor, count=count
        )
        entries: list[Entry] = []
        deleted = [Entry(_text(i), "", shard) for i in (reply[2] if len(reply) > 2 else [])]
        for entry_id, fields in reply[1]:
            if fields is None:  # Redis 6.2 reports a deleted entry in place, not in a third list
                deleted.append(Entry(_text(entry_id), "", shard))
            else:
                entries.append(_entry(shard, entry_id, fields))
        return Reclaimed(entries, deleted, _text(reply[0]))

    async def renew(self, consumer: str, entries: Sequence[Entry]) -> list[str]:
        """Reset the idle time of `consumer`'s entries; per entry LOST or its task's status."""
        verdicts: dict[Entry, str] = {}
        for shard, group in _group(entries).items():
            keys = [shard.stream, *(self.keys.task(e.task_id) for e in group)]
            args: list[str | int] = [self.keys.group, consumer, *(e.entry_id for e in group)]
            reply: list[bytes] = await self._lease(self.redis, keys, args)
            verdicts.update(zip(group, (_text(r) for r in reply), strict=True))
        return [verdicts[e] for e in entries]

    async def release(self, consumer: str, entries: Sequence[Entry]) -> None:
        """Mark entries this worker gives up as idle for a year, so any worker reclaims them now."""
        # Redis resets an idle time longer than the epoch to zero, hence a year, not "forever".
        for shard, ids in _by_shard(entries).items():
            claimed: list[Any] = list(ids)
            await self.redis.xclaim(
                shard.stream, self.keys.group, consumer, 0, claimed, idle=_YEAR_MS, justid=True
            )

    def queue_retry(self, pipe: Pipe, task_id: str, due: float) -> None:
        """Queue the task's next attempt into its shard's delayed set, due at `due` (epoch seconds)."""
        pipe.zadd(self.keys.shard_of_task(task_id).delayed, {task_id: due})

    async def promote_due(self, now: float, limit: int = 100) -> int:
        """Move up to `limit` retries per shard due by `now` onto their streams; how many moved."""
        moved = 0
        for shard in self.shards:
            keys = [shard.delayed, shard.stream]
            moved += int(await self._promote(self.redis, keys, [repr(now), limit]))
        return moved


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _name(info: dict[Any, Any]) -> str:
    """The name in an XINFO GROUPS or XINFO CONSUMERS row."""
    name = info.get("name", info.get(b"name"))
    return name.decode() if isinstance(name, bytes) else str(name)


def _entries(shard: Shard, reply: Any) -> list[Entry]:
    if not reply:
        return []
    # RESP2: [[stream, [(id, fields), ...]]]; RESP3: {stream: [[(id, fields), ...]]}
    items: Iterable[Any] = reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0]
    return [_entry(shard, entry_id, fields) for entry_id, fields in items]


def _entry(shard: Shard, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    task_id = fields.get(b"task_id", b"").decode()
    return Entry(_text(entry_id), task_id, shard)


def _group(entries: Iterable[Entry]) -> dict[Shard, list[Entry]]:
    groups: dict[Shard, list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[entry.shard].append(entry)
    return groups


def _by_shard(entries: Iterable[Entry]) -> dict[Shard, list[str]]:
    return {shard: [e.entry_id for e in group] for shard, group in _group(entries).items()}
