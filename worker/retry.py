"""Retries: how long a failed attempt waits, and the scheduler that brings due ones back.

A retry never holds a worker slot while it waits: the failed attempt moves the task to PENDING,
puts its id in the delayed set (score = due time) and acks its entry. Every worker runs the
scheduler; `promote.lua` moves due ids onto the stream atomically, so two workers never
enqueue one retry twice, and appends them: a retry waits behind the work that was waiting
before it was due (the one place that decides where a retry queues).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from taskstore import TaskQueue

log = logging.getLogger(__name__)

# Seconds between scheduler passes: a retry starts at most this much after it is due.
POLL_SECONDS = 0.2
_BATCH = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed attempt gets another one, and after how long.

    One per worker today (from its settings); the seam where a kind's own policy goes.
    """

    max_attempts: int
    backoff: float
    backoff_max: float
    # A timed-out attempt already held its slot for TASK_TIMEOUT; retrying it by default let a
    # few huge requests fill every worker for TASK_TIMEOUT x attempts.
    retry_on_timeout: bool = False

    def delay(self, attempt: int) -> float:
        """Seconds before the retry after `attempt` failed."""
        return backoff_delay(attempt, self.backoff, self.backoff_max)


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the retry after `attempt` failed: base * 2^(attempt-1), capped, with jitter.

    "Equal jitter": half of the delay is fixed, the other half random, so retries of tasks that
    failed together spread out but none comes back at once.
    """
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return float(delay / 2 + delay / 2 * rand())


class RetryScheduler:
    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue

    async def promote(self) -> None:
        """Move every retry that is due onto the stream."""
        while True:
            moved = await self.queue.promote_due(time.time(), _BATCH)
            if moved:
                log.debug("%d retries due, back on the stream", moved)
            if moved < _BATCH:
                return
