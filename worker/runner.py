"""The worker process: its loops and their lifetimes.

One Runner per kind the worker serves (worker/kinds.py), each with these loops on its kind's own
queue shards (streams, retry sets, dead letters), and with its kind's timeout, retries and
concurrency:

    read loop:   every shard of the kind, fairly, up to the free slots (worker/shard_reader.py)
                 ─▶ PENDING→RUNNING (new token, attempt+1) ─▶ a Job each
    reclaim:     XAUTOCLAIM abandoned entries ─▶ the same start, unless their attempts are used up
    lease:       renew running entries, stop cancelled or lost ones     (worker/reclaim.py)
    scheduler:   due retries from the delayed set back onto the stream  (worker/retry.py)
    flusher:     every write, batched into shared round trips           (worker/batch.py)
    stop:        stop reading and reclaiming ─▶ in-flight jobs get SHUTDOWN_GRACE ─▶ the rest are
                 cancelled, nothing written, and their entries released for any worker to reclaim
                 at once ─▶ the lease loop and the flusher end last

Every loop survives Redis going away (worker/loops.py): it backs off and carries on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Coroutine
from functools import partial
from typing import Any

from redis.exceptions import ResponseError

from taskstore import TERMINAL, Entry, Move, Moved, TaskQueue, TaskStatus, TaskStore, decode_state
from taskstore import TransitionRejected as Rejected
from taskstore.keys import Keys
from taskstore.kinds import DEFAULT_KIND
from taskstore.topology import Client, Topology, describe, detect, make_client
from taskstore.workers import Heartbeats
from worker.attempt import Executor, Job
from worker.batch import Batcher
from worker.handlers import Handler
from worker.heartbeat import Heartbeat
from worker.kinds import load_kinds
from worker.loops import REDIS_DOWN, Backoff, every
from worker.metrics import running, timed
from worker.reclaim import Leases, Reclaimer
from worker.retry import POLL_SECONDS, RetryScheduler
from worker.settings import WorkerSettings
from worker.shard_reader import ShardReader

log = logging.getLogger(__name__)


class Runner:
    """The loops of one kind's queue; a worker runs one Runner per kind it serves."""

    def __init__(
        self, settings: WorkerSettings, redis: Client, keys: Keys, handler: Handler, kind: str = DEFAULT_KIND
    ) -> None:
        self.settings = settings
        self.kind = kind
        keys = keys.of_kind(kind)  # same task keys; the kind's own queue shards
        self.store = TaskStore(redis, keys, result_ttl=settings.result_expiry, cache_ttl=settings.cache_ttl)
        self.queue = TaskQueue(redis, keys)
        self.batcher = Batcher(self.store, self.queue)
        self.executor = Executor(settings, self.store, self.queue, self.batcher, handler)
        self.reader = ShardReader(self.queue, settings.consumer_name, settings.read_block_ms)
        self.jobs: dict[Entry, Job] = {}
        self._running = running(kind)
        self._slot_freed = asyncio.Event()
        self.heartbeat = Heartbeat(settings, Heartbeats(redis, keys), self._tally, kind)

    @property
    def completed(self) -> int:
        """Attempts that ended DONE or FAILED in this worker."""
        return self.executor.completed

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> None:
        """Work until `stop` is set (or, with `burst`, until no entry or retry is left)."""
        await self._connect(stop)
        reading, leasing = asyncio.Event(), asyncio.Event()
        ws = self.settings
        flusher = _spawn(self.batcher.run(), "batch-flusher")
        leases = Leases(self.queue, ws.consumer_name, self.jobs)
        reclaimer = Reclaimer(ws, self.queue, self.jobs, self.claim_reclaimed)
        loops = [
            _spawn(every(ws.reclaim_interval, reclaimer.scan, reading, "reclaim"), "reclaim"),
            _spawn(every(POLL_SECONDS, RetryScheduler(self.queue).promote, reading, "retries"), "retries"),
        ]
        lease = _spawn(every(ws.lease_interval, leases.renew, leasing, "lease"), "lease")
        beat = _spawn(every(ws.heartbeat_interval, self.heartbeat.beat, leasing, "heartbeat"), "heartbeat")
        try:
            await self._read_loop(stop, burst)
            reading.set()
            await asyncio.gather(*loops)
            await self._drain()
        finally:
            reading.set()
            leasing.set()
            await self.reader.close()
            await asyncio.gather(*loops, lease, beat, return_exceptions=True)
            self.batcher.close()
            await flusher
            await self._farewell()

    async def claim_reclaimed(self, entries: list[Entry]) -> None:
        """Start reclaimed entries as new attempts; give up on tasks whose attempts are used up."""
        counts = await self.store.attempts([e.task_id for e in entries])
        fresh = []
        for entry, (status, attempts, signature) in zip(entries, counts, strict=True):
            if status in (TaskStatus.PENDING, TaskStatus.RUNNING) and attempts >= self.settings.max_attempts:
                await self.executor.give_up(entry, attempts, signature)
            else:
                fresh.append(entry)
        await self._start(fresh)

    def _tally(self) -> tuple[int, int, int]:
        return len(self.jobs), self.executor.done, self.executor.failed

    async def _farewell(self) -> None:
        """Leave the workers list at once rather than ageing out of it."""
        try:
            await self.heartbeat.remove()
        except REDIS_DOWN as e:
            log.warning("could not remove this worker's heartbeat (%s); it ages out", e)

    async def _connect(self, stop: asyncio.Event) -> None:
        backoff = Backoff("connect")
        while not stop.is_set():
            try:
                await self.queue.ensure_group()
                return
            except REDIS_DOWN as e:
                await backoff.pause(stop, e)

    async def _read_loop(self, stop: asyncio.Event, burst: bool) -> None:
        backoff = Backoff("read")
        while not stop.is_set():
            try:
                if await self._read_once(stop, burst):
                    return
            except REDIS_DOWN as e:
                # Entries read but not started stay pending in the group and are reclaimed later.
                await backoff.pause(stop, e)
                continue
            backoff.reset()

    async def _read_once(self, stop: asyncio.Event, burst: bool) -> bool:
        """Read and start one batch; True when a burst run has nothing left to do."""
        free = self.settings.max_concurrency - len(self.jobs)
        if free <= 0:
            self._slot_freed.clear()
            await _first_of(self._slot_freed, stop)
            return False
        try:
            entries = await self.reader.read(free, stop)
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            log.warning("the consumer group is gone (Redis lost its data?); creating it again")
            await self.queue.ensure_group()
            return False
        if entries:
            await self._start(entries)
            return False
        return burst and not self.jobs and await self.queue.outstanding() == 0

    async def _start(self, entries: list[Entry]) -> None:
        tokens = [os.urandom(8).hex() for _ in entries]
        moves = [
            Move(e.task_id, TaskStatus.RUNNING, {"progress": ""}, new_token=t, new_attempt=True)
            for e, t in zip(entries, tokens, strict=True)
        ]
        results = await asyncio.gather(*(self.batcher.move(m) for m in moves))
        for entry, token, result in zip(entries, tokens, results, strict=True):
            if isinstance(result, Moved):
                self._spawn(entry, token, result)
            else:
                self._skip(entry, result)

    def _skip(self, entry: Entry, rejected: Rejected) -> None:
        if rejected.current in TERMINAL:
            log.info(
                "task %s not started: already %s",
                entry.task_id,
                rejected.current,
                extra={"task_id": entry.task_id},
            )
            self.batcher.ack(entry)
        else:  # no hash, an unknown status, or fields the scripts cannot read
            self.executor.dead_letter(entry, f"task cannot be run: {rejected.reason}")

    def _spawn(self, entry: Entry, token: str, moved: Moved) -> None:
        job = Job(entry, token, 0, moved.request or b"", moved.signature)
        try:
            job.attempt = int(decode_state(moved.state)["attempts"])
        except (ValueError, KeyError) as e:
            coro: Coroutine[Any, Any, None] = self.executor.fail(job, f"malformed task state: {e}")
        else:
            log.info(
                "task %s started (attempt %d)", entry.task_id, job.attempt, extra={"task_id": entry.task_id}
            )
            coro = self.executor.execute(job)
        job.task = asyncio.create_task(coro, name=f"task-{entry.task_id}")
        self.jobs[entry] = job
        self._running.inc()
        job.task.add_done_callback(partial(self._finished, entry))

    def _finished(self, entry: Entry, task: asyncio.Task[None]) -> None:
        if self.jobs.pop(entry, None) is not None:
            self._running.dec()
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job of entry %s crashed", entry.entry_id, exc_info=task.exception())

    async def _drain(self) -> None:
        jobs = list(self.jobs.values())
        if not jobs:
            return
        grace = self.settings.shutdown_grace
        log.info("stopping: %d tasks in flight, waiting up to %g s", len(jobs), grace)
        _, late = await asyncio.wait([j.task for j in jobs if j.task], timeout=grace)
        if not late:
            return
        left = [j for j in jobs if j.task in late]
        for job in left:
            job.stop("shutdown")
        await asyncio.wait(late)
        try:
            await self.queue.release(self.settings.consumer_name, [j.entry for j in left])
        except REDIS_DOWN as e:
            log.warning("could not release entries (%s); they are reclaimed after the timeout", e)
        log.warning("%d tasks did not finish within the grace; left for another worker", len(left))


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.create_task(coro, name=name)


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def run(settings: WorkerSettings, stop: asyncio.Event, *, burst: bool = False) -> None:
    """Connect, work until `stop` (or until nothing is left with `burst`), disconnect."""
    topology = await _topology(settings, stop)
    if topology is None:
        return
    keys = settings.keys_for(topology)
    log.info("worker on %s", describe(settings.redis_url_for_logs, topology, keys.shard_count))
    redis = make_client(settings.redis_url, topology, client_name="taskcast-worker")
    runners = [
        Runner(kind.settings(settings), redis, keys, timed(kind.handler, kind.name), kind.name)
        for kind in load_kinds(settings)
    ]
    # Nothing created so far is garbage: keep it out of every future collection's scan.
    gc.collect()
    gc.freeze()
    try:
        await asyncio.gather(*(runner.run(stop, burst=burst) for runner in runners))
    finally:
        await redis.aclose()


async def _topology(settings: WorkerSettings, stop: asyncio.Event) -> Topology | None:
    """Single node or cluster, asked until Redis answers (None when stopped first)."""
    backoff = Backoff("connect")
    while not stop.is_set():
        try:
            return await detect(settings.redis_url, settings.redis_cluster)
        except REDIS_DOWN as e:
            await backoff.pause(stop, e)
    return None
