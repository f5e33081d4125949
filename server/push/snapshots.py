"""Batched snapshot reads: every watcher that needs a task's state in the same moment shares
one pipelined round trip, so a burst of new subscribers costs a few Redis connections, not
one each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskstore import TaskStore
from taskstore.coalesce import Coalescer


class Snapshots:
    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self._reads: Coalescer[str] = Coalescer(self._send)

    async def read(self, task_id: str) -> bytes | None:
        """The task's state JSON, or None when it is unknown or expired."""
        state: bytes | None = await self._reads.call(task_id)
        return state

    async def _send(self, task_ids: Sequence[str]) -> list[Any]:
        return list(await self.store.states(task_ids))
