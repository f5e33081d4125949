from __future__ import annotations

from collections.abc import Callable

import pytest

from taskstore import TaskStore, decode_state
from tests.helpers import RedisProcess, both_topologies, wait_for
from tests.reliability.procs import WorkerProcess
from tests.worker.waits import all_final, queue_empty


async def _statuses(store: TaskStore, task_ids: list[str]) -> list[str]:
    return [decode_state(raw)["status"] for raw in await store.states(task_ids) if raw is not None]


async def _all_started(store: TaskStore, task_ids: list[str]) -> bool:
    return "PENDING" not in await _statuses(store, task_ids)


@pytest.mark.timeout(120)
@both_topologies
async def test_killing_the_only_worker_mid_run_loses_no_task(
    clean_redis: str, store: TaskStore, workers: Callable[..., WorkerProcess]
) -> None:
    ids = [(await store.submit(f"task {i}", {"duration": 1.0})).task_id for i in range(200)]
    first = workers(clean_redis, max_concurrency="250")
    await wait_for(lambda: _all_started(store, ids), timeout=30, what="every task to start")

    first.kill()
    running_at_kill = (await _statuses(store, ids)).count("RUNNING")
    workers(clean_redis, max_concurrency="250", visibility_timeout="1")
    states = await all_final(store, ids, timeout=60)

    assert running_at_kill > 0
    assert {s["status"] for s in states} == {"DONE"}
    assert sum(s["attempts"] == 2 for s in states) == running_at_kill
    await wait_for(lambda: queue_empty(store), what="every entry to be acked")


@pytest.mark.timeout(120)
async def test_sigterm_finishes_what_it_can_and_leaves_the_rest_for_another_worker(
    own_redis: RedisProcess, own_store: TaskStore, workers: Callable[..., WorkerProcess]
) -> None:
    quick = [(await own_store.submit(f"quick {i}", {"duration": 0.3})).task_id for i in range(20)]
    slow = [(await own_store.submit(f"slow {i}", {"duration": 3})).task_id for i in range(5)]
    first = workers(own_redis.url, max_concurrency="50", shutdown_grace="1.5")
    await wait_for(lambda: _all_started(own_store, quick + slow), timeout=30, what="every task to start")

    exit_code = await first.terminate()
    after_stop = await _statuses(own_store, quick + slow)
    # A long visibility timeout: only the released entries can be taken over this quickly.
    workers(own_redis.url, max_concurrency="50", visibility_timeout="60")
    states = await all_final(own_store, quick + slow, timeout=30)

    assert exit_code == 0
    assert after_stop[:20] == ["DONE"] * 20 and after_stop[20:] == ["RUNNING"] * 5
    assert {s["status"] for s in states} == {"DONE"}
    assert [s["attempts"] for s in states[20:]] == [2] * 5
    await wait_for(lambda: queue_empty(own_store), what="every entry to be acked")
