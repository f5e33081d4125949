from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from taskstore import Move, TaskQueue, TaskStatus, TaskStore, TransitionRejected, decode_state
from taskstore.deadletters import DeadLetters
from tests.helpers import both_topologies, wait_for
from tests.worker.waits import dead_letters, final, queue_empty, reaches, read_one
from worker.handlers import demo
from worker.runner import Runner
from worker.settings import WorkerSettings

SHORT = {"visibility_timeout": 0.3}

pytestmark = both_topologies


async def _taken_by_a_dead_worker(store: TaskStore, queue: TaskQueue, attempts: int = 1) -> str:
    """Read the next entry as consumer "ghost" and start `attempts` attempts that never end."""
    await queue.ensure_group()
    entry = await read_one(queue, "ghost")
    for n in range(attempts):
        await store.move(Move(entry.task_id, TaskStatus.RUNNING, new_token=f"ghost-{n}", new_attempt=True))
    return entry.task_id


async def _nothing_pending(queue: TaskQueue) -> bool:
    await queue.ensure_group()
    return await queue_empty(TaskStore(queue.redis, queue.keys))


async def test_an_entry_left_by_a_dead_worker_is_reclaimed_as_a_new_attempt(
    store: TaskStore, queue: TaskQueue, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("orphan", {})
    await _taken_by_a_dead_worker(store, queue)

    start_worker(**SHORT)
    state = await final(store, sub.task_id)

    assert state["status"] == "DONE" and state["attempts"] == 2
    with pytest.raises(TransitionRejected):
        await store.move(Move(sub.task_id, TaskStatus.DONE, {"result": "1"}, token="ghost-0"))
    await wait_for(lambda: _nothing_pending(queue), what="the entry to be acked")


async def test_a_task_whose_every_attempt_was_lost_ends_failed_and_dead_lettered(
    store: TaskStore, queue: TaskQueue, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("poison", {})
    await _taken_by_a_dead_worker(store, queue, attempts=4)

    start_worker(max_retries=3, **SHORT)
    state = await final(store, sub.task_id)

    assert state["status"] == "FAILED" and state["attempts"] == 4 and state["result"] is None
    assert "gave up after 4 attempts" in state["error"]
    letters = await dead_letters(DeadLetters(redis, store.keys))
    assert [(d.task_id, d.attempts) for d in letters] == [(sub.task_id, 4)]
    assert '"prompt":"poison"' in letters[0].request
    await wait_for(lambda: _nothing_pending(queue), what="the entry to be acked")


async def test_an_entry_without_a_task_hash_is_dead_lettered_and_acked(
    store: TaskStore, queue: TaskQueue, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    await redis.xadd(store.keys.shards[0].stream, {"task_id": "vanished"})

    start_worker()

    await wait_for(lambda: _nothing_pending(queue), what="the entry to be acked")
    letters = await dead_letters(DeadLetters(redis, store.keys))
    assert [(d.task_id, d.attempts) for d in letters] == [("vanished", 0)]
    assert "missing" in letters[0].error


async def test_a_task_with_an_unknown_status_is_dead_lettered_and_acked(
    store: TaskStore, queue: TaskQueue, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("garbled", {})
    await redis.hset(store.keys.task(sub.task_id), "status", "SLEEPING")

    start_worker()

    await wait_for(lambda: _nothing_pending(queue), what="the entry to be acked")
    assert [d.task_id for d in await dead_letters(DeadLetters(redis, store.keys))] == [sub.task_id]


async def test_a_task_whose_request_cannot_be_decoded_fails_at_once_and_is_dead_lettered(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("garbled", {})
    await redis.hset(store.keys.task(sub.task_id), "request", "{not json")

    start_worker()
    state = await final(store, sub.task_id)

    assert state["status"] == "FAILED" and state["attempts"] == 1
    assert state["error"].startswith("malformed request")
    assert [d.task_id for d in await dead_letters(DeadLetters(redis, store.keys))] == [sub.task_id]


async def test_pending_ids_whose_entry_was_deleted_are_acked(
    store: TaskStore, queue: TaskQueue, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    await store.submit("deleted", {})
    await queue.ensure_group()
    entry = await read_one(queue, "ghost")
    await redis.xdel(entry.shard.stream, entry.entry_id)

    start_worker(**SHORT)

    await wait_for(lambda: _nothing_pending(queue), what="the deleted id to leave the group")


async def test_a_long_task_renews_its_lease_and_runs_once_beside_other_workers(
    store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("long", {"duration": 1.5})
    first = start_worker(visibility_timeout=0.6, consumer_name="w1")
    await reaches(store, sub.task_id, ("RUNNING",))
    second = start_worker(visibility_timeout=0.6, consumer_name="w2")

    state = await final(store, sub.task_id)

    assert state["status"] == "DONE" and state["attempts"] == 1
    assert (first.completed, second.completed) == (1, 0)


async def test_cancelling_a_running_task_stops_its_handler_and_acks_without_writing(
    store: TaskStore, queue: TaskQueue, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("endless", {"duration": 60, "steps": 600})
    runner = start_worker()
    await reaches(store, sub.task_id, ("RUNNING",))

    cancelled = decode_state((await store.cancel(sub.task_id)).state)
    await wait_for(lambda: _nothing_pending(queue), timeout=3, what="the cancelled entry to be acked")

    assert not runner.jobs
    assert decode_state(await store.state(sub.task_id)) == cancelled


async def test_shutdown_leaves_unfinished_tasks_running_for_another_worker_to_take_at_once(
    store: TaskStore, make_worker_settings: Callable[..., WorkerSettings], redis: Redis
) -> None:
    quick = await store.submit("quick", {"duration": 0.3})
    slow = await store.submit("slow", {"duration": 2})
    settings = make_worker_settings(shutdown_grace=0.6, consumer_name="leaving")
    stop = asyncio.Event()
    leaving = asyncio.create_task(Runner(settings, redis, store.keys, demo).run(stop))
    await reaches(store, slow.task_id, ("RUNNING",))
    await reaches(store, quick.task_id, ("RUNNING", "DONE"))

    stop.set()
    await leaving

    assert decode_state(await store.state(quick.task_id))["status"] == "DONE"
    assert decode_state(await store.state(slow.task_id))["status"] == "RUNNING"
    other = make_worker_settings(visibility_timeout=60, consumer_name="staying")
    stop_other = asyncio.Event()
    staying = asyncio.create_task(Runner(other, redis, store.keys, demo).run(stop_other))
    state = await final(store, slow.task_id, timeout=20)
    stop_other.set()
    await staying
    assert state["status"] == "DONE" and state["attempts"] == 2
