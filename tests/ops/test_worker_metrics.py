"""The worker's metrics: transitions by status, handler run time, and METRICS_PORT."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from taskstore import TaskStore, decode_state
from tests.helpers import free_port, wait_for
from tests.ops.stack import sample, scrape
from tests.reliability.procs import WorkerProcess
from tests.worker.waits import final
from worker.handlers import DemoFailure, Handler, TaskContext, demo
from worker.metrics import timed
from worker.runner import Runner
from worker.settings import WorkerSettings

TRANSITIONS = "taskcast_worker_transitions_total"
RUN_COUNT = "taskcast_worker_task_seconds_count"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def values(name: str, label: str, *keys: str, **others: str) -> dict[str, float]:
    return {key: value(name, **{label: key}, **others) for key in keys}


async def finished(store: TaskStore, task_id: str) -> bool:
    return decode_state(await store.state(task_id))["status"] in ("DONE", "FAILED")


async def all_finished(store: TaskStore, task_ids: list[str]) -> bool:
    return all([await finished(store, task_id) for task_id in task_ids])


def context() -> TaskContext:
    async def report(_: float) -> None:
        return None

    return TaskContext("t", 1, report)


async def test_transitions_are_counted_by_new_status(
    store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    statuses = ("PENDING", "RUNNING", "DONE", "FAILED")
    before = values(TRANSITIONS, "status", *statuses)
    progress = value("taskcast_worker_progress_updates_total")
    start_worker(max_retries=1, retry_backoff=0)

    ok = await store.submit("fine", {"steps": 2, "duration": 0.4})  # 5 steps/s: under PROGRESS_RATE
    retried = await store.submit("once more", {"fail_times": 1})
    failed = await store.submit("never", {"fail": True})
    await wait_for(lambda: all_finished(store, [ok.task_id, retried.task_id, failed.task_id]))

    after = values(TRANSITIONS, "status", *statuses)
    counted = {status: after[status] - before[status] for status in statuses}
    # ok: RUNNING, DONE; retried: RUNNING, PENDING, RUNNING, DONE; failed: twice RUNNING, PENDING once, FAILED
    assert counted == {"RUNNING": 5, "PENDING": 2, "DONE": 2, "FAILED": 1}
    assert value("taskcast_worker_progress_updates_total") - progress == 2


async def test_handler_run_time_is_observed_by_outcome() -> None:
    before = values(RUN_COUNT, "outcome", "ok", "error", "stopped", kind="default")
    handler = timed(demo)

    await handler("ok", {}, context())
    with pytest.raises(DemoFailure):
        await handler("error", {"fail": True}, context())
    started = asyncio.Event()
    slow = asyncio.create_task(timed(_hang(started))("stopped", {}, context()))
    await started.wait()
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow

    after = values(RUN_COUNT, "outcome", "ok", "error", "stopped", kind="default")
    assert {k: after[k] - before[k] for k in after} == {"ok": 1, "error": 1, "stopped": 1}


async def test_running_attempts_and_run_time_are_reported_by_kind(
    store: TaskStore, redis: Redis, make_worker_settings: Callable[..., WorkerSettings]
) -> None:
    before = value(RUN_COUNT, kind="render", outcome="ok")
    started, release = asyncio.Event(), asyncio.Event()

    async def render(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
        started.set()
        await release.wait()

    runner = Runner(make_worker_settings(), redis, store.keys, timed(render, "render"), "render")
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    sub = await store.submit("draw", {}, kind="render")
    await started.wait()
    during = value("taskcast_worker_running", kind="render")
    release.set()
    await final(store, sub.task_id)
    stop.set()
    await running

    assert during == 1
    assert value("taskcast_worker_running", kind="render") == 0
    assert value(RUN_COUNT, kind="render", outcome="ok") - before == 1


async def test_metrics_port_serves_the_worker_metrics(redis_server: str, store: TaskStore) -> None:
    port = free_port()
    worker = WorkerProcess(redis_server, "metrics-port", metrics_port=str(port))
    try:
        task = await store.submit("scraped", {})
        await wait_for(lambda: finished(store, task.task_id), what="the task to finish")
        text = await wait_for(lambda: _counted(port), what="the DONE transition on the worker's /metrics")
    finally:
        worker.stop()

    assert sample(text, RUN_COUNT, outcome="ok") == 1
    assert "process_cpu_seconds_total" in text


def _hang(started: asyncio.Event) -> Handler:
    async def hang(prompt: str, params: dict[str, Any], ctx: TaskContext) -> None:
        started.set()
        await asyncio.Event().wait()

    return hang


async def _counted(port: int) -> Any:
    text = await scrape(f"http://127.0.0.1:{port}")
    return text if sample(text, TRANSITIONS, status="DONE") == 1 else None
