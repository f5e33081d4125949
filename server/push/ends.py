"""Ending the streams whose terminal event the hub sent, once the burst of sends has settled.

When many tasks end together (a batch job, tasks started in step), their terminal events reach
the hub over some milliseconds, a pub/sub read at a time. Each stream's end costs more than its
last event (the closing chunk or frame, the release, the log line): woken at once, the ends of
the first tasks' streams would run between the reads of the later tasks' events, and every
later watcher would learn of its task's end only after those. So the ends wait until the hub
has had SETTLE seconds without an event to send (at most LONGEST), and then run a CHUNK at a
time, so that an event read meanwhile waits for a chunk, not for all of them.

    Subscriber._send_now(terminal) ─▶ ended, add() ─▶ timer (SETTLE)
    Hub, each read's events offered ─▶ busy()
    timer ─▶ busy within SETTLE and younger than LONGEST? ─▶ again later
           └▶ wake CHUNK streams (each raises StreamEnded and ends) ─▶ the next CHUNK, call_soon
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

SETTLE = 0.05  # seconds without events to send before the streams end
LONGEST = 1.0  # seconds a stream's end may wait for a burst that does not settle
CHUNK = 64  # streams woken per turn of the event loop (each end costs more than a send)


class Ends:
    def __init__(self) -> None:
        self._waiting: deque[Callable[[], None]] = deque()
        self._first = 0.0  # when the oldest waiting stream was added
        self._busy = 0.0  # when the hub last offered events
        self._timer: asyncio.TimerHandle | None = None

    def add(self, wake: Callable[[], None]) -> None:
        """End a stream later by calling `wake` (its sender then raises StreamEnded)."""
        if not self._waiting and self._timer is None:
            self._first = time.monotonic()
            self._timer = asyncio.get_running_loop().call_later(SETTLE, self._settled)
        self._waiting.append(wake)

    def busy(self) -> None:
        """The hub has just sent events: ends wait a little longer."""
        self._busy = time.monotonic()

    def _settled(self) -> None:
        self._timer = None
        now = time.monotonic()
        if now - self._busy < SETTLE and now - self._first < LONGEST:
            self._timer = asyncio.get_running_loop().call_later(SETTLE, self._settled)
            return
        self._wake_chunk()

    def _wake_chunk(self) -> None:
        for _ in range(min(CHUNK, len(self._waiting))):
            self._waiting.popleft()()
        if self._waiting:
            self._first = time.monotonic()
            asyncio.get_running_loop().call_soon(self._wake_chunk)
