"""The worker's Prometheus metrics, served on METRICS_PORT (0 = off) by prometheus_client's HTTP
server thread. Every worker process is scraped on its own; they never share a registry.

    Batcher.flush ─▶ count_moves(): each written move by its new status, each refused one by reason
    handler       ─▶ timed(): run time of every attempt, by kind and outcome (ok | error | stopped)
    Runner        ─▶ running(kind): attempts running now, by kind

Only the worker moves a task forward, so its transition counts are the service's; the API
writes PENDING (counted as taskcast_tasks_submitted_total) and CANCELLED.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from taskstore import Move, Moved, TaskStatus, TransitionRejected
from taskstore.kinds import DEFAULT_KIND
from worker.handlers import Handler, TaskContext

log = logging.getLogger(__name__)

RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class WorkerMetrics:
    def __init__(self) -> None:
        self.transitions = Counter(
            "taskcast_worker_transitions",
            "State changes written by this worker, by the new status (progress updates excluded).",
            ["status"],
        )
        self.progress = Counter("taskcast_worker_progress_updates", "Progress updates written.")
        self.rejected = Counter(
            "taskcast_worker_moves_rejected",
            "Moves the transition script refused (task cancelled, attempt superseded ...), by reason.",
            ["reason"],
        )
        self.run_seconds = Histogram(
            "taskcast_worker_task_seconds",
            "Run time of the handler per attempt, by kind and outcome: ok, error, stopped (timeout ...).",
            ["kind", "outcome"],
            buckets=RUN_BUCKETS,
        )
        self.running = Gauge("taskcast_worker_running", "Attempts running in this worker, by kind.", ["kind"])


@functools.cache
def worker_metrics() -> WorkerMetrics:
    """This process's metrics, created on first use."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:  # meant for the API, but an env file shared with the API may set it here too
        os.makedirs(directory, exist_ok=True)
    return WorkerMetrics()


def serve(port: int) -> None:
    """Serve /metrics on `port` from a daemon thread; nothing when `port` is 0."""
    if port:
        worker_metrics()
        start_http_server(port)
        log.info("metrics on http://0.0.0.0:%d/metrics", port)


def count_moves(moves: Sequence[tuple[Move, Any]], results: Sequence[Moved | TransitionRejected]) -> None:
    """Count one flushed batch: `moves` as queued (move, future), `results` in the same order."""
    m = worker_metrics()
    for (move, _), result in zip(moves, results, strict=True):
        if isinstance(result, TransitionRejected):
            m.rejected.labels(result.reason).inc()
        elif move.to is TaskStatus.RUNNING and not move.new_attempt:
            m.progress.inc()
        else:
            m.transitions.labels(move.to.value).inc()


def running(kind: str) -> Gauge:
    """The gauge of `kind`'s running attempts."""
    return worker_metrics().running.labels(kind)


def timed(handler: Handler, kind: str = DEFAULT_KIND) -> Handler:
    """`handler`, observing each call's run time in taskcast_worker_task_seconds."""
    histogram = worker_metrics().run_seconds
    by_outcome = {outcome: histogram.labels(kind, outcome) for outcome in ("ok", "error", "stopped")}

    async def run(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
        started, outcome = time.monotonic(), "stopped"
        try:
            result = await handler(prompt, params, ctx)
        except Exception:
            outcome = "error"
            raise
        else:
            outcome = "ok"
            return result
        finally:
            by_outcome[outcome].observe(time.monotonic() - started)

    return run
