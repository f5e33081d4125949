"""The dead-letter stream: a copy of every task that failed its last attempt.

The task itself stays FAILED (terminal); a dead letter is what an operator lists, requeues as a
new task, or purges. Entries are never trimmed automatically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from taskstore.codec import encode_number
from taskstore.keys import Keys

_ENTRY_ID = re.compile(r"^\d+-\d+$")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    task_id: str
    error: str
    attempts: int
    request: str
    time: float
    entry_id: str = ""

    def fields(self) -> dict[str, str]:
        return {
            "task_id": self.task_id,
            "error": self.error,
            "attempts": str(self.attempts),
            "request": self.request,
            "time": encode_number(self.time),
        }


class DeadLetters:
    def __init__(self, redis: Redis, keys: Keys | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()

    def queue_add(self, pipe: Pipeline, letter: DeadLetter) -> None:
        """Queue the XADD of `letter` into `pipe`."""
        pipe.xadd(self.keys.dead_letter, letter.fields())  # type: ignore[arg-type]

    async def add(self, letter: DeadLetter) -> str:
        entry_id = await self.redis.xadd(self.keys.dead_letter, letter.fields())  # type: ignore[arg-type]
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    async def newest(self, count: int) -> list[DeadLetter]:
        """The newest `count` dead letters, newest first."""
        reply: Any = await self.redis.xrevrange(self.keys.dead_letter, count=count)
        return [_letter(entry_id, fields) for entry_id, fields in reply]

    async def list(self, count: int | None = None) -> list[DeadLetter]:
        """The oldest `count` dead letters (all when None)."""
        reply: Any = await self.redis.xrange(self.keys.dead_letter, count=count)
        return [_letter(entry_id, fields) for entry_id, fields in reply]

    async def find(self, ident: str) -> DeadLetter | None:
        """The dead letter with this entry id, or the newest one of this task id."""
        if _ENTRY_ID.match(ident):
            reply: Any = await self.redis.xrange(self.keys.dead_letter, ident, ident)
            return _letter(*reply[0]) if reply else None
        matches = [letter for letter in await self.list() if letter.task_id == ident]
        return matches[-1] if matches else None

    async def remove(self, entry_id: str) -> bool:
        return bool(await self.redis.xdel(self.keys.dead_letter, entry_id))

    async def purge(self) -> int:
        """Delete every dead letter; how many there were."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xlen(self.keys.dead_letter)
            pipe.delete(self.keys.dead_letter)
            count, _ = await pipe.execute()
        return int(count)


def _letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode(errors="replace")

    return DeadLetter(
        task_id=text("task_id"),
        error=text("error"),
        attempts=int(text("attempts") or 0),
        request=text("request"),
        time=float(text("time") or 0),
        entry_id=entry_id.decode(),
    )
