"""One task that looks after every stream's sends, instead of a timer per send.

    every `interval` s, for each subscriber:
        a send under way for SEND_TIMEOUT or longer ─▶ one WARNING line, abort the connection
                                                      (its descriptor is freed at once), close
        the server is draining                     ─▶ close: each stream ends cleanly
        the client's connection is gone (every     ─▶ close: its stream ends and is released
          GONE_EVERY-th sweep)
        nothing sent for the ping interval (SSE)   ─▶ queue the keep-alive comment

The server's exit is sse-starlette's signal (uvicorn told to exit), waited for here once for
every stream. With the client's disconnect (noticed here, within GONE_EVERY sweeps) it is what
an SSE response would otherwise run two tasks of its own for (server/routes/events.py).

A client that stops reading fills the kernel's buffers, then uvicorn's; the send that found
them full never returns. Aborting the transport ends that send (uvicorn then treats the
client as gone), and the stream unwinds quietly through its normal `finally`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection

import anyio
from sse_starlette import EventSourceResponse

from server.push.subscriber import Subscriber

log = logging.getLogger("taskcast.api")

# Reading each connection's transport misses the CPU's caches for every stream: done on every
# sweep it was 4 % of a 10,000-subscriber burst. A departed client's stream waits (idle) at
# most this many sweeps for it.
GONE_EVERY = 4


class Watchdog:
    def __init__(
        self, subscribers: Callable[[], Collection[Subscriber]], *, send_timeout: float, ping_seconds: float
    ) -> None:
        self.subscribers = subscribers
        self.send_timeout = send_timeout
        self.ping_seconds = ping_seconds
        # A send is found stuck within a quarter of the timeout (at most half a second) of it.
        self.interval = min(0.5, send_timeout / 4, ping_seconds / 4)
        self.draining = anyio.Event()  # set when the server is told to exit
        self.dropped = 0
        self._sweeps = 0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="stream-watchdog"),
            asyncio.create_task(self._watch_exit(), name="stream-exit-watch"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch_exit(self) -> None:
        await EventSourceResponse._listen_for_exit_signal()
        self.draining.set()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        # Every stream, every `interval`: kept to plain comparisons (10,000 streams are 20,000
        # checks a second).
        draining = self.draining.is_set()
        stuck_since, idle_since = now - self.send_timeout, now - self.ping_seconds
        self._sweeps += 1
        look_for_gone = self._sweeps % GONE_EVERY == 0
        for sub in list(self.subscribers()):
            since = sub.sending_since
            if since and since <= stuck_since:
                self.drop(sub, f"no send completed for {now - since:.1f} s (client not reading)")
            elif draining or (look_for_gone and sub.connection is not None and sub.connection.closing):
                sub.close()
            elif sub.last_sent <= idle_since:
                sub.ping()

    def drop(self, sub: Subscriber, reason: str) -> None:
        """Let a client go: its connection aborted, its subscriber closed, one log line."""
        self.dropped += 1
        sub.sending_since = 0.0
        extra = {"task_id": sub.task_id, "transport": sub.transport, "reason": reason}
        log.warning("%s dropped: %s; connection closed", sub, reason, extra=extra)
        if sub.connection is not None:
            sub.connection.abort()
        sub.close()
