from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from taskstore import TaskQueue, TaskStore, decode_state
from tests.helpers import both_topologies, listen, wait_for
from worker.runner import Runner, run
from worker.settings import WorkerSettings

pytestmark = both_topologies


async def _final(store: TaskStore, task_id: str, timeout: float = 10) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        state = decode_state(await store.state(task_id))
        return state if state["status"] in ("DONE", "FAILED", "CANCELLED") else None

    result: dict[str, Any] = await wait_for(ended, timeout=timeout, what=f"task {task_id} to end")
    return result


async def test_submitted_task_reaches_done_with_a_result(
    store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("hello world", {"duration": 0.05, "steps": 2})
    start_worker()

    state = await _final(store, sub.task_id)

    assert state["status"] == "DONE"
    assert state["result"]["echo"] == "hello world"
    assert state["attempts"] == 1 and state["progress"] == 1.0


async def test_progress_steps_are_published_in_seq_order(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("steps", {"duration": 0.06, "steps": 3})
    pubsub, get = await listen(redis, store.keys.channel(sub.task_id))
    start_worker(progress_rate=100)  # above the 50 steps/s of this task: none is merged

    events = []
    while not events or events[-1]["status"] != "DONE":
        message = await get(ignore_subscribe_messages=True, timeout=5)
        if message:
            events.append(decode_state(message["data"]))
    await pubsub.aclose()

    assert [e["status"] for e in events] == ["RUNNING", "RUNNING", "RUNNING", "RUNNING", "DONE"]
    assert [e["progress"] for e in events[1:4]] == [1 / 3, 2 / 3, 1.0]
    assert [e["seq"] for e in events] == list(range(2, 7))


async def test_done_result_is_cached_and_the_cache_expires(
    store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    store.cache_ttl = 1
    first = await store.submit("cache me", {})
    start_worker(cache_ttl=1)
    await _final(store, first.task_id)

    hit = await store.submit("cache me", {})
    await asyncio.sleep(2.2)
    miss = await store.submit("cache me", {})

    assert hit.cached and hit.result_json is not None
    assert not miss.cached


async def test_failing_handler_ends_failed_with_its_error(
    store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("boom", {"fail": True})
    start_worker(max_retries=0)

    state = await _final(store, sub.task_id)

    assert state["status"] == "FAILED"
    assert "failed on purpose" in state["error"]


async def test_task_over_the_timeout_fails_with_a_clear_error(
    store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("slow", {"duration": 5})
    start_worker(task_timeout=0.2, max_retries=0)

    state = await _final(store, sub.task_id)

    assert state["status"] == "FAILED"
    assert state["error"] == "timed out after 0.2 s"


async def test_finished_entries_are_acknowledged_and_removed(
    store: TaskStore, queue: TaskQueue, start_worker: Callable[..., Runner]
) -> None:
    subs = [await store.submit(f"t{i}", {}) for i in range(20)]
    start_worker()

    for sub in subs:
        await _final(store, sub.task_id)

    await wait_for(lambda: _is_empty(queue), what="stream to be empty")


async def test_a_redelivered_entry_for_a_done_task_changes_nothing(
    store: TaskStore, redis: Redis, make_worker_settings: Callable[..., WorkerSettings]
) -> None:
    sub = await store.submit("once", {})
    await run(make_worker_settings(), asyncio.Event(), burst=True)
    before = await store.state(sub.task_id)
    await redis.xadd(store.keys.shard_of_task(sub.task_id).stream, {"task_id": sub.task_id})

    await run(make_worker_settings(), asyncio.Event(), burst=True)

    assert await store.state(sub.task_id) == before


async def test_cancelled_pending_task_is_never_run(
    store: TaskStore, make_worker_settings: Callable[..., WorkerSettings]
) -> None:
    sub = await store.submit("never", {})
    await store.cancel(sub.task_id)

    await run(make_worker_settings(), asyncio.Event(), burst=True)

    state = decode_state(await store.state(sub.task_id))
    assert state["status"] == "CANCELLED" and state["attempts"] == 0


async def test_two_workers_share_the_load_and_run_each_task_once(
    store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    subs = [await store.submit(f"shared {i}", {"duration": 0.02}) for i in range(60)]
    first, second = start_worker(consumer_name="w1"), start_worker(consumer_name="w2")

    states = [await _final(store, sub.task_id) for sub in subs]

    assert all(s["status"] == "DONE" and s["attempts"] == 1 and s["seq"] == 3 for s in states)
    assert first.completed + second.completed == 60
    assert first.completed > 0 and second.completed > 0


async def _is_empty(queue: TaskQueue) -> bool:
    return await queue.backlog() == 0
