"""Crash recovery: lease renewal of running entries, and XAUTOCLAIM of abandoned ones.

    every LEASE (<= 0.5 s):  lease.lua on our running entries ─▶ idle time reset
                             ├▶ task CANCELLED ─▶ stop its handler (the entry is acked)
                             └▶ entry owned by another worker ─▶ stop its handler (no write)
    every RECLAIM:           XAUTOCLAIM, shard by shard, entries idle > VISIBILITY_TIMEOUT
                             ├▶ deleted ids ─▶ ack
                             ├▶ attempts used up ─▶ FAILED + dead letter (a poison task ends here)
                             └▶ the rest ─▶ started like new entries, as a new attempt

An attempt renews its lease while its worker lives, so a long task is never stolen; a worker
that stalls past the timeout loses the entry, and the new attempt's token rejects its writes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from taskstore import Entry, TaskQueue, TaskStatus
from taskstore.keys import Shard
from taskstore.stream import LOST
from worker.attempt import Job
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


class Leases:
    def __init__(self, queue: TaskQueue, consumer: str, jobs: Mapping[Entry, Job]) -> None:
        self.queue = queue
        self.consumer = consumer
        self.jobs = jobs

    async def renew(self) -> None:
        """Renew every running entry's lease; stop the handlers whose task was cancelled or lost."""
        jobs = list(self.jobs.values())
        if not jobs:
            return
        verdicts = await self.queue.renew(self.consumer, [j.entry for j in jobs])
        for job, verdict in zip(jobs, verdicts, strict=True):
            if verdict == LOST:
                job.stop("lost")
            elif verdict == TaskStatus.CANCELLED:
                job.stop("cancelled")


class Reclaimer:
    def __init__(
        self,
        settings: WorkerSettings,
        queue: TaskQueue,
        jobs: Mapping[Entry, Job],
        claim: Callable[[list[Entry]], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.jobs = jobs
        self.claim = claim
        self.cursors: dict[Shard, str] = {}

    async def scan(self) -> None:
        """Claim, up to the free slots, entries whose worker stopped renewing them, in every shard."""
        for shard in self.queue.shards:
            free = self.settings.max_concurrency - len(self.jobs)
            if free <= 0:
                return  # a worker with room will take them
            await self._scan_shard(shard, free)

    async def _scan_shard(self, shard: Shard, free: int) -> None:
        consumer, idle_ms = self.settings.consumer_name, self.settings.visibility_ms
        page = await self.queue.reclaim(shard, consumer, idle_ms, free, self.cursors.get(shard, "0-0"))
        self.cursors[shard] = page.cursor
        if page.deleted:
            # Pending ids whose entry is gone from the stream: nothing to run, just clear them.
            await self.queue.ack(page.deleted)
            log.warning("acked %d pending entries that no longer exist in the stream", len(page.deleted))
        # Our own running entries come back when Redis was away longer than the timeout.
        entries = [e for e in page.entries if e not in self.jobs]
        for entry in entries:
            log.info(
                "task %s reclaimed from a stopped worker (entry %s)",
                entry.task_id,
                entry.entry_id,
                extra={"task_id": entry.task_id},
            )
        if entries:
            await self.claim(entries)
