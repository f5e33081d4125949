"""Progress merging: a task's progress reports become at most PROGRESS_RATE writes a second.

    ctx.progress(x) ─▶ latest = x ─┬▶ due (1/rate since the last write) ─▶ write now, wait for it
                                   └▶ not due ─▶ a timer writes the latest at the due time
    handler ended  ─▶ close(): no more writes, the latest value; landed(): the write in flight is done

The first report goes out at once, then at most one write per interval, and the last value
always goes out (trailing edge) unless a state change supersedes it: the executor closes the
gate before it writes DONE, FAILED or a retry, so no progress lands after (or instead of) that
state, which carries the final value. One write at a time per task, so they land in order.

A report that is not due costs a clock read and no I/O. A due one waits for its write (one
round trip, at most `rate` times a second): that also lets the event loop run when a handler
reports in a tight loop, so the lease loop and the trailing timer are never starved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Write = Callable[[float], "asyncio.Future[Any]"]


class ProgressGate:
    def __init__(self, write: Write, rate: float) -> None:
        self._write = write
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._loop = asyncio.get_running_loop()
        self._next = 0.0  # loop time from which the next write may go
        self._unsent: float | None = None
        self._flight: asyncio.Future[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.latest: float | None = None

    async def report(self, fraction: float) -> None:
        """Record `fraction`; write it now when due, else leave it to the timer (or a later report)."""
        if self._closed:
            return
        self.latest = self._unsent = fraction
        if self._loop.time() < self._next:
            if self._timer is None:
                self._timer = self._loop.call_at(self._next, self._send)
            return
        self._send()
        if self._flight is not None and not self._flight.done():
            await asyncio.wait([self._flight])  # wait, not await: a cancelled handler leaves it be

    def close(self) -> float | None:
        """Write nothing more (a pending value is dropped); the latest value reported."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return self.latest

    async def landed(self) -> None:
        """Wait for the write in flight, so a state change written next goes after it."""
        if self._flight is not None and not self._flight.done():
            await asyncio.wait([self._flight])

    def _send(self) -> None:
        self._timer = None
        if self._closed or self._unsent is None:
            return
        if self._flight is not None and not self._flight.done():
            return  # the write in flight sends this one when it lands (see _written)
        self._flight = self._write(self._unsent)
        self._flight.add_done_callback(self._written)
        self._unsent = None
        self._next = self._loop.time() + self._interval

    def _written(self, flight: asyncio.Future[Any]) -> None:
        if not flight.cancelled():
            flight.exception()  # progress is advisory: a lost write is superseded by the next one
        if self._unsent is not None and self._timer is None and not self._closed:
            self._timer = self._loop.call_at(self._next, self._send)
