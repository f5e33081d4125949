"""The dead-letter streams (one per shard): a copy of every task that failed its last attempt.

The task itself stays FAILED (terminal); a dead letter is what an operator lists, requeues as a
new task, or purges. Entries are never trimmed automatically. A letter lives in its task's shard
(same hash tag as the task), so a script can write it with the FAILED state. Entry ids repeat
across shards, so a letter's `ref` is "<shard tag>:<entry id>" (just the entry id in the queue
of the layout before shards); it goes in a URL path as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskstore.codec import encode_number
from taskstore.keys import Keys, Shard
from taskstore.topology import Client, Pipe

_ENTRY_ID = re.compile(r"^\d+-\d+$")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    task_id: str
    error: str
    attempts: int
    request: str
    time: float
    entry_id: str = ""
    shard: str = ""

    @property
    def ref(self) -> str:
        """How an operator names this letter: unique over every shard."""
        return f"{self.shard}:{self.entry_id}" if self.shard else self.entry_id

    def fields(self) -> dict[str, str]:
        return {
            "task_id": self.task_id,
            "error": self.error,
            "attempts": str(self.attempts),
            "request": self.request,
            "time": encode_number(self.time),
        }


class DeadLetters:
    def __init__(self, redis: Client, keys: Keys | None = None) -> None:
        self.redis = redis
        self.keys = keys or Keys()

    def queue_add(self, pipe: Pipe, letter: DeadLetter) -> None:
        """Queue the XADD of `letter` into `pipe`, in its task's shard."""
        pipe.xadd(self._stream_of(letter.task_id), letter.fields())  # type: ignore[arg-type]

    async def add(self, letter: DeadLetter) -> str:
        """Write `letter`; its ref."""
        shard = self.keys.shard_of_task(letter.task_id)
        entry_id = await self.redis.xadd(shard.dead_letter, letter.fields())  # type: ignore[arg-type]
        text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return f"{shard.tag}:{text}" if shard.tag else text

    async def _read(self, queue: Callable[[Pipe, str], object]) -> list[DeadLetter]:
        """Every shard's dead letters that `queue` asks for, in one pipelined round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.keys.all_shards:
                queue(pipe, shard.dead_letter)
            replies: list[Any] = await pipe.execute()
        return [
            _letter(shard, entry_id, fields)
            for shard, reply in zip(self.keys.all_shards, replies, strict=True)
            for entry_id, fields in reply
        ]

    async def newest(self, count: int) -> list[DeadLetter]:
        """The newest `count` dead letters over every shard, newest first."""
        letters = await self._read(lambda pipe, key: pipe.xrevrange(key, count=count))
        letters.sort(key=_age, reverse=True)
        return letters[:count]

    async def list(self, count: int | None = None) -> list[DeadLetter]:
        """The oldest `count` dead letters over every shard (all when None), oldest first."""
        letters = await self._read(lambda pipe, key: pipe.xrange(key, count=count))
        letters.sort(key=_age)
        return letters if count is None else letters[:count]

    async def find(self, ident: str) -> DeadLetter | None:
        """The dead letter with this ref, or the newest one of this task id."""
        shard, entry_id = self._parse_ref(ident)
        if shard is not None:
            reply: Any = await self.redis.xrange(shard.dead_letter, entry_id, entry_id)
            return _letter(shard, *reply[0]) if reply else None
        matches = [letter for letter in await self.list() if letter.task_id == ident]
        return matches[-1] if matches else None

    async def remove(self, letter: DeadLetter) -> bool:
        return bool(await self.redis.xdel(self._stream_of(letter.task_id, letter.shard), letter.entry_id))

    async def purge(self) -> int:
        """Delete every dead letter; how many there were."""
        count = 0
        for shard in self.keys.all_shards:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xlen(shard.dead_letter)
                pipe.delete(shard.dead_letter)
                length, _ = await pipe.execute()
            count += int(length)
        return count

    def _stream_of(self, task_id: str, tag: str | None = None) -> str:
        if tag is None:
            return self.keys.shard_of_task(task_id).dead_letter
        return next(s.dead_letter for s in self.keys.all_shards if s.tag == tag)

    def _parse_ref(self, ident: str) -> tuple[Shard | None, str]:
        tag, _, entry_id = ident.rpartition(":")
        if not _ENTRY_ID.match(entry_id):
            return None, ""
        shard = next((s for s in self.keys.all_shards if s.tag == tag), None)
        return shard, entry_id


def _letter(shard: Shard, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode(errors="replace")

    return DeadLetter(
        task_id=text("task_id"),
        error=text("error"),
        attempts=int(text("attempts") or 0),
        request=text("request"),
        time=float(text("time") or 0),
        entry_id=entry_id.decode(),
        shard=shard.tag,
    )


def _age(letter: DeadLetter) -> tuple[float, ...]:
    """Order of dead letters across shards: time, then the entry id within a shard."""
    return (letter.time, *map(int, letter.entry_id.split("-")))
