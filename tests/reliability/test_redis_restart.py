from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from taskstore import TaskStore, decode_state
from tests.helpers import RedisProcess, wait_for
from tests.reliability.procs import WorkerProcess
from tests.worker.waits import all_final, queue_empty

PARAMS = {"duration": 0.2, "steps": 2}


async def _submit(store: TaskStore, prompt: str) -> str | None:
    try:
        return (await store.submit(prompt, PARAMS)).task_id
    except RedisConnectionError:
        return None  # Redis still coming back; the caller tries again


async def _some_done(store: TaskStore, task_ids: list[str]) -> bool:
    raws = await store.states(task_ids)
    return sum(decode_state(raw)["status"] == "DONE" for raw in raws if raw) >= 10


@pytest.mark.timeout(120)
async def test_the_worker_rides_out_a_redis_restart_and_every_task_ends(
    own_redis: RedisProcess, own_store: TaskStore, workers: Callable[..., WorkerProcess]
) -> None:
    before = [(await own_store.submit(f"before {i}", PARAMS)).task_id for i in range(60)]
    worker = workers(own_redis.url, max_concurrency="20", visibility_timeout="2")
    await wait_for(lambda: _some_done(own_store, before), timeout=30, what="the worker to get going")

    own_redis.restart()
    after: list[str] = []
    for i in range(60):
        after.append(await wait_for(lambda i=i: _submit(own_store, f"after {i}"), what="a submit to succeed"))
    states = await all_final(own_store, before + after, timeout=60)

    assert {s["status"] for s in states} == {"DONE"}
    assert worker.proc.poll() is None
    await wait_for(lambda: queue_empty(own_store), what="every entry to be acked")
