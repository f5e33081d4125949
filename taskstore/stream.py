"""The task stream and its consumer group: read, acknowledge, and the backlog."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from taskstore.keys import Keys


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    task_id: str


class TaskQueue:
    def __init__(self, redis: Redis, keys: Keys | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()

    async def ensure_group(self) -> None:
        """Create the workers' consumer group (and the stream) if missing."""
        try:
            await self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def has_group(self) -> bool:
        try:
            groups: list[dict[Any, Any]] = await self.redis.xinfo_groups(self.keys.stream)
        except ResponseError:
            return False
        return any(_name(g) == self.keys.group for g in groups)

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


def _name(group: dict[Any, Any]) -> str:
    name = group.get("name", group.get(b"name"))
    return name.decode() if isinstance(name, bytes) else str(name)


def _entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    task_id = fields.get(b"task_id", b"").decode()
    return Entry(eid, task_id)
