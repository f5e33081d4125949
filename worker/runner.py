"""The worker loop.

    read loop: XREADGROUP up to the free slots ─▶ PENDING→RUNNING for the batch ─▶ one task each
    task:      handler (TASK_TIMEOUT) ─▶ DONE + cache | FAILED ─▶ ack (after the terminal write)
    stop:      stop reading ─▶ in-flight tasks get SHUTDOWN_GRACE ─▶ the rest are cancelled and
               stay unacknowledged in the group, for another worker to reclaim

All Redis writes go through the Batcher, so concurrent tasks share round trips.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial

from redis.asyncio import Redis

from taskstore import Entry, Keys, Move, Moved, TaskQueue, TaskStatus, TaskStore, decode_state
from taskstore.codec import decode_request, encode_number, encode_result
from worker.batch import Batcher
from worker.handlers import Handler, TaskContext, load_handler
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


class Runner:
    def __init__(self, settings: WorkerSettings, redis: Redis, handler: Handler) -> None:
        self.settings = settings
        keys = Keys(prefix=settings.key_prefix, queue=settings.queue_key)
        self.store = TaskStore(redis, keys, result_ttl=settings.result_expiry, cache_ttl=settings.cache_ttl)
        self.queue = TaskQueue(redis, keys)
        self.batcher = Batcher(self.store, self.queue)
        self.handler = handler
        self.running: dict[str, asyncio.Task[None]] = {}
        self.completed = 0
        self._slot_freed = asyncio.Event()

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> None:
        """Work until `stop` is set (or, with `burst`, until the stream has nothing left)."""
        await self.queue.ensure_group()
        flusher = asyncio.create_task(self.batcher.run(), name="batch-flusher")
        try:
            await self._read_loop(stop, burst)
            await self._drain()
        finally:
            self.batcher.close()
            await flusher

    async def _read_loop(self, stop: asyncio.Event, burst: bool) -> None:
        while not stop.is_set():
            free = self.settings.max_concurrency - len(self.running)
            if free <= 0:
                self._slot_freed.clear()
                await _first_of(self._slot_freed, stop)
                continue
            entries = await self.queue.read(self.settings.consumer_name, free, self.settings.read_block_ms)
            if entries:
                await self._start(entries)
            elif burst and not self.running:
                return

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
                log.info("skipping %s: %s", entry.task_id, result)
                self.batcher.ack(entry.entry_id)

    def _spawn(self, entry: Entry, token: str, moved: Moved) -> None:
        task = asyncio.create_task(self._execute(entry, token, moved), name=f"task-{entry.task_id}")
        self.running[entry.entry_id] = task
        task.add_done_callback(partial(self._finished, entry.entry_id))

    def _finished(self, entry_id: str, _: asyncio.Task[None]) -> None:
        self.running.pop(entry_id, None)
        self._slot_freed.set()

    async def _execute(self, entry: Entry, token: str, moved: Moved) -> None:
        final = await self._outcome(entry.task_id, token, moved)
        outcome = await self.batcher.move(final)
        if isinstance(outcome, Moved):
            self.completed += 1
            if final.to is TaskStatus.DONE and moved.signature:
                self.batcher.cache(moved.signature, final.fields["result"])
        log.info("task %s %s", entry.task_id, final.to.value if isinstance(outcome, Moved) else outcome)
        self.batcher.ack(entry.entry_id)

    async def _outcome(self, task_id: str, token: str, moved: Moved) -> Move:
        """Run the handler; the terminal move it earned."""
        attempt = int(decode_state(moved.state)["attempts"])
        ctx = TaskContext(task_id, attempt, partial(self._progress, task_id, token))
        timeout = self.settings.task_timeout
        try:
            prompt, params = decode_request(moved.request or b"")
            async with asyncio.timeout(timeout) as deadline:
                result = await self.handler(prompt, params, ctx)
        except TimeoutError:
            if not deadline.expired():
                raise
            return _failed(task_id, token, f"timed out after {timeout:g} s")
        except Exception as e:
            return _failed(task_id, token, f"{type(e).__name__}: {e}")
        fields = {"result": encode_result(result), "error": "", "progress": "1.0"}
        return Move(task_id, TaskStatus.DONE, fields, token=token)

    async def _progress(self, task_id: str, token: str, fraction: float) -> None:
        await self.batcher.move(
            Move(task_id, TaskStatus.RUNNING, {"progress": encode_number(fraction)}, token=token)
        )

    async def _drain(self) -> None:
        if not self.running:
            return
        tasks = list(self.running.values())
        log.info("stopping: %d tasks in flight, waiting up to %g s", len(tasks), self.settings.shutdown_grace)
        _, late = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace)
        for task in late:
            task.cancel()
        if late:
            log.warning("%d tasks did not finish within the grace; left for another worker", len(late))
            await asyncio.wait(late)


def _failed(task_id: str, token: str, error: str) -> Move:
    return Move(task_id, TaskStatus.FAILED, {"error": error}, token=token)


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def run(settings: WorkerSettings, stop: asyncio.Event, *, burst: bool = False) -> None:
    """Connect, work until `stop` (or until the stream is empty with `burst`), disconnect."""
    redis = Redis.from_url(settings.redis_url)
    try:
        await Runner(settings, redis, load_handler(settings.handler)).run(stop, burst=burst)
    finally:
        await redis.aclose()
