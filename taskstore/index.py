"""The task list behind GET /tasks and the dashboard: newest first, read from the indexes that
the scripts keep (index.lua), never from a SCAN.

    submit.lua     ─ZADD─▶ index(kind, PENDING | DONE)                      score = created_at
    transition.lua ─ZREM index(kind, from), ZADD index(kind, to)─▶ the task moves, its score stays
    page()         ─▶ per index: the ties at the cursor's score and the next `limit` below it,
                      one pipelined round trip ─▶ merged newest first here (kinds, statuses and,
                      on a cluster, shards alike: every index is one sorted set of one slot)

A cursor is the (created_at, task_id) of the last row given. A task's place in that order never
changes, so a page is the same however many tasks arrive or move meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskstore.keys import Keys
from taskstore.kinds import DEFAULT_KIND
from taskstore.model import TaskStatus
from taskstore.shards import looks_like_task_id
from taskstore.topology import Client, Pipe

Position = tuple[float, str]  # (created_at, task_id): a row's place, newest first


def task_kind(kind: str | None = None) -> str:
    """The kind a task is indexed and counted under: its own, or the default one when unknown."""
    return kind or DEFAULT_KIND


def move_keys(keys: Keys, kind: str, to: TaskStatus, tag: str) -> list[str]:
    """The keys a move passes to transition.lua after the task's hash: the PENDING and RUNNING
    indexes (the only statuses a task can leave), the target's, and the shard's tallies, all in
    the task's shard (`tag`)."""
    statuses = (TaskStatus.PENDING, TaskStatus.RUNNING, to)
    return [*(keys.index(kind, status, tag) for status in statuses), keys.tallies(tag)]


class MoveKeys:
    """`move_keys`, built once per kind, target and shard rather than for every move (the
    worker's hot path)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self._cache: dict[tuple[str, TaskStatus, str], list[str]] = {}

    def __call__(self, kind: str, to: TaskStatus, tag: str) -> list[str]:
        """Those of a task in the shard with `tag` (the task's own slot)."""
        found = self._cache.get((kind, to, tag))
        if found is None:
            found = self._cache[(kind, to, tag)] = move_keys(self.keys, kind, to, tag)
        return found


@dataclass(frozen=True, slots=True)
class Cursor:
    created: float
    task_id: str

    def encode(self) -> str:
        return f"{self.created!r}~{self.task_id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """ValueError unless `text` is what `encode` gives."""
        created, sep, task_id = text.partition("~")
        if not sep or not looks_like_task_id(task_id):
            raise ValueError(f"not a task list cursor: {text[:80]!r}")
        return cls(float(created), task_id)


@dataclass(frozen=True, slots=True)
class Page:
    positions: list[Position]
    next_cursor: Cursor | None


class TaskIndex:
    def __init__(self, redis: Client, keys: Keys, *, result_ttl: int) -> None:
        self.redis = redis
        self.keys = keys
        self.result_ttl = result_ttl

    def index_keys(self, kinds: Sequence[str], statuses: Sequence[TaskStatus]) -> list[str]:
        tags = self.keys.index_tags
        return [
            self.keys.index(kind, status.value, tag) for kind in kinds for status in statuses for tag in tags
        ]

    async def page(
        self, index_keys: Sequence[str], limit: int, cursor: Cursor | None = None, now: float | None = None
    ) -> Page:
        """The newest `limit` tasks of these indexes older than `cursor`, within the result expiry."""
        oldest = (time.time() if now is None else now) - self.result_ttl
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in index_keys:
                _queue_below(pipe, key, cursor, limit + 1, oldest)
            replies: list[Any] = await pipe.execute()
        found = {(float(score), _text(member)) for reply in replies for member, score in reply}
        if cursor is not None:
            found = {p for p in found if p < (cursor.created, cursor.task_id)}
        rows = sorted(found, reverse=True)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, Cursor(*rows[-1]) if more else None)


def _queue_below(pipe: Pipe, key: str, cursor: Cursor | None, count: int, oldest: float) -> None:
    top: float | str = "+inf"
    if cursor is not None:
        # Rows sharing the cursor's score are told apart by id (filtered by the caller).
        pipe.zrange(key, cursor.created, cursor.created, byscore=True, withscores=True)
        top = f"({cursor.created!r}"
    pipe.zrange(key, top, oldest, desc=True, byscore=True, offset=0, num=count, withscores=True)


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member
