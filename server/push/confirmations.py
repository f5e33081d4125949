"""Waiting for Redis to confirm a SUBSCRIBE, counted per channel.

A channel can be subscribed, unsubscribed and subscribed again before the first
confirmation arrives; its waiters are released only when every SUBSCRIBE sent has been
confirmed, so nobody reads a snapshot while the subscription is not yet in force.
"""

from __future__ import annotations

import asyncio


class Confirmations:
    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.Future[None], int]] = {}

    def expect(self, channel: str) -> None:
        """One more SUBSCRIBE of `channel` is about to be sent."""
        future, sent = self._waiting.get(channel, (None, 0))
        if future is None:
            future = asyncio.get_running_loop().create_future()
        self._waiting[channel] = (future, sent + 1)

    async def wait(self, channel: str) -> None:
        """Return once every SUBSCRIBE of `channel` sent so far is confirmed."""
        entry = self._waiting.get(channel)
        if entry is not None:
            await asyncio.shield(entry[0])

    def confirmed(self, channel: str) -> None:
        entry = self._waiting.get(channel)
        if entry is None:
            return
        future, sent = entry
        if sent > 1:
            self._waiting[channel] = (future, sent - 1)
            return
        del self._waiting[channel]
        if not future.done():
            future.set_result(None)

    def confirm_all(self) -> None:
        """A fresh connection subscribed everything watched: release every waiter."""
        waiting, self._waiting = self._waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_result(None)
