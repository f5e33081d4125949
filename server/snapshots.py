"""Batched snapshot reads: every watcher that needs a task's state in the same moment shares
one pipelined round trip, so a burst of new subscribers costs a few Redis connections, not
one each.
"""

from __future__ import annotations

import asyncio
import logging

from taskstore import TaskStore

log = logging.getLogger(__name__)

MAX_BATCH = 500


class Snapshots:
    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self._waiting: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="snapshot-reader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for futures in self._waiting.values():
            for future in futures:
                future.cancel()

    async def read(self, task_id: str) -> bytes | None:
        """The task's state JSON, or None when it is unknown or expired."""
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(task_id, []).append(future)
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await self._flush()

    async def _flush(self) -> None:
        task_ids = list(self._waiting)[:MAX_BATCH]
        batch = {task_id: self._waiting.pop(task_id) for task_id in task_ids}
        try:
            states = await self.store.states(task_ids)
        except Exception as e:
            log.warning("snapshot read of %d tasks failed: %s", len(task_ids), e)
            for futures in batch.values():
                _settle(futures, error=e)
            return
        for state, futures in zip(states, batch.values(), strict=True):
            _settle(futures, state=state)


def _settle(
    futures: list[asyncio.Future[bytes | None]], *, state: bytes | None = None, error: Exception | None = None
) -> None:
    for future in futures:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(state)
