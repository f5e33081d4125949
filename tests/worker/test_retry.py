from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from taskstore import TaskQueue, TaskStore, decode_state
from taskstore.deadletters import DeadLetters
from tests.helpers import both_topologies, wait_for
from tests.worker.waits import dead_letters, events_until_end, final
from worker.retry import backoff_delay
from worker.runner import Runner

FAST = {"retry_backoff": 0.01, "retry_backoff_max": 0.05}


@both_topologies
async def test_fail_times_2_is_retried_visibly_and_ends_done_on_attempt_3(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("flaky", {"fail_times": 2})
    subscribed = asyncio.Event()
    listening = asyncio.create_task(events_until_end(redis, store.keys.channel(sub.task_id), subscribed))
    await subscribed.wait()
    start_worker(**FAST)

    events = await listening

    retries = [e for e in events if e["status"] == "PENDING"]
    assert [e["status"] for e in events] == ["RUNNING", "PENDING", "RUNNING", "PENDING", "RUNNING", "DONE"]
    assert [r["attempts"] for r in retries] == [1, 2]
    assert all("fail_times=2" in r["error"] for r in retries)
    assert events[-1]["attempts"] == 3 and events[-1]["error"] is None


@both_topologies
async def test_a_task_failing_every_attempt_ends_failed_and_dead_lettered(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("doomed", {"fail": True})
    start_worker(max_retries=3, **FAST)

    state = await final(store, sub.task_id)
    letters = await dead_letters(DeadLetters(redis, store.keys))

    assert state["status"] == "FAILED" and state["attempts"] == 4
    assert [(d.task_id, d.attempts) for d in letters] == [(sub.task_id, 4)]
    assert "failed on purpose (attempt 4)" in letters[0].error
    assert '"prompt":"doomed"' in letters[0].request and letters[0].time > 0


@both_topologies
async def test_a_permanent_error_fails_at_once_without_retries(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("bad params", {"duration": "soon"})
    start_worker(**FAST)

    state = await final(store, sub.task_id)

    assert state["status"] == "FAILED" and state["attempts"] == 1
    assert state["error"].startswith("PermanentError: duration and steps must be numbers")
    assert [d.task_id for d in await dead_letters(DeadLetters(redis, store.keys))] == [sub.task_id]


@both_topologies
async def test_a_retry_waiting_for_its_backoff_holds_no_worker_slot(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    flaky = await store.submit("flaky", {"fail_times": 1})
    start_worker(max_concurrency=1, retry_backoff=60, retry_backoff_max=60)
    await _wait_delayed(redis, store, flaky.task_id)

    other = await store.submit("meanwhile", {})
    state = await final(store, other.task_id)

    assert state["status"] == "DONE"
    flaky_state = decode_state(await store.state(flaky.task_id))
    assert flaky_state["status"] == "PENDING" and flaky_state["attempts"] == 1


async def _wait_delayed(redis: Redis, store: TaskStore, task_id: str) -> None:
    async def scheduled() -> bool:
        return await redis.zscore(store.keys.shard_of_task(task_id).delayed, task_id) is not None

    await wait_for(scheduled, what="the retry to be in the delayed set")


def test_backoff_doubles_per_attempt_up_to_the_cap_with_half_of_it_random() -> None:
    def low() -> float:
        return 0.0

    def high() -> float:
        return 1.0

    assert [backoff_delay(n, 1.0, 60.0, high) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert [backoff_delay(n, 1.0, 60.0, low) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(20, 1.0, 60.0, high) == 60.0


@both_topologies
async def test_due_retries_are_moved_to_the_stream_once_even_by_concurrent_schedulers(
    queue: TaskQueue, redis: Redis
) -> None:
    now = time.time()
    shard = queue.keys.shard_of_task("a")
    await redis.zadd(shard.delayed, {"a": now - 1, "b": now - 0.5, "later": now + 100})

    moved = await asyncio.gather(*(queue.promote_due(now) for _ in range(5)))

    assert sum(moved) == 2
    entries = await redis.xrange(shard.stream)
    assert sorted(fields[b"task_id"] for _, fields in entries) == [b"a", b"b"]
    assert await redis.zrange(shard.delayed, 0, -1) == [b"later"]


async def test_a_timed_out_task_fails_after_one_attempt_by_default(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("too long", {"duration": 30})
    start_worker(task_timeout=0.2, max_retries=3, **FAST)

    state = await final(store, sub.task_id)

    assert state["status"] == "FAILED" and state["attempts"] == 1
    assert state["error"] == "timed out after 0.2 s"
    assert [d.attempts for d in await dead_letters(DeadLetters(redis, store.keys))] == [1]


async def test_with_retry_on_timeout_a_timed_out_task_is_retried(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("too long", {"duration": 30})
    subscribed = asyncio.Event()
    listening = asyncio.create_task(events_until_end(redis, store.keys.channel(sub.task_id), subscribed))
    await subscribed.wait()
    start_worker(task_timeout=0.2, max_retries=1, retry_on_timeout=True, **FAST)

    events = await listening

    assert [e["status"] for e in events] == ["RUNNING", "PENDING", "RUNNING", "FAILED"]
    assert events[1]["error"] == "timed out after 0.2 s" and events[-1]["attempts"] == 2


async def test_a_task_queued_earlier_starts_before_a_retry_that_became_due_later(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    long_one = await store.submit("long 1", {"duration": 2})
    flaky = await store.submit("flaky", {"fail_times": 1})
    pubsub = redis.pubsub()
    start_worker(max_concurrency=2, retry_backoff=1.0, retry_backoff_max=1.0)
    await _wait_delayed(redis, store, flaky.task_id)  # due in 0.5-1 s; the worker has a free slot
    long_two = await store.submit("long 2", {"duration": 2})  # takes that slot: the worker is full
    earlier = await store.submit("queued before the retry is due", {})
    await pubsub.subscribe(*(store.keys.channel(t) for t in (flaky.task_id, earlier.task_id)))

    starts = await _starts(pubsub, count=2)

    assert starts == [earlier.task_id, flaky.task_id]
    assert decode_state(await store.state(long_one.task_id))["attempts"] == 1
    assert decode_state(await store.state(long_two.task_id))["attempts"] == 1


async def _starts(pubsub: PubSub, count: int) -> list[str]:
    """The ids of the next `count` tasks moved to RUNNING, in the order they were published."""
    started: list[str] = []
    while len(started) < count:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
        if message:
            event = decode_state(message["data"])
            if event["status"] == "RUNNING" and event["progress"] is None:
                started.append(event["task_id"])
    await pubsub.aclose()
    return started


async def test_demo_params_beyond_the_limits_fail_at_once_without_running(
    store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    sub = await store.submit("past the api's check", {"duration": 10**6})  # taskstore: no API check
    start_worker(**FAST)

    state = await final(store, sub.task_id)

    assert state["status"] == "FAILED" and state["attempts"] == 1
    assert "duration 0-600 s, steps 0-1000" in state["error"]
