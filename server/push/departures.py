"""UNSUBSCRIBE late and together: a task nobody watches any more stays subscribed for a moment.

    last watcher leaves ─▶ leave(task): noted; nothing is sent
    a watcher comes back while noted ─▶ stay(task): True, the subscription is still in force
                                       and confirmed, so no SUBSCRIBE and no wait
    FLUSH_SECONDS after the first note ─▶ one UNSUBSCRIBE naming every noted task still unwatched

Most streams end because their task ended, and their channel will carry nothing more: they
cost no round trip of their own. A task watched again soon after (a client that reconnects,
the next of many subscribers) needs no SUBSCRIBE. The hub serialises the flush with its
SUBSCRIBEs, so an UNSUBSCRIBE never overtakes a later SUBSCRIBE of the same channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

FLUSH_SECONDS = 0.1


class Departures:
    def __init__(self, unsubscribe: Callable[[set[str]], Coroutine[Any, Any, None]]) -> None:
        self._unsubscribe = unsubscribe  # sends one UNSUBSCRIBE for the task ids still unwatched
        self._leaving: set[str] = set()
        self._flushing: set[asyncio.Task[None]] = set()

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._leaving

    def leave(self, task_id: str) -> None:
        if not self._leaving:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)
        self._leaving.add(task_id)

    def stay(self, task_id: str) -> bool:
        """Take `task_id` back; True when its subscription was still in force."""
        if task_id in self._leaving:
            self._leaving.discard(task_id)
            return True
        return False

    def forget_all(self) -> None:
        """A fresh connection subscribed only what is watched: nothing is left to unsubscribe."""
        self._leaving.clear()

    async def aclose(self) -> None:
        for task in list(self._flushing):
            task.cancel()
        await asyncio.gather(*self._flushing, return_exceptions=True)

    def _flush(self) -> None:
        leaving, self._leaving = self._leaving, set()
        if not leaving:
            return
        task = asyncio.create_task(self._unsubscribe(leaving), name="hub-unsubscribe")
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)
