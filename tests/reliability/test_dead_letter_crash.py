from __future__ import annotations

from collections.abc import Callable

import pytest

from taskstore import TaskStore, decode_state
from taskstore.deadletters import DeadLetters
from tests.helpers import RedisProcess, wait_for
from tests.reliability.procs import WorkerProcess
from tests.worker.waits import queue_empty
from worker.faults import AFTER_FINAL_FAILURE, EXIT_CODE


@pytest.mark.timeout(60)
async def test_a_worker_killed_right_after_a_final_failure_leaves_the_dead_letter(
    own_redis: RedisProcess, own_store: TaskStore, workers: Callable[..., WorkerProcess]
) -> None:
    task_id = (await own_store.submit("fails for good", {"fail": True})).task_id
    doomed = workers(own_redis.url, max_retries="0", taskcast_fault=AFTER_FINAL_FAILURE)

    code = await doomed.exited()
    state = decode_state(await own_store.state(task_id))
    letters = await DeadLetters(own_store.redis, own_store.keys).list()
    unacked = await own_store.redis.xlen(own_store.keys.shard_of_task(task_id).stream)

    assert code == EXIT_CODE
    assert state["status"] == "FAILED"
    assert [(d.task_id, d.attempts, d.error) for d in letters] == [(task_id, 1, state["error"])]
    assert unacked == 1  # it died before the ack: the worst moment


@pytest.mark.timeout(60)
async def test_the_entry_left_by_that_crash_is_acked_later_without_a_second_letter(
    own_redis: RedisProcess, own_store: TaskStore, workers: Callable[..., WorkerProcess]
) -> None:
    task_id = (await own_store.submit("fails for good", {"fail": True})).task_id
    await workers(own_redis.url, max_retries="0", taskcast_fault=AFTER_FINAL_FAILURE).exited()

    workers(own_redis.url, max_retries="0", visibility_timeout="0.5")
    await wait_for(lambda: queue_empty(own_store), timeout=30, what="the orphaned entry to be acked")

    letters = await DeadLetters(own_store.redis, own_store.keys).list()
    assert [d.task_id for d in letters] == [task_id]
