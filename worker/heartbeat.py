"""This worker's heartbeat: who it is and what it is doing, every HEARTBEAT_INTERVAL seconds.

The API lists workers heard from within WORKER_GONE_AFTER seconds (GET /workers); a clean stop
removes the line at once, a killed worker's line simply ages out. A worker serving several kinds
runs a pool per kind (worker/runner.py): each beats as its own line, "<consumer>:<kind>" (the
default kind's as "<consumer>"), with that pool's concurrency and counts.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from taskstore.kinds import DEFAULT_KIND
from taskstore.workers import Heartbeats, WorkerBeat
from worker.settings import WorkerSettings


class Heartbeat:
    def __init__(
        self,
        settings: WorkerSettings,
        beats: Heartbeats,
        tally: Callable[[], tuple[int, int, int]],
        kind: str = DEFAULT_KIND,
    ) -> None:
        self.settings = settings
        self.beats = beats
        self.tally = tally  # (running, done, failed)
        self.kind = kind
        self.name = settings.consumer_name if kind == DEFAULT_KIND else f"{settings.consumer_name}:{kind}"
        self.started_at = time.time()
        self.host = socket.gethostname()

    async def beat(self) -> None:
        running, done, failed = self.tally()
        await self.beats.beat(
            WorkerBeat(
                name=self.name,
                host=self.host,
                pid=os.getpid(),
                kinds=[self.kind],
                concurrency=self.settings.max_concurrency,
                running=running,
                done=done,
                failed=failed,
                started_at=self.started_at,
                last_heartbeat=time.time(),
            )
        )

    async def remove(self) -> None:
        await self.beats.remove(self.name)
