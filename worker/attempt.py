"""One attempt of a task: run the handler, then write what it earned.

    handler (TASK_TIMEOUT) ─▶ result ─────────────────────────────▶ DONE + cache write ─▶ ack
                           └▶ error, attempts left ─────────────▶ PENDING + delayed set ─▶ ack
                           └▶ error on the last attempt, a timeout
                              (unless RETRY_ON_TIMEOUT), a
                              PermanentError, or a bad request ─▶ FAILED + dead letter ─▶ ack
                                                                  (one atomic step)
    progress reports ─▶ ProgressGate (PROGRESS_RATE) ─▶ closed before any of the moves above
    stopped because the task was CANCELLED ─▶ ack, nothing written (the move would be rejected)
    stopped because the lease went to another worker, or by shutdown ─▶ no write, no ack

Follow-up commands (retry, cache) are queued only once the move is written, and in the same
round trip as the ack, before it: a crash in between leaves the entry to be reclaimed. A dead
letter is no follow-up: the transition script writes it with FAILED, so a crash right after a
final failure (the reclaimed entry then finds the task terminal) still leaves the letter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from taskstore import (
    TERMINAL,
    Entry,
    Move,
    Moved,
    TaskQueue,
    TaskStatus,
    TaskStore,
    TransitionRejected,
    new_task_id,
)
from taskstore.codec import decode_request, encode_number, encode_result
from taskstore.deadletters import DeadLetter, DeadLetters
from worker.batch import Batcher
from worker.faults import AFTER_FINAL_FAILURE, crash_point
from worker.handlers import Handler, PermanentError, TaskContext
from worker.loops import REDIS_DOWN, Backoff
from worker.progress import ProgressGate
from worker.retry import RetryPolicy
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    """A running attempt: its stream entry, the token its writes carry, and its asyncio task."""

    entry: Entry
    token: str
    attempt: int
    request: bytes
    signature: str | None = None
    task: asyncio.Task[None] | None = None
    stopped_because: str = field(default="")

    def stop(self, why: str) -> None:
        """Cancel the handler; `why` decides what happens to the entry ("cancelled" acks it)."""
        if self.task is not None and not self.stopped_because:
            self.stopped_because = why
            self.task.cancel()


@dataclass(frozen=True, slots=True)
class Outcome:
    result_json: str | None = None
    error: str = ""
    permanent: bool = False
    timed_out: bool = False
    progress: float | None = None  # the last value the handler reported


def retried(outcome: Outcome, attempt: int, policy: RetryPolicy) -> bool:
    """Whether a failed attempt gets another one under `policy`."""
    if outcome.permanent or attempt >= policy.max_attempts:
        return False
    return policy.retry_on_timeout or not outcome.timed_out


class Executor:
    def __init__(
        self, settings: WorkerSettings, store: TaskStore, queue: TaskQueue, batcher: Batcher, handler: Handler
    ) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.letters = DeadLetters(store.redis, store.keys)
        self.batcher = batcher
        self.handler = handler
        self.completed = 0
        self.done = 0
        self.failed = 0
        self._never = asyncio.Event()

    async def execute(self, job: Job) -> None:
        try:
            outcome = await self._run_handler(job)
        except asyncio.CancelledError:
            self._stopped(job)
            raise
        if outcome.result_json is not None:
            await self._done(job, outcome.result_json)
        elif retried(outcome, job.attempt, self.settings.retry_policy):
            await self._retry(job, outcome.error)
        else:
            await self.fail(job, outcome.error, outcome.progress)

    async def fail(self, job: Job, error: str, progress: float | None = None) -> None:
        """FAILED with the last progress reported, and its dead letter in the same step; then ack."""
        task_id = job.entry.task_id
        fields = {"error": error}
        if progress is not None:
            fields["progress"] = encode_number(progress)
        move = Move(task_id, TaskStatus.FAILED, fields, job.token, dead_letter=True, signature=job.signature)
        if await self._settle(job, move):
            crash_point(AFTER_FINAL_FAILURE)
            log.warning(
                "task %s failed after %d attempts, dead-lettered: %s",
                task_id,
                job.attempt,
                error,
                extra={"task_id": task_id},
            )

    async def give_up(self, entry: Entry, attempts: int, signature: str | None = None) -> None:
        """FAILED + dead letter for a reclaimed task whose every attempt was lost (a poison task)."""
        error = f"gave up after {attempts} attempts: the worker running the last one stopped (crash or stall)"
        fields = {"error": error}
        move = Move(
            entry.task_id,
            TaskStatus.FAILED,
            fields,
            new_token=new_task_id(),
            dead_letter=True,
            signature=signature,
        )
        result, _ = await self._write(move)
        self.batcher.ack(entry)
        if isinstance(result, Moved):
            log.warning("task %s dead-lettered: %s", entry.task_id, error, extra={"task_id": entry.task_id})

    def dead_letter(self, entry: Entry, error: str) -> None:
        """Dead-letter and ack an entry whose task cannot be run at all (hash missing or garbled)."""
        # No task state to move, so nothing to pair the letter with: one XADD, before the ack.
        letter = DeadLetter(entry.task_id, error, 0, "", time.time())
        self.batcher.also(partial(self.letters.queue_add, letter=letter))
        self.batcher.ack(entry)
        log.warning(
            "task %s dead-lettered without running: %s",
            entry.task_id,
            error,
            extra={"task_id": entry.task_id},
        )

    async def _run_handler(self, job: Job) -> Outcome:
        try:
            prompt, params = decode_request(job.request)
        except ValueError as e:
            return Outcome(error=f"malformed request: {e}", permanent=True)
        gate = ProgressGate(partial(self._progress, job), self.settings.progress_rate)
        try:
            ctx = TaskContext(job.entry.task_id, job.attempt, gate.report)
            outcome = await self._call(prompt, params, ctx)
        finally:
            latest = gate.close()
        await gate.landed()  # the state change written next must not be overtaken by a progress write
        return replace(outcome, progress=latest)

    async def _call(self, prompt: str, params: dict[str, Any], ctx: TaskContext) -> Outcome:
        timeout = self.settings.task_timeout
        try:
            async with asyncio.timeout(timeout) as deadline:
                result = await self.handler(prompt, params, ctx)
        except TimeoutError as e:
            if deadline.expired():
                return Outcome(error=f"timed out after {timeout:g} s", timed_out=True)
            return Outcome(error=f"TimeoutError: {e}")
        except PermanentError as e:
            return Outcome(error=f"{type(e).__name__}: {e}", permanent=True)
        except Exception as e:
            return Outcome(error=f"{type(e).__name__}: {e}")
        return Outcome(result_json=encode_result(result))

    async def _done(self, job: Job, result_json: str) -> None:
        fields = {"result": result_json, "error": "", "progress": "1.0"}
        move = Move(job.entry.task_id, TaskStatus.DONE, fields, job.token, signature=job.signature)
        if await self._settle(job, move):
            if job.signature:
                self.batcher.cache(job.signature, result_json)
            log.info(
                "task %s done (attempt %d)",
                job.entry.task_id,
                job.attempt,
                extra={"task_id": job.entry.task_id},
            )

    async def _retry(self, job: Job, error: str) -> None:
        delay = self.settings.retry_policy.delay(job.attempt)
        fields = {"error": error, "progress": ""}
        if await self._settle(job, Move(job.entry.task_id, TaskStatus.PENDING, fields, job.token)):
            due = time.time() + delay
            self.batcher.also(partial(self.queue.queue_retry, task_id=job.entry.task_id, due=due))
            log.info(
                "task %s attempt %d failed, retry scheduled in %.2f s: %s",
                job.entry.task_id,
                job.attempt,
                delay,
                error,
                extra={"task_id": job.entry.task_id},
            )

    async def _settle(self, job: Job, move: Move) -> bool:
        """Write the move; True when written (the caller queues its follow-ups, then the ack goes)."""
        result, resent = await self._write(move)
        # A move resent after a lost reply may find itself already applied: that counts as written,
        # or a retry would stay PENDING with nothing left to enqueue it again.
        if isinstance(result, Moved) or (resent and result.current == move.to.value):
            if move.to in TERMINAL:
                self.completed += 1
                self.done += move.to == TaskStatus.DONE
                self.failed += move.to == TaskStatus.FAILED
            self.batcher.ack(job.entry)
            return True
        if result.reason == "stale attempt":
            # A newer attempt (another worker reclaimed this entry) owns the task and the entry now.
            log.info(
                "task %s attempt %d superseded, its result dropped",
                move.task_id,
                job.attempt,
                extra={"task_id": move.task_id},
            )
            return False
        log.info("task %s: %s", move.task_id, result, extra={"task_id": move.task_id})
        self.batcher.ack(job.entry)
        return False

    async def _write(self, move: Move) -> tuple[Moved | TransitionRejected, bool]:
        """The move's result, and whether it had to be resent after a Redis failure."""
        backoff = Backoff(f"task {move.task_id} {move.to.value}")
        resent = False
        while True:
            try:
                return await self.batcher.move(move), resent
            except REDIS_DOWN as e:
                resent = True
                # The lease loop keeps the entry ours meanwhile; giving up here would rerun the task.
                await backoff.pause(self._never, e)

    def _progress(self, job: Job, fraction: float) -> asyncio.Future[Any]:
        """Queue one progress write (the gate decides when, and drops a failed one)."""
        move = Move(job.entry.task_id, TaskStatus.RUNNING, {"progress": encode_number(fraction)}, job.token)
        return self.batcher.move(move)

    def _stopped(self, job: Job) -> None:
        if job.stopped_because == "cancelled":
            self.batcher.ack(job.entry)
            log.info(
                "task %s cancelled while running, handler stopped",
                job.entry.task_id,
                extra={"task_id": job.entry.task_id},
            )
        elif job.stopped_because == "lost":
            log.warning(
                "task %s: lease lost to another worker, handler stopped",
                job.entry.task_id,
                extra={"task_id": job.entry.task_id},
            )
        elif job.stopped_because == "shutdown":
            log.warning(
                "task %s stopped by shutdown, left for another worker",
                job.entry.task_id,
                extra={"task_id": job.entry.task_id},
            )
